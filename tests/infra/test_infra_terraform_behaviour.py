"""infra/terraform checked for what AWS would do with it, not for its form (issue 20):

- instance tag keys against the character set AWS accepts once tags are exposed in instance metadata;
- every SSH path of the Ansible inventory (operator -> control plane -> ProxyJump -> private node)
  evaluated hop by hop against the security groups' ingress and egress rules;
- the AWS Load Balancer Controller's policy evaluated against the upstream policy document of the
  pinned controller version (a recorded fixture): every action, on every resource, under the
  conditions upstream states, must be allowed by a statement that asks no more.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import ANSIBLE, INFRA, TERRAFORM, hcl, locals_of, resources, sample_outputs

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# EC2 User Guide, "View tags for your EC2 instances from instance metadata": with tags in instance
# metadata, instance tag keys may use only letters, digits and + - = . , _ : @ (no spaces, no "/"),
# and may not be ".", ".." or "_index".
METADATA_TAG_KEY = re.compile(r"^[A-Za-z0-9+\-=.,_:@]+$")
METADATA_TAG_RESERVED = {".", "..", "_index"}


def _keys_of_map_literal(expression: str) -> list[str]:
    """The keys of the object literals inside a Terraform expression (`merge(var.tags, {k = v, ...})`)."""
    keys = []
    for body in re.findall(r"\{([^{}]*(?:\$\{[^}]*\}[^{}]*)*)\}", expression):
        for match in re.finditer(r'(?:^|,)\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_-]*)\s*=', body):
            keys.append(match.group(1).strip('"'))
    return keys


def _instance_tag_keys() -> list[str]:
    """Every tag key an instance gets: its own tags, the module's tags (var.tags of modules/eco2) and
    the env providers' default_tags (which the AWS provider adds to every instance)."""
    [(_, _, node)] = [r for r in resources(TERRAFORM / "modules" / "nodes" / "main.tf") if r[0] == "aws_instance"]
    keys = _keys_of_map_literal(node["tags"])
    keys += _keys_of_map_literal(locals_of(TERRAFORM / "modules" / "eco2" / "main.tf")["tags"])
    for env in ("dev", "prod"):
        for provider in hcl(TERRAFORM / "envs" / env / "providers.tf")["provider"]:
            for default in provider["aws"].get("default_tags", []):
                keys += list(default["tags"])
    return keys


def test_tag_key_parser_reads_the_instance_tags() -> None:
    keys = _instance_tag_keys()
    assert {"Name", "eco2.io/role", "eco2.io/env", "app"} <= set(keys)
    assert any(k.startswith("kubernetes.io/cluster/") for k in keys)


def test_instance_tags_are_accepted_with_the_instances_metadata_options() -> None:
    """Defect 1: instance_metadata_tags = "enabled" with "/" in tag keys: RunInstances is refused."""
    [(_, _, node)] = [r for r in resources(TERRAFORM / "modules" / "nodes" / "main.tf") if r[0] == "aws_instance"]
    [metadata] = node["metadata_options"]
    if metadata.get("instance_metadata_tags", "disabled") != "enabled":
        return
    refused = [k for k in _instance_tag_keys() if not METADATA_TAG_KEY.match(k) or k in METADATA_TAG_RESERVED]
    assert not refused, f"tags in instance metadata are on, and AWS refuses these instance tag keys: {refused}"


# -- security groups as AWS evaluates them --------------------------------------------------------------
SECURITY = TERRAFORM / "modules" / "security"


def _group_of(reference: str) -> str:
    match = re.fullmatch(r"\$\{aws_security_group\.(\w+)\.id\}", reference)
    assert match, reference
    return match.group(1)


def _rules(kind: str, admin_cidrs: list[str]) -> list[dict[str, Any]]:
    """Security group rules of modules/security, for_each over the admin CIDRs expanded."""
    out = []
    for rtype, name, body in resources(SECURITY / "main.tf"):
        if rtype != f"aws_vpc_security_group_{kind}_rule":
            continue
        instances: list[dict[str, Any]]
        if body.get("for_each") == "${toset(var.ssh_allowed_cidrs)}":
            instances = [dict(body, cidr_ipv4=c) for c in admin_cidrs]
        elif body.get("for_each") == "${local.node_to_node}":
            table = locals_of(SECURITY / "main.tf")["node_to_node"]
            instances = [
                dict(body, from_port=r["from"], to_port=r["to"], ip_protocol=r["proto"]) for r in table.values()
            ]
        else:
            assert "for_each" not in body, f"{name}: a for_each this evaluator does not expand"
            instances = [body]
        for rule in instances:
            peer = rule.get("referenced_security_group_id")
            out.append(
                {
                    "name": name,
                    "group": _group_of(rule["security_group_id"]),
                    "cidr": rule.get("cidr_ipv4"),
                    "peer": _group_of(peer) if peer else None,
                    "proto": str(rule["ip_protocol"]),
                    "from": rule.get("from_port"),
                    "to": rule.get("to_port"),
                }
            )
    return out


