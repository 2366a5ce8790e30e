"""The container command's request path (`eco2.serving.server.Direct`: every request straight to
the runtime) answers exactly as the same target served through functions-framework's Flask app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eco2.core import funcyaml
from eco2.serving.server import Direct, container_env, create_app, patched_environ

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
ORIGIN = "http://127.0.0.1:5173"
COMPARED_HEADERS = (
    "Content-Type",
    "Vary",
    "Cache-Control",
    "Retry-After",
    "X-Request-ID",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
)


@pytest.fixture
def apps(redis_url: str) -> Iterator[tuple[Any, Any]]:
    """(the container command's app, the same main.py through functions-framework's Flask app)."""
    import functions_framework

    env = {
        "ECO2_ENV": "test",
        "REDIS_URL": redis_url,
        "JWT_SECRET": "demo-secret-0123456789-0123456789-0123456789",
        "ALLOWED_ORIGINS": ORIGIN,
    }
    spec = funcyaml.load(DEMO / "func.yaml").get("echo")
    direct, runtime = create_app(spec, DEMO, container_env(spec, env))
    with patched_environ(container_env(spec, env)):
        flask_app = functions_framework.create_app(  # type: ignore[no-untyped-call]
            target="handle", source=str(DEMO / spec.main_path), signature_type="http"
        )
    flask_runtime = sys.modules[(DEMO / spec.main_path).stem].handle.runtime
    runtime.start()
    flask_runtime.start()
    assert isinstance(direct.wsgi_app.app, Direct)  # BodyLimit in front of Direct
    try:
        yield direct.test_client(), flask_app.test_client()
    finally:
        runtime.close()
        flask_runtime.close()


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/echo/items/abc", {}),
    ("GET", "/api/v1/echo/items?limit=3", {}),
    ("POST", "/api/v1/echo/greet", {"json": {"name": "이코", "times": 2}}),
    ("POST", "/api/v1/echo/greet", {"json": {"name": "", "times": 9}}),
    ("POST", "/api/v1/echo/greet", {"data": "{not json", "content_type": "application/json"}),
    ("POST", "/api/v1/echo/greet", {"data": "x=1", "content_type": "application/x-www-form-urlencoded"}),
    ("GET", "/api/v1/echo/nothing-here", {}),
    ("DELETE", "/api/v1/echo/items/abc", {}),
    ("GET", "/api/v1/echo/me", {}),
    ("GET", "/api/v1/echo/me", {"headers": {"Authorization": "Bearer not-a-token"}}),
    ("GET", "/api/v1/echo/conflict", {}),
    ("GET", "/api/v1/echo/boom", {}),
    ("OPTIONS", "/api/v1/echo/greet", {"headers": {"Access-Control-Request-Method": "POST"}}),
    ("HEAD", "/api/v1/echo/items/abc", {}),
    ("GET", "/health/liveness", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_direct_path_answers_as_the_flask_path(
    apps: tuple[Any, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    direct, through_flask = apps
    headers = {"Origin": ORIGIN, "X-Request-ID": "req-0123456789", **kwargs.pop("headers", {})}
    ours = direct.open(path, method=method, headers=headers, **kwargs)
    theirs = through_flask.open(path, method=method, headers=headers, **kwargs)
    assert ours.status_code == theirs.status_code, (ours.data, theirs.data)
    assert ours.data == theirs.data
    for name in COMPARED_HEADERS:
        assert ours.headers.get(name) == theirs.headers.get(name), name
    assert ours.headers.get("X-Request-ID") == "req-0123456789"


def test_direct_path_reads_a_body_the_handler_left(apps: tuple[Any, Any]) -> None:
    """A body the route never reads is drained (as functions-framework does), so the keep-alive
    connection stays in step: the next request on it is answered normally."""
    direct, _ = apps
    first = direct.get("/api/v1/echo/items/abc", data=b"x" * 10_000, content_type="application/octet-stream")
    assert first.status_code == 200
    assert direct.get("/api/v1/echo/items/abc").json == {"item_id": "abc"}


@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_the_one_difference_functions_framework_own_404s_are_in_the_error_shape(
    apps: tuple[Any, Any], path: str
) -> None:
    """functions-framework answers these two paths itself, with an HTML 404; the direct path
    answers them like any other unknown path."""
    direct, through_flask = apps
    assert through_flask.get(path).status_code == 404
    ours = direct.get(path)
    assert ours.status_code == 404
    assert ours.json["code"] == "NOT_FOUND"
