"""Abuse resistance of the runtime, through functions-framework's real target and real Redis:
the private event path, body bounds (size, depth, media type), canonical paths, no-store on
personal answers, rate limits (per user, per address, trusted X-Forwarded-For hops)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from eco2.core.tokens import TokenCodec
from eco2.serving.testing import FunctionClient

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
SECRET = "demo-secret-0123456789-0123456789-0123456789"


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {"ECO2_ENV": "test", "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[FunctionClient]:
    with FunctionClient("echo", env, root=DEMO) as c:
        yield c


def ce_headers(event_type: str = "demo.thing.happened.v1", event_id: str = "forged-1") -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/attacker", "ce-type": event_type}


def access_token(env: dict[str, str], sub: str) -> str:
    from eco2.core.settings import Settings

    return TokenCodec(Settings.from_env(env)).issue(sub, "access", provider="kakao").token


def test_a_cloudevent_on_a_public_path_is_ordinary_http_and_never_dispatched(
    client: FunctionClient, redis_url: str
) -> None:
    r = redis_lib.Redis.from_url(redis_url)
    for path in ("/api/v1/echo/greet", "/api/v1/echo", "/api/v1/echo/ping", "/api/v1/echo/anything"):
        answer = client.post(
            path, data=json.dumps({"thing_id": "forged"}), headers=ce_headers(), content_type="application/json"
        )
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert answer.headers.get("ce-type") is None
    assert r.get("demo:effects:forged") is None  # the handler never ran
    # the same event on the private path is handled
    assert client.cloudevent("demo.thing.happened.v1", {"thing_id": "real"}).status_code == 200
    assert r.get("demo:effects:real") == b"1"


def test_the_event_path_refuses_what_the_public_ingress_forwarded(client: FunctionClient, redis_url: str) -> None:
    headers = {**ce_headers(), "X-Eco2-Ingress": "public"}
    answer = client.post(
        "/", data=json.dumps({"thing_id": "via-gateway"}), headers=headers, content_type="application/json"
    )
    assert answer.status_code == 403 and answer.json["code"] == "EVENT_PATH_PRIVATE"
    assert redis_lib.Redis.from_url(redis_url).get("demo:effects:via-gateway") is None


def test_bodies_are_bounded_per_route_with_the_error_shape(client: FunctionClient) -> None:
    big = json.dumps({"name": "x" * 100})
    answer = client.post("/api/v1/echo/small", data=big, content_type="application/json")
    assert answer.status_code == 413 and answer.json["code"] == "PAYLOAD_TOO_LARGE"
    assert client.post("/api/v1/echo/small", json={"name": "ok"}).status_code == 200
    huge = b'{"name": "' + b"x" * (13 * 1024 * 1024) + b'"}'  # past every default, before any handler
    answer = client.post("/api/v1/echo/greet", data=huge, content_type="application/json")
    assert answer.status_code == 413 and answer.json["code"] == "PAYLOAD_TOO_LARGE"
    assert answer.content_type == "application/json"


def test_deeply_nested_json_is_a_400_not_a_recursion_error(client: FunctionClient) -> None:
    answer = client.post("/api/v1/echo/greet", data="[" * 100_000, content_type="application/json")
    assert answer.status_code == 400 and answer.json["code"] == "JSON_TOO_DEEP"
    nested_string = json.dumps({"name": "[" * 500})  # brackets inside a string are text
    assert client.post("/api/v1/echo/greet", data=nested_string, content_type="application/json").status_code == 422


def test_json_routes_require_a_json_content_type(client: FunctionClient) -> None:
    body = json.dumps({"name": "simple"})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = client.post("/api/v1/echo/greet", data=body, content_type=content_type)
        assert answer.status_code == 415 and answer.json["code"] == "UNSUPPORTED_MEDIA_TYPE", content_type
    ok = client.post("/api/v1/echo/greet", data=body, content_type="application/json; charset=utf-8")
    assert ok.status_code == 201


def test_only_canonical_paths_reach_a_route(client: FunctionClient) -> None:
    assert client.get("/api/v1/echo/ping").status_code == 200
    for path in ("//api/v1/echo/ping", "/api/v1/echo//ping", "/api/v1/echo%2fping", "/api/v1/echo/./ping"):
        answer = client.get(path)
        assert answer.status_code == 404, path


def test_answers_for_a_signed_in_caller_are_never_cached(client: FunctionClient, env: dict[str, str]) -> None:
    token = access_token(env, "user-nostore")
    answer = client.get("/api/v1/echo/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/api/v1/echo/ping").headers.get("Cache-Control", "")


def test_rate_limit_per_address_then_429_with_retry_after(client: FunctionClient) -> None:
    for _ in range(3):
        assert client.post("/api/v1/echo/limited", json={"name": "a"}).status_code == 200
    over = client.post("/api/v1/echo/limited", json={"name": "a"})
    assert over.status_code == 429 and over.json["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    # another address has its own budget
    other = client.post("/api/v1/echo/limited", json={"name": "a"}, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 200


def test_rate_limit_trusts_forwarded_for_only_from_the_configured_hops(env: dict[str, str]) -> None:
    with FunctionClient("echo", {**env, "TRUSTED_PROXY_HOPS": "1"}, root=DEMO) as client:

        def send(forwarded: str) -> int:
            headers = {"X-Forwarded-For": forwarded}
            return client.post("/api/v1/echo/limited", json={"name": "a"}, headers=headers).status_code

        # the client forges the left part; the proxy appended the real address (203.0.113.5)
        assert [send(f"1.1.1.{i}, 203.0.113.5") for i in range(4)] == [200, 200, 200, 429]
        assert send("203.0.113.6") == 200


def test_rate_limit_is_shared_through_redis_and_overridable(env: dict[str, str]) -> None:
    first = FunctionClient("echo", env, root=DEMO)
    second = FunctionClient("echo", env, root=DEMO)  # another pod, same Redis
    try:
        codes = [c.post("/api/v1/echo/limited", json={"name": "a"}).status_code for c in (first, second, first, second)]
        assert codes == [200, 200, 200, 429]
    finally:
        first.close()
        second.close()
    override = {**env, "ECO2_RATE_LIMITS": json.dumps({"POST /api/v1/echo/limited": "off"})}
    with FunctionClient("echo", override, root=DEMO) as client:
        assert all(client.post("/api/v1/echo/limited", json={"name": "a"}).status_code == 200 for _ in range(5))
