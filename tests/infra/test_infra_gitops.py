"""GitOps layers 0 and 3 (issue 18): Atlantis for infra/terraform, and the pull-request workflow.

- atlantis.yaml: every Terraform root is a project; every module a root uses (followed through its
  module blocks, transitively) and the root's own files are in its autoplan patterns, evaluated as
  Atlantis does (relative to the project dir); apply requires approval and mergeability; plan runs
  `terraform fmt -check` before the plan; prod and bootstrap apply through the restricted workflow.
- The Atlantis ArgoCD app: the chart version is versions.yml's, the values' keys exist in that chart
  version (recorded key listing), the secret it reads is created or documented (test_infra_crosscheck),
  only POST /events is routed; its kustomize part builds and passes checkov with the other overlays.
- The bootstrap root's Atlantis role: state access limited to the state bucket's prefixes, the lock
  table and the state key; trusted only by the prod workers' role.
- actionlint (offline) on every workflow, and it really reports a broken one.
- infra/tools/fetch-crds.py against a local mirror of the release URLs.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import ANSIBLE, INFRA, K8S, ROOT, TERRAFORM, hcl, kustomize, resources, run, tool

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ATLANTIS_YAML = ROOT / "atlantis.yaml"
WORKFLOWS = ROOT / ".github" / "workflows"


def _atlantis() -> dict[str, Any]:
    return yaml.safe_load(ATLANTIS_YAML.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _roots() -> list[Path]:
    return sorted(p for p in (TERRAFORM / "envs").iterdir() if p.is_dir() and any(p.glob("*.tf")))


def _modules_used(directory: Path, seen: set[Path] | None = None) -> set[Path]:
    """Local module directories a Terraform directory uses, transitively (module blocks' `source`)."""
    seen = set() if seen is None else seen
    for path in sorted(directory.glob("*.tf")):
        for block in hcl(path).get("module", []):
            for body in block.values():
                source = body["source"]
                if source.startswith(("./", "../")):
                    module = (directory / source).resolve()
                    if module not in seen:
                        seen.add(module)
                        _modules_used(module, seen)
    return seen


def _pattern_regex(pattern: str, project_dir: Path) -> re.Pattern[str]:
    """An autoplan when_modified pattern (relative to the project dir, ** across directories) as a regex
    over repository-relative paths."""
    absolute = os.path.normpath(project_dir / pattern)
    relative = os.path.relpath(absolute, ROOT)
    out = ""
    i = 0
    while i < len(relative):
        if relative.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif relative.startswith("**", i):
            out += ".*"
            i += 2
        elif relative[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(relative[i])
            i += 1
    return re.compile(out + "$")


def _tracked_files(directory: Path) -> Iterator[str]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and ".terraform" not in path.parts and path.suffix in {".tf", ".tfvars", ".hcl"}:
            yield str(path.relative_to(ROOT))


def _project(name_or_dir: Path) -> dict[str, Any]:
    rel = str(name_or_dir.relative_to(ROOT))
    [project] = [p for p in _atlantis()["projects"] if p["dir"] == rel]
    return project


def test_every_terraform_root_is_a_project() -> None:
    config = _atlantis()
    assert config["version"] == 3
    dirs = {p["dir"] for p in config["projects"]}
    assert dirs == {str(r.relative_to(ROOT)) for r in _roots()}
    assert {r.name for r in _roots()} >= {"dev", "prod", "bootstrap"}
    assert len({p["name"] for p in config["projects"]}) == len(config["projects"])


@pytest.mark.parametrize("root", _roots(), ids=lambda p: p.name)
def test_autoplan_covers_the_root_and_every_module_it_uses(root: Path) -> None:
    project = _project(root)
    assert project["autoplan"]["enabled"] is True
    patterns = [_pattern_regex(p, ROOT / project["dir"]) for p in project["autoplan"]["when_modified"]]
    files = [*_tracked_files(root)]
    for module in sorted(_modules_used(root)):
        files += [f for f in _tracked_files(module) if "/tests/" not in f]
    assert files
    unplanned = [f for f in files if not any(p.match(f) for p in patterns)]
    assert not unplanned, f"{project['name']}: a change to these would not be planned: {unplanned}"
    if root.name != "bootstrap":
        assert len(_modules_used(root)) >= 7  # eco2 and its six modules


def test_module_reader_follows_module_blocks() -> None:
    used = {p.name for p in _modules_used(TERRAFORM / "envs" / "dev")}
    assert used == {"eco2", "network", "security", "edge", "images", "iam", "nodes"}
    assert not _pattern_regex("../../modules/iam/*.tf", TERRAFORM / "envs" / "dev").match(
        "infra/terraform/modules/nodes/main.tf"
    )


def test_apply_requires_approval_and_mergeability() -> None:
    for project in _atlantis()["projects"]:
        assert {"approved", "mergeable"} <= set(project["apply_requirements"]), project["name"]
    server = yaml.safe_load((K8S / "base" / "atlantis" / "atlantis-values.yaml").read_text(encoding="utf-8"))
    [repo] = yaml.safe_load(server["repoConfig"])["repos"]
    assert {"approved", "mergeable"} <= set(repo["apply_requirements"])  # also when atlantis.yaml is edited
    assert {p["workflow"] for p in _atlantis()["projects"]} <= set(repo["allowed_workflows"])
    assert server["orgAllowlist"] == repo["id"]


def _steps(workflow: dict[str, Any], stage: str) -> list[Any]:
    return workflow[stage]["steps"]  # type: ignore[no-any-return]


def test_plan_checks_formatting_and_validates_before_planning() -> None:
    workflows = _atlantis()["workflows"]
    for name in {p["workflow"] for p in _atlantis()["projects"]}:
        steps = _steps(workflows[name], "plan")
        names = [s if isinstance(s, str) else next(iter(s)) for s in steps]
        runs = [s.get("run", "") if isinstance(s, dict) else "" for s in steps]
        fmt = next(i for i, r in enumerate(runs) if r.startswith("terraform fmt -check"))
        validate = next(i for i, r in enumerate(runs) if r.startswith("terraform validate"))
        init = names.index("init")
        assert fmt < names.index("plan") and init < validate < names.index("plan"), name
        assert "-backend-config=backend.hcl" in steps[init]["init"]["extra_args"], name
    for root in _roots():
        assert (root / "backend.hcl").exists(), f"{root.name}: init -backend-config=backend.hcl needs it"


def test_prod_and_bootstrap_apply_only_through_the_restricted_workflow() -> None:
    workflows = _atlantis()["workflows"]
    by_name = {p["name"]: p for p in _atlantis()["projects"]}
    for name in ("prod", "bootstrap"):
        workflow = workflows[by_name[name]["workflow"]]
        steps = _steps(workflow, "apply")
        guard = next(i for i, s in enumerate(steps) if isinstance(s, dict) and "PULL_AUTHOR" in s.get("run", ""))
        assert guard < steps.index("apply"), name
    assert by_name["dev"]["workflow"] != by_name["prod"]["workflow"]


@pytest.mark.parametrize(("user", "author", "allowed"), [("alice", "bob", True), ("bob", "bob", False)])
def test_the_four_eyes_step_refuses_the_author(user: str, author: str, allowed: bool) -> None:
    """The restricted workflow's guard, run by a shell as Atlantis runs it (sh -c, its env variables)."""
    steps = _steps(_atlantis()["workflows"]["eco2-restricted"], "apply")
    [guard] = [s["run"] for s in steps if isinstance(s, dict) and "PULL_AUTHOR" in s.get("run", "")]
    env = dict(os.environ, USER_NAME=user, PULL_AUTHOR=author, PROJECT_NAME="prod")
    done = subprocess.run(["sh", "-c", guard], env=env, capture_output=True, text=True, check=False)
    assert (done.returncode == 0) is allowed, done.stdout + done.stderr


def test_codeowners_guard_what_the_restricted_projects_read() -> None:
    owners = (ROOT / ".github" / "CODEOWNERS").read_text(encoding="utf-8")
    for path in (
        "/infra/terraform/envs/prod/",
        "/infra/terraform/envs/bootstrap/",
        "/infra/terraform/modules/",
        "/atlantis.yaml",
    ):
        assert re.search(rf"^{re.escape(path)}\s+@", owners, re.M), path


# -- the Atlantis server ---------------------------------------------------------------------------------
def _atlantis_app() -> dict[str, Any]:
    [app] = [
        d
        for d in kustomize(K8S / "overlays" / "prod")
        if d["kind"] == "Application" and d["metadata"]["name"] == "eco2-atlantis"
    ]
    return app


def test_atlantis_chart_is_the_version_pinned_in_versions_yml() -> None:
    versions = yaml.safe_load((ANSIBLE / "group_vars" / "all" / "versions.yml").read_text(encoding="utf-8"))
    chart = next(s for s in _atlantis_app()["spec"]["sources"] if s.get("chart"))
    assert chart["targetRevision"] == versions["atlantis_chart_version"]
    assert chart["repoURL"] == versions["helm_charts"]["atlantis"]["repo"]
    assert chart["chart"] == versions["helm_charts"]["atlantis"]["chart"]
    recorded = json.loads((FIXTURES / "atlantis-chart-6.9.3-values-keys.json").read_text(encoding="utf-8"))
    assert recorded["chart_version"] == versions["atlantis_chart_version"], "re-record the chart's value keys"


def test_atlantis_app_sources_exist_and_the_project_admits_them() -> None:
    app = _atlantis_app()
    sources = app["spec"]["sources"]
    chart = next(s for s in sources if s.get("chart"))
    [ref] = [s["ref"] for s in sources if s.get("ref")]
    for value_file in chart["helm"]["valueFiles"]:
        assert value_file.startswith(f"${ref}/"), value_file
        assert (ROOT / value_file.removeprefix(f"${ref}/")).is_file(), value_file
    [path] = [s["path"] for s in sources if s.get("path")]
    assert kustomize(ROOT / path)
    [project] = [d for d in kustomize(K8S / "overlays" / "prod") if d["kind"] == "AppProject"]
    assert {s["repoURL"] for s in sources} <= set(project["spec"]["sourceRepos"])
    assert app["spec"]["destination"]["namespace"] in {d["namespace"] for d in project["spec"]["destinations"]}
    assert "eco2-atlantis" not in {d["metadata"]["name"] for d in kustomize(K8S / "overlays" / "dev")}


def _key_paths(values: dict[str, Any], free_form: set[str], prefix: str = "", depth: int = 0) -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and depth < 1 and path not in free_form:
            yield from _key_paths(value, free_form, f"{path}.", depth + 1)


def test_atlantis_values_use_only_keys_the_chart_has() -> None:
    values = yaml.safe_load((K8S / "base" / "atlantis" / "atlantis-values.yaml").read_text(encoding="utf-8"))
    recorded = json.loads((FIXTURES / "atlantis-chart-6.9.3-values-keys.json").read_text(encoding="utf-8"))
    unknown = [k for k in _key_paths(values, set(recorded["free_form"])) if k not in set(recorded["keys"])]
    assert not unknown, f"not values of the pinned chart (typos are silently ignored by Helm): {unknown}"
    assert values["service"]["type"] == "ClusterIP" and values["ingress"]["enabled"] is False
    assert values["nodeSelector"] == {"eco2.io/role": "worker"}  # the instance profile that may assume its role
    assert "role_arn = arn:aws:iam::" in values["aws"]["config"] and ":role/eco2-atlantis" in values["aws"]["config"]


def test_only_the_webhook_is_routed_to_atlantis() -> None:
    docs = kustomize(K8S / "overlays" / "prod" / "atlantis")
    [vs] = [d for d in docs if d["kind"] == "VirtualService"]
    assert vs["spec"]["gateways"] == ["knative-serving/knative-ingress-gateway"]
    [http] = vs["spec"]["http"]
    assert http["match"] == [{"uri": {"exact": "/events"}, "method": {"exact": "POST"}}]
    assert http["route"][0]["destination"]["host"] == "atlantis.atlantis.svc.cluster.local"
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}]


