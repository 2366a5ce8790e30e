"""The registry client's Bearer token flow (how ghcr.io and Docker Hub authorise), against a local
stand-in registry + token service: 401 with a challenge, a token for the scope, the retried call."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from eco2.tooling.registry import Reference, Registry, RegistryError, sha256
from tests.support.servers import serve_wsgi

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}).encode()


class TokenRegistry:
    def __init__(self) -> None:
        self.base = ""
        self.token_requests: list[dict[str, str]] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path == "/token":
            self.token_requests.append(dict(request.args))
            if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"ci:tok3n").decode():
                return Response('{"details": "bad credentials"}', status=401)
            return Response(json.dumps({"token": "t:" + request.args["scope"]}), content_type="application/json")
        repository = request.path.removeprefix("/v2/").split("/manifests/")[0]
        scope = f"repository:{repository}:pull"
        if request.headers.get("Authorization") != f"Bearer t:{scope}":
            challenge = f'Bearer realm="{self.base}/token",service="stand-in",scope="{scope}"'
            body = '{"errors": [{"code": "UNAUTHORIZED"}]}'
            return Response(body, status=401, headers={"WWW-Authenticate": challenge})
        return Response(MANIFEST, content_type="application/vnd.oci.image.manifest.v1+json")


@pytest.fixture
def registry() -> Iterator[tuple[TokenRegistry, str]]:
    fake = TokenRegistry()
    server, _ = serve_wsgi(fake)
    host = f"127.0.0.1:{server.server_port}"
    fake.base = f"http://{host}"
    yield fake, host
    server.shutdown()


def test_bearer_token_for_the_scope_with_basic_credentials(registry: tuple[TokenRegistry, str]) -> None:
    fake, host = registry
    client = Registry(host, ("ci", "tok3n"))
    body, digest = client.manifest("eco2/eco2-users", "v1")
    assert body == MANIFEST and digest == sha256(MANIFEST)
    assert fake.token_requests == [{"service": "stand-in", "scope": "repository:eco2/eco2-users:pull"}]
    client.manifest("eco2/eco2-users", "v1")  # the token is reused for the same scope
    assert len(fake.token_requests) == 1


def test_refused_credentials_say_so(registry: tuple[TokenRegistry, str]) -> None:
    _, host = registry
    with pytest.raises(RegistryError, match="token service refused repository:eco2/x:pull"):
        Registry(host, ("ci", "wrong")).manifest("eco2/x", "v1")


def test_references() -> None:
    hub = Reference.parse("python:3.11-slim")
    assert (hub.registry, hub.repository, hub.tag) == ("registry-1.docker.io", "library/python", "3.11-slim")
    assert Reference.parse("docker.io/library/python:3.11").registry == "registry-1.docker.io"
    ghcr = Reference.parse("ghcr.io/eco2-team/eco2-users")
    assert (ghcr.registry, ghcr.repository, ghcr.tag) == ("ghcr.io", "eco2-team/eco2-users", "latest")
    local = Reference.parse(f"127.0.0.1:5000/a/b@sha256:{'0' * 64}")
    assert (local.registry, local.tag, local.digest) == ("127.0.0.1:5000", None, f"sha256:{'0' * 64}")
    assert local.pinned(f"sha256:{'1' * 64}") == f"127.0.0.1:5000/a/b@sha256:{'1' * 64}"
    with pytest.raises(RegistryError):
        Reference.parse("127.0.0.1:5000/Bad_Name")