def _allows(rule: dict[str, Any], port: int, other_ip: str, other_groups: set[str]) -> bool:
    if rule["proto"] not in {"-1", "tcp", "6"}:
        return False
    if rule["proto"] != "-1" and not (int(rule["from"]) <= port <= int(rule["to"])):
        return False
    if rule["peer"] is not None:
        return rule["peer"] in other_groups
    return ipaddress.ip_address(other_ip) in ipaddress.ip_network(rule["cidr"])


def _node_groups() -> dict[str, set[str]]:
    """Security groups by node role, from modules/nodes' vpc_security_group_ids and the module wiring."""
    [(_, _, node)] = [r for r in resources(TERRAFORM / "modules" / "nodes" / "main.tf") if r[0] == "aws_instance"]
    expression = node["vpc_security_group_ids"]
    outputs = {k: v for o in hcl(SECURITY / "outputs.tf")["output"] for k, v in o.items()}
    wiring = {k: v for m in hcl(TERRAFORM / "modules" / "eco2" / "main.tf")["module"] for k, v in m.items()}["nodes"]

    def group(variable: str) -> str:
        output = re.fullmatch(r"\$\{module\.security\.(\w+)\}", wiring[variable])
        assert output, wiring[variable]
        return _group_of(outputs[output.group(1)]["value"])

    always = group("nodes_security_group_id")
    control = group("control_plane_security_group_id")
    assert re.search(r"concat\(\s*\[var\.nodes_security_group_id\]", expression), expression
    assert 'each.value.role == "control-plane" ? [var.control_plane_security_group_id] : []' in expression
    return {"control-plane": {always, control}, "other": {always}}


def _ssh_hops(tmp_path: Path) -> list[tuple[str, str, set[str] | None, str, set[str]]]:
    """(host, source ip, source groups or None for the operator, target ip, target groups) of every SSH
    hop Ansible makes, read from the real inventory script run on a sample `terraform output -json`."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(sample_outputs()), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(ANSIBLE / "inventory" / "terraform_inventory.py"), "--list"],
        env=dict(os.environ, ECO2_TF_OUTPUT_JSON=str(outputs), ECO2_ENV="dev"),
        capture_output=True,
        text=True,
        check=True,
    )
    hostvars = json.loads(done.stdout)["_meta"]["hostvars"]
    groups = _node_groups()
    admin = hcl(TERRAFORM / "envs" / "dev" / "terraform.tfvars")["ssh_allowed_cidrs"]
    operator = str(next(ipaddress.ip_network(admin[0]).hosts()))
    by_public = {n["public_ip"]: (name, n) for name, n in sample_outputs()["nodes"]["value"].items() if n["public_ip"]}
    hops = []
    for host, hv in sorted(hostvars.items()):
        target_groups = groups["control-plane"] if hv["node_role"] == "control-plane" else groups["other"]
        jump = re.search(r"ProxyJump=\w+@([\d.]+)", hv.get("ansible_ssh_common_args", ""))
        if jump is None:
            hops.append((host, operator, None, hv["ansible_host"], target_groups))
            continue
        bastion_name, bastion = by_public[jump.group(1)]
        bastion_groups = groups["control-plane"] if bastion["role"] == "control-plane" else groups["other"]
        hops.append((f"{host} (jump)", operator, None, jump.group(1), bastion_groups))
        # the second hop leaves the bastion from its private address
        hops.append((host, bastion["private_ip"], bastion_groups, hv["ansible_host"], target_groups))
        assert bastion_name == "k8s-control-plane"
    return hops


def test_every_ssh_path_of_the_inventory_is_allowed(tmp_path: Path) -> None:
    """Defect 2: the ProxyJump hop arrives from the control plane's private address."""
    admin = hcl(TERRAFORM / "envs" / "dev" / "terraform.tfvars")["ssh_allowed_cidrs"]
    ingress, egress = _rules("ingress", admin), _rules("egress", admin)
    hops = _ssh_hops(tmp_path)
    assert len({h[0] for h in hops if "(jump)" not in h[0]}) == 14
    blocked = []
    for host, source_ip, source_groups, target_ip, target_groups in hops:
        allowed_in = any(
            r["group"] in target_groups and _allows(r, 22, source_ip, source_groups or set()) for r in ingress
        )
        # the operator's own network is outside AWS; a node's traffic must also leave its groups
        allowed_out = source_groups is None or any(
            r["group"] in source_groups and _allows(r, 22, target_ip, target_groups) for r in egress
        )
        if not (allowed_in and allowed_out):
            blocked.append(f"{host}: {source_ip} -> {target_ip}:22 (in: {allowed_in}, out: {allowed_out})")
    assert not blocked, "SSH paths no security group rule allows:\n" + "\n".join(blocked)