# -- the Atlantis role (envs/bootstrap) -------------------------------------------------------------------
def _policy_documents(path: Path) -> dict[str, Any]:
    docs: dict[str, Any] = {}
    for block in hcl(path).get("data", []):
        docs.update(block.get("aws_iam_policy_document", {}))
    return docs


def test_atlantis_role_reaches_state_with_least_privilege() -> None:
    docs = _policy_documents(TERRAFORM / "envs" / "bootstrap" / "atlantis.tf")
    state = docs["atlantis_state"]["statement"]
    used = {r for s in state for r in s["resources"]}
    assert used == {
        "${aws_s3_bucket.state.arn}",
        "${aws_s3_bucket.state.arn}/envs/*",
        "${aws_s3_bucket.state.arn}/bootstrap/*",
        "${aws_dynamodb_table.locks.arn}",
        "${aws_kms_key.state.arn}",
    }
    for statement in state:
        assert not any(a.endswith("*") for a in statement["actions"]), statement["sid"]
    assert "s3:DeleteBucket" not in {a for s in state for a in s["actions"]}
    trust = docs["atlantis_trust"]["statement"][0]
    [condition] = trust["condition"]
    assert condition["variable"] == "aws:PrincipalArn"
    assert condition["values"] == ["arn:aws:iam::${local.account_id}:role/${var.atlantis_runner_role_name}"]
    variables = {k: v for b in hcl(TERRAFORM / "envs" / "bootstrap" / "atlantis.tf")["variable"] for k, v in b.items()}
    assert variables["atlantis_runner_role_name"]["default"] == "eco2-prod-addons"
    iam = docs["atlantis_iam"]["statement"][0]["resources"]
    assert all(":role/eco2-*" in r or ":policy/eco2-*" in r or ":instance-profile/eco2-*" in r for r in iam)


