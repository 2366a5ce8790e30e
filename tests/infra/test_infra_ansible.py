"""infra/ansible: syntax, ansible-lint (production profile), the Terraform-output inventory, pinned
versions in one place, and the install order the platform needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from infra_tools import ANSIBLE, ROOT, ansible_vars, run, sample_outputs, tool

INVENTORY = ANSIBLE / "inventory" / "terraform_inventory.py"


def _tasks(role: str) -> list[dict[str, Any]]:
    return yaml.safe_load((ANSIBLE / "roles" / role / "tasks" / "main.yml").read_text(encoding="utf-8"))


def _included(task: dict[str, Any]) -> str | None:
    """The role an include_role task includes, else None."""
    spec = task.get("ansible.builtin.include_role") or task.get("include_role")
    return spec["name"] if spec else None


def test_playbook_syntax_check() -> None:
    done = run([tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", "site.yml"], cwd=ANSIBLE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ansible_lint_production_profile() -> None:
    done = run([tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"], cwd=ANSIBLE, timeout=170)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "Profile 'production' was required, and it passed" in done.stderr + done.stdout


# -- inventory from Terraform outputs --------------------------------------------------------------------
def _inventory(tmp_path: Path, outputs: dict[str, Any] | None) -> dict[str, Any]:
    env = dict(os.environ, ECO2_ENV="dev")
    if outputs is not None:
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs), encoding="utf-8")
        env["ECO2_TF_OUTPUT_JSON"] = str(path)
    else:
        env["ECO2_TF_DIR"] = str(tmp_path / "nothing-applied")
    done = subprocess.run(
        [sys.executable, str(INVENTORY), "--list"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_inventory_groups_and_hostvars_from_terraform_outputs(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, sample_outputs())
    hostvars = inv["_meta"]["hostvars"]
    assert len(hostvars) == 14
    assert inv["control_plane"]["hosts"] == ["k8s-control-plane"]
    assert len(inv["api"]["hosts"]) == 7 and len(inv["worker"]["hosts"]) == 2
    for group in ("rabbitmq", "postgresql", "redis", "monitoring"):
        assert inv[group]["hosts"] == [f"k8s-{group}"]
    assert set(inv["k8s_cluster"]["children"]) == {"control_plane", "k8s_nodes"}
    assert "control_plane" not in inv["k8s_nodes"]["children"]
    api_auth = hostvars["k8s-api-auth"]
    assert api_auth["provider_id"].startswith(f"aws:///{api_auth['availability_zone']}/i-")
    assert api_auth["node_domain"] == "auth" and api_auth["node_role"] == "api"
    assert api_auth["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@198.51.100.7"
    assert hostvars["k8s-control-plane"]["ansible_host"] == "198.51.100.7"
    assert inv["all"]["vars"]["alb_security_group_id"] == "sg-0123456789abcdef0"
    assert inv["all"]["vars"]["aws_region"] == "ap-northeast-2"


def test_inventory_is_empty_before_terraform_ran(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, None)
    assert inv["_meta"]["hostvars"] == {}


def test_inventory_hosts_cover_every_play() -> None:
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text(encoding="utf-8"))
    assert [p["hosts"] for p in plays] == ["k8s_cluster", "control_plane", "k8s_nodes", "control_plane"]


# -- versions in one place ---------------------------------------------------------------------------------
def test_versions_live_in_versions_yml_only() -> None:
    versions = yaml.safe_load((ANSIBLE / "group_vars" / "all" / "versions.yml").read_text(encoding="utf-8"))
    major, minor = (int(x) for x in versions["kubernetes_version"].split(".")[:2])
    assert (major, minor) >= (1, 34)
    assert versions["kubernetes_apt_version"].startswith(versions["kubernetes_version"] + "-")
    for name, url in versions["upstream_manifests"].items():
        assert "{{" in url, f"{name}: the URL must take its version from a variable"
    # no role or template spells a release URL or version of its own
    release = re.compile(r"releases/download|raw\.githubusercontent\.com|/v\d+\.\d+\.\d+/")
    for path in sorted((ANSIBLE / "roles").rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not release.search(text), f"{path.relative_to(ROOT)} pins a release itself"
    # and no upstream release manifest is copied into the repository
    for path in sorted((ROOT / "infra").rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        assert "kind: CustomResourceDefinition" not in text, f"{path.relative_to(ROOT)}: an upstream CRD copied in"


def test_knative_and_rabbitmq_install_in_order() -> None:
    def manifests(role: str) -> list[str]:
        return [t["vars"].get("manifest_name") or t["vars"].get("component_name") for t in _tasks(role) if _included(t)]

    assert manifests("knative_serving") == [
        "knative-serving-crds",
        "knative-serving-core",
        "istio-crds",
        "istio",
        "net-istio",
        "knative",
    ]
    assert manifests("knative_eventing") == ["knative-eventing-crds", "knative-eventing-core"]
    assert manifests("rabbitmq") == [
        "cert-manager",
        "rabbitmq-cluster-operator",
        "rabbitmq-topology-operator",
        "namespaces",
        "rabbitmq",
        "eventing-rabbitmq-broker",
        "eco2-broker",
    ]
    for role in ("knative_serving", "knative_eventing", "rabbitmq"):
        for task in _tasks(role):
            if _included(task) == "manifest":
                assert task["vars"].get("manifest_waits"), f"{role}: {task['name']} does not wait for readiness"
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text(encoding="utf-8"))
    order = [r["role"] if isinstance(r, dict) else r for r in plays[-1]["roles"]]
    assert order == [
        "node_roles",
        "calico",
        "helm",
        "aws_addons",
        "knative_serving",
        "knative_eventing",
        "rabbitmq",
        "data_services",
        "monitoring",
        "argocd",
    ]


def test_node_prerequisites() -> None:
    os_tasks = yaml.safe_dump(_tasks("os_prereqs"))
    for needed in (
        "swapoff -a",
        "overlay",
        "br_netfilter",
        "net.bridge.bridge-nf-call-iptables",
        "net.ipv4.ip_forward",
    ):
        assert needed in os_tasks, needed
    assert "SystemdCgroup = true" in yaml.safe_dump(_tasks("containerd"))
    for template in ("control_plane/templates/kubeadm-init.yaml.j2", "node_join/templates/kubeadm-join.yaml.j2"):
        text = (ANSIBLE / "roles" / template).read_text(encoding="utf-8")
        assert "name: provider-id" in text and "{{ provider_id }}" in text, template
    labels = yaml.safe_dump(_tasks("node_roles"))
    assert "node-role.kubernetes.io/" in labels and "delegate_to" not in labels  # runs on the control plane
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text(encoding="utf-8"))
    assert plays[-1]["hosts"] == "control_plane"


def test_rabbitmq_cluster_and_data_are_pinned_to_their_nodes() -> None:
    taints = ansible_vars()["node_role_taints"]
    assert set(taints) == {"rabbitmq", "postgresql", "redis", "monitoring"}
