"""Cross-checks across infra/ and func.yaml (issue 20, defects 9 and 10): what one part references,
another part really creates.

- Every Secret and ConfigMap key referenced by a rendered object — the Knative Services `eco2 manifests`
  renders from func.yaml, every built overlay, the Atlantis chart's values — is created by the overlays,
  by an Ansible template (rendered by Ansible itself), or documented as created by hand in
  infra/README.md ("Secrets created by hand"). Generic on purpose: a new function's reference to a new
  secret fails here until someone creates or documents it.
- Every ArgoCD source path (child Applications, the root Application of each env) exists in git and is
  not git-ignored; the committed eventing objects are what `eco2 manifests` renders.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import ANSIBLE, INFRA, K8S, ROOT, kustomize, local_play, overlays

ENVS = ["dev", "prod"]
Ref = tuple[str, str, str, str | None]  # (namespace, Secret|ConfigMap, name, key or None for the whole object)


class _AnyEnv(Mapping[str, str]):
    """`{{ env:VAR }}` in func.yaml resolves to a placeholder: only references matter here."""

    def __getitem__(self, key: str) -> str:
        return "placeholder"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return True


def _rendered_functions() -> list[dict[str, Any]]:
    funcyaml = pytest.importorskip("eco2.core.funcyaml")
    manifests = pytest.importorskip("eventing.manifests")
    project = funcyaml.load(ROOT / "func.yaml")
    return manifests.render(project, environ=_AnyEnv())  # type: ignore[no-any-return]


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec of a Knative Service, a StatefulSet, a Deployment, ... (spec.template.spec)."""
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]


def references(obj: dict[str, Any]) -> set[Ref]:
    namespace = obj["metadata"].get("namespace", "default")
    out: set[Ref] = set()
    for pod in _pod_specs(obj):
        for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
            for env in container.get("env", []):
                source = env.get("valueFrom") or {}
                for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if field in source and not source[field].get("optional"):
                        out.add((namespace, kind, source[field]["name"], source[field]["key"]))
            for env_from in container.get("envFrom", []):
                for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                    if field in env_from and not env_from[field].get("optional"):
                        out.add((namespace, kind, env_from[field]["name"], None))
        for volume in pod.get("volumes", []):
            for field, kind, name_field in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
                if field in volume and not volume[field].get("optional"):
                    name = volume[field][name_field]
                    keys = [item["key"] for item in volume[field].get("items", [])] or [None]
                    out |= {(namespace, kind, name, key) for key in keys}
    return out


def _atlantis_references() -> set[Ref]:
    """The Atlantis chart (runatlantis/helm-charts, templates/statefulset.yaml of the pinned version) reads
    github_token and github_secret from `vcsSecretName` when `github.user` is set; the chart itself is not
    rendered offline, so its references are derived from our values."""
    out: set[Ref] = set()
    for path in sorted(K8S.rglob("atlantis-values.yaml")):
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        if values.get("vcsSecretName") and (values.get("github") or {}).get("user"):
            out |= {("atlantis", "Secret", values["vcsSecretName"], k) for k in ("github_token", "github_secret")}
    return out


def _created_by_objects(docs: list[dict[str, Any]]) -> set[Ref]:
    out: set[Ref] = set()
    for doc in docs:
        if doc.get("kind") in ("Secret", "ConfigMap"):
            namespace, name = doc["metadata"].get("namespace", "default"), doc["metadata"]["name"]
            out.add((namespace, doc["kind"], name, None))
            for field in ("data", "stringData", "binaryData"):
                out |= {(namespace, doc["kind"], name, key) for key in doc.get(field) or {}}
    return out