def test_only_prod_workers_may_assume_the_atlantis_role() -> None:
    prod = hcl(TERRAFORM / "envs" / "prod" / "terraform.tfvars")
    assert prod["addons_assume_roles"] == ["eco2-atlantis"]
    assert "addons_assume_roles" not in hcl(TERRAFORM / "envs" / "dev" / "terraform.tfvars")
    attach = {
        n: b
        for t, n, b in resources(TERRAFORM / "modules" / "iam" / "main.tf")
        if t == "aws_iam_role_policy_attachment"
    }
    assert attach["assume_roles"]["role"] == '${aws_iam_role.node["addons"].name}'
    names = {k: v for b in hcl(TERRAFORM / "envs" / "bootstrap" / "atlantis.tf")["variable"] for k, v in b.items()}
    assert names["atlantis_runner_role_name"]["default"] == "eco2-prod-addons"  # = "${var.name}-addons" of prod


# -- the pull-request workflow ----------------------------------------------------------------------------
def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("actionlint"), "-no-color", *map(str, paths)], cwd=ROOT)


def test_actionlint_passes_on_every_workflow() -> None:
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert any(p.name == "pr.yml" for p in workflows)
    done = _actionlint(*workflows)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.nope.title }}\n      - uses: actions/checkout\n",
        encoding="utf-8",
    )
    done = run([tool("actionlint"), "-no-color", str(broken)], cwd=tmp_path)
    assert done.returncode != 0 and "broken.yml" in done.stdout