def test_ssh_to_private_nodes_is_not_opened_to_the_vpc() -> None:
    """The fix opens SSH from the control plane's group only, not from a CIDR inside the VPC."""
    for rule in _rules("ingress", ["203.0.113.0/24"]):
        if rule["from"] is not None and int(rule["from"]) <= 22 <= int(rule["to"]) and rule["proto"] != "-1":
            assert rule["peer"] == "control_plane" or rule["cidr"] == "203.0.113.0/24", rule


# -- the AWS Load Balancer Controller's policy ---------------------------------------------------------------
def _upstream_policy() -> dict[str, Any]:
    fixture = json.loads((FIXTURES / "aws-load-balancer-controller-v2.15.0-iam-policy.json").read_text("utf-8"))
    return fixture  # type: ignore[no-any-return]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _our_statements() -> list[dict[str, Any]]:
    docs: dict[str, Any] = {}
    for block in hcl(TERRAFORM / "modules" / "iam" / "main.tf")["data"]:
        docs.update(block.get("aws_iam_policy_document", {}))
    out = []
    for statement in docs["aws_load_balancer_controller"]["statement"]:
        conditions: dict[tuple[str, str], set[str]] = {}
        for cond in statement.get("condition", []):
            conditions.setdefault((cond["test"], cond["variable"]), set()).update(map(str, cond["values"]))
        out.append(
            {
                "effect": statement.get("effect", "Allow"),
                "actions": statement["actions"],
                "resources": statement["resources"],
                "conditions": conditions,
            }
        )
    return out


def _upstream_conditions(statement: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for test, pairs in (statement.get("Condition") or {}).items():
        for variable, values in pairs.items():
            out[(test, variable)] = {str(v) for v in _as_list(values)}
    return out


def _covers(ours: dict[str, Any], action: str, resource: str, conditions: dict[tuple[str, str], set[str]]) -> bool:
    """Would `ours` allow this request, made under exactly the conditions upstream's statement requires?
    Each condition of ours must be implied by upstream's: the same key and a superset of values."""
    if ours["effect"] != "Allow":
        return False
    if not any(fnmatch.fnmatchcase(action, pattern) for pattern in ours["actions"]):
        return False
    if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in ours["resources"]):
        return False
    return all(key in conditions and conditions[key] <= values for key, values in ours["conditions"].items())


def test_load_balancer_controller_policy_grants_what_the_pinned_controller_needs() -> None:
    """Defect 8: every (action, resource, conditions) of the upstream policy is allowed by ours."""
    upstream = _upstream_policy()
    versions = yaml.safe_load((ANSIBLE / "group_vars" / "all" / "versions.yml").read_text(encoding="utf-8"))
    # the fixture is the controller version the pinned chart deploys (chart 1.15.x = controller v2.15.x)
    chart = versions["aws_load_balancer_controller_chart_version"]
    assert upstream["version"].startswith(f"v2.{chart.split('.')[1]}."), (upstream["version"], chart)
    ours = _our_statements()
    missing = []
    for statement in upstream["policy"]["Statement"]:
        assert statement["Effect"] == "Allow"
        conditions = _upstream_conditions(statement)
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                if not any(_covers(s, action, resource, conditions) for s in ours):
                    missing.append(f"{action} on {resource} when {sorted(conditions) or 'always'}")
    assert not missing, "the controller would be refused:\n" + "\n".join(missing)


def test_policy_evaluator_refuses_a_stricter_condition() -> None:
    """The evaluator itself: AddTags conditioned on an existing resource tag does not cover tag-on-create."""
    ours = {
        "effect": "Allow",
        "actions": ["elasticloadbalancing:AddTags"],
        "resources": ["*"],
        "conditions": {("Null", "aws:ResourceTag/elbv2.k8s.aws/cluster"): {"false"}},
    }
    on_create = {
        ("StringEquals", "elasticloadbalancing:CreateAction"): {"CreateLoadBalancer"},
        ("Null", "aws:RequestTag/elbv2.k8s.aws/cluster"): {"false"},
    }
    assert not _covers(
        ours, "elasticloadbalancing:AddTags", "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*", on_create
    )
    assert _covers(
        dict(ours, conditions={}), "elasticloadbalancing:AddTags", "arn:aws:elasticloadbalancing:x", on_create
    )


def test_fixture_names_its_source() -> None:
    fixture = _upstream_policy()
    assert fixture["source"].startswith("https://") and "v2.15.0" in fixture["source"]
    assert INFRA.exists()


@pytest.mark.parametrize("key", ["kubernetes.io/cluster/eco2-dev", "eco2.io/role", "a b"])
def test_metadata_tag_rule_refuses_slashes_and_spaces(key: str) -> None:
    assert not METADATA_TAG_KEY.match(key)