@pytest.fixture(scope="module")
def ansible_created(tmp_path_factory: pytest.TempPathFactory) -> set[Ref]:
    """Secrets and ConfigMaps of every Ansible template, rendered by Ansible with the real group_vars."""
    work = tmp_path_factory.mktemp("secrets")
    templates = [
        p
        for p in sorted((ANSIBLE / "roles").rglob("*.j2"))
        if re.search(r"^kind: (Secret|ConfigMap)$", p.read_text(encoding="utf-8"), re.M)
    ]
    assert templates, "no Ansible template creates a Secret"
    tasks = [
        {
            "name": f"Render {p.name}",
            "ansible.builtin.template": {"src": str(p), "dest": f"{{{{ out }}}}/{i}-{p.name}.yaml", "mode": "0600"},
        }
        for i, p in enumerate(templates)
    ]
    # the templates' roles' defaults, as the roles see them (the generated passwords land in work/)
    defaults: dict[str, Any] = {}
    for p in templates:
        role_defaults = p.parents[1] / "defaults" / "main.yml"
        if role_defaults.exists():
            defaults.update(yaml.safe_load(role_defaults.read_text(encoding="utf-8")) or {})
    defaults.update(data_services_credentials_dir=str(work / "credentials"), ansible_managed="rendered by tests")
    out = local_play(work, tasks, **defaults)
    docs = [d for path in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    return _created_by_objects(docs)


def _documented() -> set[Ref]:
    """Rows of infra/README.md's table "Secrets created by hand": | `name` | `namespace` | `key`, ... | ... |"""
    text = (INFRA / "README.md").read_text(encoding="utf-8")
    section = text.split("### Secrets created by hand", 1)
    assert len(section) == 2, "infra/README.md has no section 'Secrets created by hand'"
    out: set[Ref] = set()
    for line in section[1].split("\n#", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        name, namespace = cells[0].strip("`"), cells[1].strip("`")
        out.add((namespace, "Secret", name, None))
        out |= {(namespace, "Secret", name, key) for key in re.findall(r"`([^`]+)`", cells[2])}
    return out


@pytest.mark.parametrize("env", ENVS)
def test_every_referenced_secret_and_configmap_key_is_created(env: str, ansible_created: set[Ref]) -> None:
    env_overlays = [d for d in overlays() if d.relative_to(K8S / "overlays").parts[0] == env]
    built = [doc for directory in env_overlays for doc in kustomize(directory)]
    referenced: set[Ref] = set()
    for obj in [*_rendered_functions(), *built]:
        referenced |= references(obj)
    referenced |= _atlantis_references()
    assert {r for r in referenced if r[2] == "eco2-jwt"}, "the reader found no function's JWT secret"
    created = _created_by_objects(built) | ansible_created | _documented()
    missing = sorted(r for r in referenced if r not in created)
    assert not missing, (
        f"{env}: referenced, created nowhere (overlays, Ansible templates) and not documented in "
        "infra/README.md 'Secrets created by hand':\n" + "\n".join(f"{r[1]} {r[0]}/{r[2]} key {r[3]}" for r in missing)
    )


def test_reference_reader_sees_env_volume_and_envfrom_references() -> None:
    pod = {
        "containers": [
            {
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c"}}],
            }
        ],
        "volumes": [{"name": "v", "secret": {"secretName": "t"}}],
    }
    obj = {
        "kind": "StatefulSet",
        "apiVersion": "apps/v1",
        "metadata": {"namespace": "n"},
        "spec": {"template": {"spec": pod}},
    }
    assert references(obj) == {("n", "Secret", "s", "k"), ("n", "ConfigMap", "c", None), ("n", "Secret", "t", None)}


# -- ArgoCD source paths --------------------------------------------------------------------------------------
def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)


def _argocd_paths(tmp_path: Path) -> list[tuple[str, str]]:
    paths = []
    for env in ENVS:
        for app in (d for d in kustomize(K8S / "overlays" / env) if d["kind"] == "Application"):
            spec = app["spec"]
            for source in spec.get("sources") or [spec["source"]]:
                if source.get("path"):
                    paths.append((f"{env}: {app['metadata']['name']}", source["path"]))
        template = (ANSIBLE / "roles" / "argocd" / "templates" / "root-app.yaml.j2").read_text(encoding="utf-8")
        root = yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "x", re.sub(r"\{\{\s*eco2_env\s*\}\}", env, template)))
        paths.append((f"{env}: eco2-root", root["spec"]["source"]["path"]))
    return paths


def test_every_argocd_source_path_is_in_git_and_not_ignored(tmp_path: Path) -> None:
    if _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout")
    problems = []
    paths = _argocd_paths(tmp_path)
    assert len(paths) >= 2 * 6
    for who, path in paths:
        directory = ROOT / path
        if not directory.is_dir():
            problems.append(f"{who}: {path} does not exist")
            continue
        files = [p for p in directory.rglob("*") if p.is_file()]
        ignored = _git("check-ignore", "--no-index", str(directory), *map(str, files)).stdout.split()
        if ignored:
            problems.append(f"{who}: {path} is git-ignored ({len(ignored)} paths)")
        if not _git("ls-files", "--", path).stdout.strip():
            problems.append(f"{who}: {path} holds no file tracked by git")
    assert not problems, "\n".join(problems)


def test_committed_eventing_objects_are_what_eco2_manifests_renders() -> None:
    manifests = pytest.importorskip("eventing.manifests")
    shared = [o for o in _rendered_functions() if o["kind"] in ("Broker", "RabbitmqBrokerConfig")]
    assert shared
    directory = K8S / "eventing"
    expected = {manifests.file_name(o): manifests.dump(o) for o in shared}
    actual = {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.yaml"))}
    assert actual == expected, "infra/k8s/eventing is stale: rewrite it from `eco2 manifests` (infra/README.md)"
