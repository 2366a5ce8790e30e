"""infra/ansible run for real on this machine (connection local, nothing leaves it), for what a first
`ansible-playbook site.yml` would do (issue 20):

- variable precedence: a prod inventory, through the playbook's own group_vars, yields the prod overlay;
- the helm role's unpack step against an archive with the release's member layout (recorded listing);
- Calico's install order against the recorded contents of its release manifests: every wait finds the
  CRD it waits on already applied;
- each component the roles apply selects, from the built overlay, only objects whose kinds exist at
  that point of the install (no CRD that arrives later).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import ANSIBLE, K8S, TOOLS_VENV, local_play, tool

ROLES = ANSIBLE / "roles"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _tasks(role: str, name: str = "main") -> list[dict[str, Any]]:
    return yaml.safe_load((ROLES / role / "tasks" / f"{name}.yml").read_text(encoding="utf-8")) or []


def _include(task: dict[str, Any]) -> str | None:
    spec = task.get("ansible.builtin.include_role") or task.get("include_role")
    return spec["name"] if spec else None


# -- defect 3: variable precedence ---------------------------------------------------------------------
def test_a_prod_inventory_yields_the_prod_overlay(tmp_path: Path) -> None:
    tasks = [
        {
            "name": "Render the root Application",
            "ansible.builtin.template": {
                "src": str(ROLES / "argocd" / "templates" / "root-app.yaml.j2"),
                "dest": "{{ out }}/root-app.yaml",
                "mode": "0644",
            },
        },
        {
            "name": "Record the environment as the roles see it",
            "ansible.builtin.copy": {
                "content": "{{ {'eco2_env': eco2_env} | to_json }}",
                "dest": "{{ out }}/env.json",
                "mode": "0644",
            },
        },
    ]
    out = local_play(tmp_path, tasks, env_name="prod")
    [app] = [d for d in yaml.safe_load_all((out / "root-app.yaml").read_text(encoding="utf-8")) if d]
    assert app["spec"]["source"]["path"] == "infra/k8s/overlays/prod"
    assert json.loads((out / "env.json").read_text(encoding="utf-8"))["eco2_env"] == "prod"


# -- defect 4: the helm archive ------------------------------------------------------------------------
def _unpack_task() -> dict[str, Any]:
    [install] = [t for t in _tasks("helm") if t.get("name") == "Install Helm"]
    [unpack] = [t for t in install["block"] if "ansible.builtin.unarchive" in t]
    return unpack


def test_helm_unpacks_from_the_release_archive_layout(tmp_path: Path) -> None:
    members = json.loads((FIXTURES / "helm-v3-linux-amd64-archive.json").read_text(encoding="utf-8"))["members"]
    archive = tmp_path / "helm.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for member in members:
            info = tarfile.TarInfo(member.rstrip("/"))
            if member.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            body = b"#!/bin/sh\necho v3.19.2+gtest\n" if member.endswith("/helm") else b"text\n"
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
    task = json.loads(json.dumps(_unpack_task()))
    task["ansible.builtin.unarchive"]["src"] = str(archive)
    task["ansible.builtin.unarchive"]["dest"] = str(tmp_path / "bin")
    (tmp_path / "bin").mkdir()
    local_play(tmp_path / "play", [task])
    helm = tmp_path / "bin" / "helm"
    assert helm.is_file() and helm.stat().st_mode & 0o111
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["helm"]  # only the binary, no directory


# -- defect 5: Calico's CRDs ---------------------------------------------------------------------------
def _manifest_key(task: dict[str, Any]) -> str | None:
    url = task.get("vars", {}).get("manifest_url", "")
    match = re.fullmatch(r"\{\{\s*upstream_manifests\.(\w+)\s*\}\}", url)
    return match.group(1) if match else None


def test_calico_waits_only_for_crds_already_applied() -> None:
    listing = json.loads((FIXTURES / "calico-v3.31-manifests.json").read_text(encoding="utf-8"))
    applied: set[str] = set()
    steps = 0
    for task in _tasks("calico"):
        if _include(task) != "manifest":
            continue
        steps += 1
        key = _manifest_key(task)
        if key is not None:
            assert key in listing["manifests"], f"no recorded listing for {key}"
            applied |= set(listing["manifests"][key]["crds"])
        else:  # a file the role wrote itself: the Installation and APIServer
            template = (ROLES / "calico" / "templates" / "installation.yaml.j2").read_text(encoding="utf-8")
            docs = yaml.safe_load_all(re.sub(r"\{\{.*?\}\}", "x", template))
            for doc in docs:
                needed = listing["kinds_to_crds"][doc["kind"]]
                assert needed in applied, f"{task['name']}: {doc['kind']} needs {needed}, not applied yet"
        for wait in task["vars"].get("manifest_waits", []):
            crd = re.search(r"crd/(\S+)", wait)
            if crd:
                assert crd.group(1) in applied, f"{task['name']}: waits for {crd.group(1)}, which no manifest applied"
            resource = re.search(r"\s(\w+)/\S+$", wait)
            if resource and resource.group(1) in listing["resources_to_crds"]:
                assert listing["resources_to_crds"][resource.group(1)] in applied, wait
    assert steps >= 3


# -- defect 6: components never need a CRD installed later ---------------------------------------------
BUILT_IN = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "StatefulSet",
    "Deployment",
    "NetworkPolicy",
    "StorageClass",
    "ServiceAccount",
}
# kind -> (role, manifest name or Helm release) that brings its CRD
PROVIDERS = {
    "RabbitmqCluster": ("rabbitmq", "rabbitmq-cluster-operator"),
    "PodMonitor": ("monitoring", "kube-prometheus-stack"),
    "PrometheusRule": ("monitoring", "kube-prometheus-stack"),
    "VirtualService": ("knative_serving", "istio-crds"),
    "Application": ("argocd", "argocd"),
    "AppProject": ("argocd", "argocd"),
}


def _install_steps() -> list[tuple[str, str, dict[str, Any]]]:
    """(role, step, task) in the order site.yml runs them: manifests, Helm releases, components."""
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text(encoding="utf-8"))
    order = [r["role"] if isinstance(r, dict) else r for r in plays[-1]["roles"]]
    steps = []
    for role in order:
        for task in _tasks(role):
            if _include(task) == "manifest":
                steps.append((role, task["vars"]["manifest_name"], task))
            elif _include(task) == "component":
                steps.append((role, "component", task))
            elif "kubernetes.core.helm" in task:
                steps.append((role, task["kubernetes.core.helm"]["name"], task))
    return steps


def test_component_selection_needs_no_crd_installed_later(tmp_path: Path) -> None:
    steps = _install_steps()
    components = [(i, role, task["vars"]) for i, (role, step, task) in enumerate(steps) if step == "component"]
    assert len(components) >= 5
    tasks = []
    for i, _, spec in components:
        tasks.append(
            {
                "name": f"Select {spec['component_overlay']}/{spec.get('component_name') or 'all'}",
                "ansible.builtin.include_role": {"name": "component", "tasks_from": "select"},
                "vars": {
                    "component_overlay": spec["component_overlay"],
                    "component_name": spec.get("component_name", ""),
                    "component_dir": f"{{{{ out }}}}/step-{i}",
                },
            }
        )
    if not (TOOLS_VENV / "bin" / "kubectl").exists():
        tool("kubectl")  # skips (or fails in CI) with the install hint
    # site.yml's platform play copies infra/k8s to k8s_repo_dir before any role runs
    shutil.copytree(K8S, tmp_path / "k8s-copy")
    out = local_play(
        tmp_path, tasks, env_name="prod", manifests_dir=str(tmp_path / "m"), k8s_repo_dir=str(tmp_path / "k8s-copy")
    )
    # the apply uses exactly that selection, never the whole overlay
    applied = [t for t in _tasks("component") if "kubectl" in str(t.get("ansible.builtin.command", ""))]
    for task in applied:
        argv = task["ansible.builtin.command"]["argv"]
        if "apply" in argv or "diff" in argv:
            assert "-k" not in argv and "{{ component_dir }}/objects.yaml" in argv, argv
    late = []
    for i, role, spec in components:
        docs = [d for d in yaml.safe_load_all((out / f"step-{i}" / "objects.yaml").read_text(encoding="utf-8")) if d]
        assert docs, f"{role}: {spec} selected nothing"
        for doc in docs:
            if spec.get("component_name"):
                assert doc["metadata"]["labels"]["eco2.io/component"] == spec["component_name"]
            kind = doc["kind"]
            if kind in BUILT_IN:
                continue
            assert kind in PROVIDERS, f"{kind}: which step installs its CRD?"
            provider = PROVIDERS[kind]
            installed_at = [j for j, (r, s, _) in enumerate(steps) if (r, s) == provider]
            if not installed_at or installed_at[0] > i:
                late.append(f"{role} applies {spec} at step {i}: {kind} {doc['metadata']['name']} needs {provider}")
    assert not late, "\n".join(late)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_selection_matches_the_labels_of_the_built_overlay(env: str) -> None:
    """The label each component selects exists in every env's platform overlay."""
    from infra_tools import kustomize

    labels = {
        (d["metadata"].get("labels") or {}).get("eco2.io/component")
        for d in kustomize(K8S / "overlays" / env / "platform")
    }
    for _, step, task in _install_steps():
        if step == "component" and task["vars"]["component_overlay"] == "platform":
            assert task["vars"]["component_name"] in labels, (env, task["vars"])
