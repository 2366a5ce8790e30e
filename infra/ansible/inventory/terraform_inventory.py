#!/usr/bin/env python3
"""Ansible dynamic inventory from the Terraform outputs of one env root.

Reads `terraform -chdir=infra/terraform/envs/$ECO2_ENV output -json` (or, for tests and air-gapped
runs, the JSON file named by ECO2_TF_OUTPUT_JSON) and prints the inventory Ansible expects:

  groups    control_plane, api, worker, rabbitmq, postgresql, redis, monitoring (one per node role),
            k8s_nodes (every node but the control plane), k8s_cluster (all 14)
  hostvars  ansible_host (private IP), instance_id, provider_id (aws:///<az>/<instance-id>),
            node_role, node_domain, availability_zone; private nodes are reached through the control
            plane's public address (ProxyJump), the only node with one
  all vars  eco2_env, cluster_name, aws_region, vpc_id, api_domain, images_bucket, ...

Usage: ansible-inventory -i inventory/terraform_inventory.py --graph
       ECO2_ENV=prod ansible-playbook site.yml
With no Terraform state (nothing applied yet, no terraform binary) it prints an empty inventory and
says why on stderr, so `ansible-playbook --syntax-check` works anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TERRAFORM_ENVS = HERE.parents[1] / "terraform" / "envs"
ROLES = ("control-plane", "api", "worker", "rabbitmq", "postgresql", "redis", "monitoring")
# Terraform output name -> inventory variable for every scalar output passed to all hosts.
GLOBAL_OUTPUTS = {
    "cluster_name": "cluster_name",
    "region": "aws_region",
    "vpc_id": "vpc_id",
    "vpc_cidr": "vpc_cidr",
    "api_domain": "api_domain",
    "alb_name": "alb_name",
    "alb_security_group_id": "alb_security_group_id",
    "api_certificate_arn": "api_certificate_arn",
    "images_bucket": "images_bucket",
    "images_cdn_domain": "images_cdn_domain",
}


def empty(reason: str) -> dict[str, Any]:
    print(f"terraform_inventory: empty inventory: {reason}", file=sys.stderr)
    return {"_meta": {"hostvars": {}}, "all": {"children": []}}


def terraform_outputs(env: str) -> dict[str, Any] | None:
    """`terraform output -json` as {name: value}, or None when there is nothing to read."""
    path = os.environ.get("ECO2_TF_OUTPUT_JSON")
    if path:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    else:
        binary = os.environ.get("TERRAFORM", "terraform")
        root = Path(os.environ.get("ECO2_TF_DIR", TERRAFORM_ENVS / env))
        if shutil.which(binary) is None or not (root / ".terraform").is_dir():
            return None
        done = subprocess.run(
            [binary, f"-chdir={root}", "output", "-json"], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return None
        raw = json.loads(done.stdout or "{}")
    # `terraform output -json` wraps each value: {"name": {"value": ..., "type": ..., "sensitive": ...}}
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()}


def build(outputs: dict[str, Any], env: str) -> dict[str, Any]:
    nodes: dict[str, dict[str, Any]] = outputs.get("nodes") or {}
    if not nodes:
        return empty("the Terraform outputs have no nodes")
    control = [name for name, n in nodes.items() if n["role"] == "control-plane"]
    if len(control) != 1:
        raise SystemExit(f"terraform_inventory: expected one control-plane node, found {control}")
    bastion = nodes[control[0]].get("public_ip") or ""

    groups: dict[str, list[str]] = {role.replace("-", "_"): [] for role in ROLES}
    hostvars: dict[str, dict[str, Any]] = {}
    for name in sorted(nodes):
        node = nodes[name]
        groups[node["role"].replace("-", "_")].append(name)
        hv: dict[str, Any] = {
            "ansible_host": node["private_ip"],
            "instance_id": node["instance_id"],
            "provider_id": node.get("provider_id") or f"aws:///{node['az']}/{node['instance_id']}",
            "availability_zone": node["az"],
            "node_role": node["role"],
            "node_domain": node.get("domain") or "",
            "private_ip": node["private_ip"],
        }
        if node["role"] == "control-plane":
            hv["ansible_host"] = node.get("public_ip") or node["private_ip"]
        elif bastion:
            hv["ansible_ssh_common_args"] = f"-o ProxyJump=ubuntu@{bastion}"
        hostvars[name] = hv

    inventory: dict[str, Any] = {"_meta": {"hostvars": hostvars}}
    for group, hosts in groups.items():
        inventory[group] = {"hosts": hosts}
    inventory["k8s_nodes"] = {"children": [g for g in groups if g != "control_plane"]}
    inventory["k8s_cluster"] = {"children": ["control_plane", "k8s_nodes"]}
    global_vars = {"eco2_env": env}
    global_vars.update({var: outputs[name] for name, var in GLOBAL_OUTPUTS.items() if name in outputs})
    inventory["all"] = {"children": ["k8s_cluster"], "vars": global_vars}
    return inventory


def main(argv: list[str]) -> int:
    env = os.environ.get("ECO2_ENV", "dev")
    if len(argv) > 1 and argv[1] == "--host":
        print("{}")  # everything is in _meta
        return 0
    outputs = terraform_outputs(env)
    inventory = empty(f"no Terraform outputs for env {env!r}") if outputs is None else build(outputs, env)
    print(json.dumps(inventory, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
