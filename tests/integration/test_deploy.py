"""`eco2 deploy / rollback / describe` against a local stand-in for the Kubernetes API server
(tests/support/kube_server.py: Knative's Revisions and traffic), and `eco2 build --context`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eco2.core import funcyaml
from eco2.tooling.build import build_context
from eco2.tooling.deploy import Kube, deploy, describe, rollback
from tests.support.kube_server import KubeApiServer
from tests.support.servers import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]
REPO = "registry.example/eco2/eco2-users"
GOOD = f"{REPO}@sha256:{'1' * 64}"
BROKEN = f"{REPO}@sha256:{'2' * 64}"
FIXED = f"{REPO}@sha256:{'3' * 64}"
SERVICE = "/apis/serving.knative.dev/v1/namespaces/eco2/services/users"


@pytest.fixture
def api() -> Any:
    from kubernetes import client

    fake = KubeApiServer()
    server, _ = serve_wsgi(fake)
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_port}"
    yield fake, Kube(client.ApiClient(configuration))
    server.shutdown()


def test_deploy_one_function(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake, kube = api
    project = funcyaml.load(ROOT / "func.yaml")
    assert deploy(project, "users", kube=kube, timeout=5, poll=0.05) == 0
    out = capsys.readouterr().out
    assert "users is ready at http://users.eco2.demo.example" in out
    kinds = sorted(o["kind"] for o in fake.objects.values())
    assert kinds == ["AuthorizationPolicy", "Service", "Trigger", "VirtualService"]
    assert all(p.endswith("/users") or "/users-" in p for p in fake.objects)  # nothing of other functions
    # a second deploy after a Trigger disappeared from func.yaml deletes it
    fake.objects["/apis/eventing.knative.dev/v1/namespaces/eco2/triggers/users-old"] = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "users-old", "namespace": "eco2", "labels": {"app.kubernetes.io/name": "users"}},
        "spec": {"filter": {"attributes": {"type": "x"}}},
    }
    assert deploy(project, "users", kube=kube, timeout=5, poll=0.05) == 0
    assert "deleted Trigger users-old" in capsys.readouterr().out
    assert not any(p.endswith("/users-old") for p in fake.objects)


def test_changed_trigger_filter_is_recreated(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake, kube = api
    project = funcyaml.load(ROOT / "func.yaml")
    deploy(project, "users", kube=kube, wait=False)
    path = next(p for p, o in fake.objects.items() if o["kind"] == "Trigger")
    fake.objects[path]["spec"]["filter"] = {"attributes": {"type": "older.v1"}}
    deploy(project, "users", kube=kube, wait=False)
    assert "recreated Trigger" in capsys.readouterr().out
    assert ("DELETE", path, "") in fake.calls


def _serving(fake: KubeApiServer) -> list[tuple[str, int]]:
    return [(t["revisionName"], t["percent"]) for t in fake.objects[SERVICE]["status"]["traffic"]]


def test_deploy_pins_the_digest_and_a_failed_revision_keeps_the_old_traffic(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, kube = api
    project = funcyaml.load(ROOT / "func.yaml")
    fake.failing[BROKEN] = ("ExitCode1", "Container failed with: ModuleNotFoundError: No module named 'redis'")

    assert deploy(project, "users", kube=kube, image=GOOD, timeout=5, poll=0.05) == 0
    service = fake.objects[SERVICE]
    assert service["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    assert "Revision users-00001 is ready" in capsys.readouterr().out

    assert deploy(project, "users", kube=kube, image=BROKEN, timeout=5, poll=0.05) == 1
    err = capsys.readouterr().err
    assert "Revision users-00002 failed: ExitCode1: Container failed with: ModuleNotFoundError" in err
    assert "traffic stays on users-00001" in err
    assert _serving(fake) == [("users-00001", 100)]
    pinned = [body for path, manager, body in fake.applied if manager == "eco2-rollback"]
    assert pinned == [
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "users", "namespace": "eco2"},
            "spec": {"traffic": [{"revisionName": "users-00001", "percent": 100}]},
        }
    ]

    assert describe(project, "users", kube=kube) == 0
    out = capsys.readouterr().out
    assert f"users-00002  Failed  {BROKEN}  (ExitCode1: Container failed with" in out
    assert f"users-00001  Ready  {GOOD}" in out
    assert "users-00001  100%" in out
    assert "Ready=False  RevisionFailed" in out

    # the next good deploy takes traffic back to the latest Revision
    assert deploy(project, "users", kube=kube, image=FIXED, timeout=5, poll=0.05) == 0
    assert _serving(fake) == [("users-00003", 100)]
    capsys.readouterr()

    # rollback: to the Ready Revision before the serving one (the failed one is passed over)
    assert rollback(project, "users", kube=kube) == 0
    assert "traffic on users-00001 (was users-00003)" in capsys.readouterr().out
    assert _serving(fake) == [("users-00001", 100)]
    assert rollback(project, "users", kube=kube) == 1
    assert "no Ready Revision before users-00001" in capsys.readouterr().err
    assert rollback(project, "users", kube=kube, to="users-00002") == 1
    assert "users-00002 is not a Ready Revision" in capsys.readouterr().err


def test_first_deploy_that_fails_says_nothing_serves(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake, kube = api
    project = funcyaml.load(ROOT / "func.yaml")
    fake.failing[BROKEN] = ("ContainerMissing", "Unable to fetch image")
    assert deploy(project, "users", kube=kube, image=BROKEN, timeout=5, poll=0.05) == 1
    err = capsys.readouterr().err
    assert "Revision users-00001 failed: ContainerMissing: Unable to fetch image" in err
    assert "no earlier Revision serves traffic" in err
    assert not [m for _, m, _ in fake.applied if m == "eco2-rollback"]


def test_build_context_holds_only_what_the_function_uses(tmp_path: Path) -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    context = build_context(ROOT, project.get("users"), tmp_path / "users")
    requirements = (context / "requirements.txt").read_text()
    assert "\nsqlalchemy==" in requirements and "\nredis==" in requirements  # pinned, from locks/users.txt
    for absent in ("boto3", "openai", "pika", "kubernetes"):
        assert f"\n{absent}==" not in requirements
    assert (context / "functions" / "users" / "main.py").exists()
    assert not (context / "functions" / "auth").exists()
    assert not (context / "platform" / "__init__.py").exists()
    dockerfile = (context / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "eco2.serving.server", "functions/users/main.py"]' in dockerfile
    assert yaml.safe_load((context / "func.yaml").read_text())["functions"]["users"]
