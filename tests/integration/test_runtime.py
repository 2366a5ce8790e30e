"""The runtime through functions-framework's real target: routing, schemas, errors, CORS, auth,
health, metrics, OpenAPI and CloudEvents (binary + structured), against the real Redis."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from eco2.core.tokens import TokenCodec
from eco2.serving.testing import FunctionClient

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        "ECO2_ENV": "test",
        "REDIS_URL": redis_url,
        "JWT_SECRET": "demo-secret-0123456789-0123456789-0123456789",
        "ALLOWED_ORIGINS": ORIGIN,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[FunctionClient]:
    with FunctionClient("echo", env, root=DEMO) as c:
        yield c


def assert_error(response: object, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.data  # type: ignore[attr-defined]
    body = response.json  # type: ignore[attr-defined]
    assert set(body) == {"detail", "code"}
    assert body["code"] == code
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def test_routes_params_and_static_precedence(client: FunctionClient) -> None:
    assert client.get("/api/v1/echo/items/abc").json == {"item_id": "abc"}
    assert client.get("/api/v1/echo/items/special").json == {"special": "yes"}
    assert client.get("/api/v1/echo/items?limit=3").json == [0, 1, 2]


def test_body_validation_names_the_field(client: FunctionClient) -> None:
    ok = client.post("/api/v1/echo/greet", json={"name": "이코", "times": 2})
    assert ok.status_code == 201
    assert ok.json == {"message": "hello 이코 hello 이코"}
    body = assert_error(client.post("/api/v1/echo/greet", json={"name": "", "times": 9}), 422, "VALIDATION_ERROR")
    assert "name" in body["detail"] and "times" in body["detail"]
    assert_error(
        client.post("/api/v1/echo/greet", data="{not json", content_type="application/json"), 400, "INVALID_JSON"
    )
    assert_error(
        client.post("/api/v1/echo/greet", data="name=x", content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    body = assert_error(client.get("/api/v1/echo/items?limit=500"), 422, "VALIDATION_ERROR")
    assert "limit" in body["detail"]


def test_error_taxonomy(client: FunctionClient) -> None:
    assert_error(client.get("/api/v1/echo/nope"), 404, "NOT_FOUND")
    assert_error(client.delete("/api/v1/echo/ping"), 405, "METHOD_NOT_ALLOWED")
    assert_error(client.get("/api/v1/echo/conflict"), 409, "ALREADY_THERE")


def test_unexpected_error_is_generic_and_logged_with_request_id(
    client: FunctionClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="eco2.core.runtime"):
        response = client.get("/api/v1/echo/boom", headers={"X-Request-ID": "req-12345678"})
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.get_data(as_text=True) and "RuntimeError" not in body["detail"]
    assert response.headers["X-Request-ID"] == "req-12345678"
    records = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert records and records[0].request_id == "req-12345678"  # type: ignore[attr-defined]


def test_request_id_generated_and_echoed(client: FunctionClient) -> None:
    response = client.get("/api/v1/echo/ping")
    assert response.json["pong"] == response.headers["X-Request-ID"]
    assert len(response.headers["X-Request-ID"]) == 32
    bad = client.get("/api/v1/echo/ping", headers={"X-Request-ID": "bad id <script>"})
    assert bad.headers["X-Request-ID"] != "bad id <script>"


def test_cors_exact_origins(client: FunctionClient) -> None:
    pre = client.options(
        "/api/v1/echo/greet",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert set(pre.headers["Access-Control-Allow-Methods"].replace(" ", "").split(",")) == {
        "GET",
        "POST",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }
    assert set(pre.headers["Access-Control-Allow-Headers"].replace(" ", "").split(",")) == {
        "Content-Type",
        "X-Frontend-Origin",
        "Last-Event-ID",
        "X-Idempotency-Key",
    }
    denied = client.options(
        "/api/v1/echo/greet", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert_error(denied, 403, "ORIGIN_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in denied.headers
    simple = client.get("/api/v1/echo/ping", headers={"Origin": ORIGIN})
    assert simple.headers["Access-Control-Allow-Origin"] == ORIGIN and "*" not in simple.headers.values()
    other = client.get("/api/v1/echo/ping", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_auth_middleware_cookie_and_bearer(client: FunctionClient, env: dict[str, str], redis_url: str) -> None:
    codec = client.runtime.clients.tokens
    assert isinstance(codec, TokenCodec)
    token = codec.issue("user-1", "access", "kakao").token
    assert client.get("/api/v1/echo/me", headers={"Authorization": f"Bearer {token}"}).json == {"user_id": "user-1"}
    client.set_cookie("s_access", token)
    assert client.get("/api/v1/echo/me").json == {"user_id": "user-1"}
    client.clear_cookies()
    assert_error(client.get("/api/v1/echo/me"), 401, "NOT_AUTHENTICATED")
    refresh = codec.issue("user-1", "refresh", "kakao").token
    assert_error(
        client.get("/api/v1/echo/me", headers={"Authorization": f"Bearer {refresh}"}), 401, "INVALID_TOKEN_TYPE"
    )
    claims = codec.verify(token, "access")
    redis_lib.Redis.from_url(redis_url).set(f"blacklist:{claims.jti}", "1", ex=60)
    assert_error(client.get("/api/v1/echo/me", headers={"Authorization": f"Bearer {token}"}), 403, "TOKEN_REVOKED")


def test_health_readiness_and_metrics(client: FunctionClient) -> None:
    assert client.get("/health/liveness").json["status"] == "ok"
    ready = client.get("/health/readiness")
    assert ready.status_code == 200 and ready.json["checks"] == {"jwt": "ok", "redis": "ok"}
    client.get("/api/v1/echo/ping")
    client.get("/api/v1/echo/items/7")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'eco2_requests_total{function="echo",method="GET",route="/api/v1/echo/ping",status="200"} 1.0' in text
    assert 'route="/api/v1/echo/items/{item_id}"' in text  # templates, not raw paths: bounded cardinality
    assert "eco2_request_duration_seconds_bucket" in text
    assert "eco2_requests_in_flight" in text
    assert "eco2_startup_duration_seconds" in text


def test_readiness_fails_when_redis_is_unreachable(env: dict[str, str]) -> None:
    with FunctionClient("echo", {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}, root=DEMO) as c:
        ready = c.get("/health/readiness")
        assert ready.status_code == 503
        assert ready.json["checks"]["redis"].startswith("error")
        assert c.get("/health/liveness").status_code == 200


def test_openapi_document(client: FunctionClient) -> None:
    doc = client.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    greet = doc["paths"]["/api/v1/echo/greet"]["post"]
    assert greet["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Greeting"}
    assert "201" in greet["responses"]
    assert doc["components"]["schemas"]["Greeting"]["properties"]["name"]["maxLength"] == 20
    assert "security" in doc["paths"]["/api/v1/echo/me"]["get"]
    assert {p["name"] for p in doc["paths"]["/api/v1/echo/items"]["get"]["parameters"]} == {"limit"}


# -- CloudEvents -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevent_dispatch_and_reply(client: FunctionClient, mode: str) -> None:
    response = client.cloudevent("demo.thing.happened.v1", {"thing_id": f"t-{mode}"}, mode=mode)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.headers["ce-type"] == "demo.thing.counted.v1"
    assert response.headers["ce-source"] == "/eco2/echo"
    assert response.headers["ce-specversion"] == "1.0"
    assert json.loads(response.data) == {"thing_id": f"t-{mode}", "count": 1}


def test_duplicate_delivery_has_one_effect_and_same_reply(client: FunctionClient, redis_url: str) -> None:
    first = client.cloudevent("demo.thing.happened.v1", {"thing_id": "dup"}, event_id="e-1", source="/s")
    second = client.cloudevent("demo.thing.happened.v1", {"thing_id": "dup"}, event_id="e-1", source="/s")
    assert first.status_code == second.status_code == 200
    assert second.headers["ce-id"] == first.headers["ce-id"]
    assert redis_lib.Redis.from_url(redis_url).get("demo:effects:dup") == b"1"
    other_source = client.cloudevent("demo.thing.happened.v1", {"thing_id": "dup"}, event_id="e-1", source="/other")
    assert other_source.status_code == 200
    assert redis_lib.Redis.from_url(redis_url).get("demo:effects:dup") == b"2"


def test_failed_handler_is_retryable_and_releases_its_claim(client: FunctionClient, redis_url: str) -> None:
    first = client.cloudevent("demo.thing.happened.v1", {"thing_id": "fail-1"}, event_id="f-1")
    assert_error(first, 500, "INTERNAL_ERROR")
    again = client.cloudevent("demo.thing.happened.v1", {"thing_id": "fail-1"}, event_id="f-1")
    assert again.status_code == 500  # ran again (claim released), not swallowed as a duplicate
    assert redis_lib.Redis.from_url(redis_url).get("demo:effects:fail-1") == b"2"


def test_in_progress_duplicate_gets_409(client: FunctionClient, redis_url: str) -> None:
    redis_lib.Redis.from_url(redis_url).set("dedupe:echo:/tests:busy-1", "processing", ex=60)
    assert_error(
        client.cloudevent("demo.thing.happened.v1", {"thing_id": "x"}, event_id="busy-1"), 409, "EVENT_IN_PROGRESS"
    )


def test_non_idempotent_handler_sees_every_delivery(client: FunctionClient, redis_url: str) -> None:
    for _ in range(2):
        assert client.cloudevent("demo.thing.counted.v1", {"any": 1}, event_id="same").status_code == 200
    assert redis_lib.Redis.from_url(redis_url).get("demo:counted") == b"2"


def test_malformed_events_are_clear_4xx(client: FunctionClient) -> None:
    missing = client.post(
        "/",
        data="{}",
        headers={"ce-specversion": "1.0", "ce-type": "demo.thing.happened.v1"},
        content_type="application/json",
    )
    body = assert_error(missing, 400, "MISSING_ATTRIBUTES")
    assert "id" in body["detail"] and "source" in body["detail"]
    assert_error(client.cloudevent("demo.unknown.v1", {}), 400, "UNKNOWN_EVENT_TYPE")
    body = assert_error(client.cloudevent("demo.thing.happened.v1", {"count": "many"}), 400, "INVALID_EVENT_DATA")
    assert "thing_id" in body["detail"]
    assert_error(client.post("/", data="nope", content_type="application/cloudevents+json"), 400, "INVALID_CLOUDEVENT")
    assert_error(
        client.post("/", data="[]", content_type="application/cloudevents-batch+json"), 400, "UNSUPPORTED_BATCH"
    )
    not_ce = client.post("/", data='{"hello": 1}', content_type="application/json")
    assert_error(not_ce, 400, "NOT_A_CLOUDEVENT")
    wrong_version = client.post(
        "/",
        data="{}",
        content_type="application/json",
        headers={"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "demo.thing.happened.v1"},
    )
    assert_error(wrong_version, 400, "UNSUPPORTED_SPECVERSION")


def test_event_metrics_by_outcome(client: FunctionClient) -> None:
    client.cloudevent("demo.thing.happened.v1", {"thing_id": "m"}, event_id="m1")
    client.cloudevent("demo.thing.happened.v1", {"thing_id": "m"}, event_id="m1")
    client.cloudevent("demo.unknown.v1", {})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'eco2_events_total{function="echo",outcome="handled",type="demo.thing.happened.v1"} 1.0' in text
    assert 'eco2_events_total{function="echo",outcome="duplicate",type="demo.thing.happened.v1"} 1.0' in text
    assert 'outcome="rejected",type="demo.unknown.v1"} 1.0' in text


def test_settings_fail_fast_with_clear_message(env: dict[str, str]) -> None:
    from eco2.core.settings import SettingsError

    broken = {k: v for k, v in env.items() if k != "REDIS_URL"}
    broken["ECO2_ENV"] = "production"
    broken["JWT_SECRET"] = "short"
    with pytest.raises(SettingsError) as info:
        FunctionClient("echo", broken, root=DEMO)
    message = str(info.value)
    assert "REDIS_URL: required" in message and "JWT_SECRET" in message
    assert "short" not in message


def test_json_log_lines_carry_request_id(client: FunctionClient, caplog: pytest.LogCaptureFixture) -> None:
    from eco2.core.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="eco2.core.runtime"):
        response = client.get("/api/v1/echo/ping", headers={"X-Request-ID": "log-check-1"})
    assert response.status_code == 200
    formatter = JsonFormatter("echo")
    access = [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == "request"]
    assert access[-1]["request_id"] == "log-check-1"
    assert access[-1]["function"] == "echo" and access[-1]["status"] == 200
    assert access[-1]["route"] == "/api/v1/echo/ping" and access[-1]["duration_ms"] >= 0


def test_pingsource_tick_reaches_the_handler_for_its_catalogue_type(client: FunctionClient, redis_url: str) -> None:
    """A PingSource always sends type dev.knative.sources.ping; the eco2type extension names the handler."""
    response = client.cloudevent(
        "dev.knative.sources.ping",
        {"tick": 1},
        source="/apis/v1/namespaces/demo/pingsources/echo-every-minute",
        extensions={"eco2type": "demo.thing.counted.v1"},
    )
    assert response.status_code == 200
    assert redis_lib.Redis.from_url(redis_url).get("demo:counted") == b"1"
    plain = client.cloudevent("dev.knative.sources.ping", {"tick": 1})  # no extension: not ours
    assert_error(plain, 400, "UNKNOWN_EVENT_TYPE")