def test_pr_workflow_runs_the_checks_the_issue_names() -> None:
    workflow = yaml.safe_load((WORKFLOWS / "pr.yml").read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "python -m pytest\n" in runs["tests"] + "\n"  # the README's test command
    assert set(jobs["tests"]["services"]) == {"postgres", "redis", "rabbitmq"}
    assert "bash infra/tools/install-offline-checkers.sh" in runs["infra"] and "pytest -q tests/infra" in runs["infra"]
    assert "tests/contract/test_manifests.py" in runs["manifests"] and "fetch-crds.py" in runs["manifests"]
    for name, job in jobs.items():
        uses = [s.get("with", {}) for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python")]
        assert uses and uses[0].get("cache") == "pip", f"{name}: pip cache"
    assert workflow["env"]["CI"] == "true"  # a missing checker fails instead of skipping


# -- fetch-crds.py ----------------------------------------------------------------------------------------
def test_fetch_crds_downloads_the_pinned_releases_from_a_mirror(tmp_path: Path) -> None:
    versions = yaml.safe_load((ANSIBLE / "group_vars" / "all" / "versions.yml").read_text(encoding="utf-8"))
    served = tmp_path / "mirror"
    crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: x}\n"
    paths = {
        f"knative/serving/releases/download/knative-v{versions['knative_serving_version']}/serving-crds.yaml",
        f"knative/eventing/releases/download/knative-v{versions['knative_eventing_version']}/eventing-crds.yaml",
        "knative-extensions/eventing-rabbitmq/releases/download/"
        f"knative-v{versions['knative_eventing_rabbitmq_version']}/rabbitmq-broker.yaml",
    }
    for rel in paths:
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        (served / rel).write_text(crd, encoding="utf-8")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = subprocess.run(
            [sys.executable, str(INFRA / "tools" / "fetch-crds.py"), str(tmp_path / "crds")],
            env=dict(os.environ, ECO2_CRD_MIRROR=f"http://127.0.0.1:{server.server_address[1]}"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ECO2_KNATIVE_CRDS={tmp_path / 'crds'}"
    assert sorted(p.name for p in (tmp_path / "crds").iterdir()) == [
        "eventing-rabbitmq.yaml",
        "knative-eventing.yaml",
        "knative-serving.yaml",
    ]
