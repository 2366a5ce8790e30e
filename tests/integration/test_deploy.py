"""`eco2 deploy` against a local HTTP stand-in for the Kubernetes API server, and `eco2 build`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.wrappers import Request, Response

from eco2 import funcyaml
from eco2.build import build_context
from eco2.deploy import Kube, deploy
from tests.support.servers import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]


class FakeApiServer:
    """Stores applied objects, answers GET/DELETE/LIST, and marks Knative Services Ready."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append((request.method, request.path, request.query_string.decode()))
        if request.method == "PATCH":
            assert request.content_type == "application/apply-patch+yaml"
            assert request.args["fieldManager"] == "eco2" and request.args["fieldValidation"] == "Strict"
            body = json.loads(request.get_data())
            if body["kind"] == "Service" and body["apiVersion"].startswith("serving"):
                body["status"] = {
                    "url": f"http://{body['metadata']['name']}.demo.example",
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            self.objects[request.path] = body
            return Response(json.dumps(body), content_type="application/json")(environ, start_response)
        if request.method == "DELETE":
            self.objects.pop(request.path, None)
            return Response("{}", content_type="application/json")(environ, start_response)
        if request.path in self.objects:
            return Response(json.dumps(self.objects[request.path]), content_type="application/json")(
                environ, start_response
            )
        if "labelSelector" in request.args:
            items = [o for p, o in self.objects.items() if p.startswith(request.path + "/")]
            return Response(json.dumps({"items": items}), content_type="application/json")(environ, start_response)
        return Response(json.dumps({"kind": "Status", "code": 404}), status=404, content_type="application/json")(
            environ, start_response
        )


@pytest.fixture
def api() -> Any:
    from kubernetes import client

    fake = FakeApiServer()
    server, _ = serve_wsgi(fake)
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_port}"
    yield fake, Kube(client.ApiClient(configuration))
    server.shutdown()


def test_deploy_one_function(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fake, kube = api
    project = funcyaml.load(ROOT / "func.yaml")
    assert deploy(project, "users", kube=kube, timeout=5) == 0
    out = capsys.readouterr().out
    assert "users is ready at http://users.demo.example" in out
    kinds = sorted(o["kind"] for o in fake.objects.values())
    assert kinds == ["Service", "Trigger", "VirtualService"]
    assert all(p.endswith("/users") or "/users-" in p for p in fake.objects)  # nothing of other functions
    # a second deploy after a Trigger disappeared from func.yaml deletes it
    fake.objects["/apis/eventing.knative.dev/v1/namespaces/eco2/triggers/users-old"] = {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "users-old", "namespace": "eco2", "labels": {"app.kubernetes.io/name": "users"}},
        "spec": {"filter": {"attributes": {"type": "x"}}},
    }
    assert deploy(project, "users", kube=kube, timeout=5) == 0
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


def test_build_context_holds_only_what_the_function_uses(tmp_path: Path) -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    context = build_context(ROOT, project.get("users"), tmp_path / "users")
    requirements = (context / "requirements.txt").read_text()
    assert "sqlalchemy" in requirements and "redis" in requirements
    for absent in ("boto3", "openai", "pika", "kubernetes"):
        assert absent not in requirements
    assert (context / "functions" / "users" / "main.py").exists()
    assert not (context / "functions" / "auth").exists()
    assert not (context / "platform" / "__init__.py").exists()
    dockerfile = (context / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "eco2.server", "functions/users/main.py"]' in dockerfile
    assert yaml.safe_load((context / "func.yaml").read_text())["functions"]["users"]
