"""End to end through `eco2 dev` (a real process, real HTTP): the README's first command.

1. With PostgreSQL, Redis and RabbitMQ configured: the scripted sign-in through the development
   OAuth provider -> GET /api/v1/users/me with the cookies -> logout -> the same cookie is refused.
2. With nothing configured (embedded defaults): the same sign-in works on SQLite + in-process Redis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://127.0.0.1:5173"
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dev(env: dict[str, str], tmp: Path, root: Path = ROOT) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    log = (tmp / "dev.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.tooling.cli", "dev", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp / "dev.log").read_text())
        try:
            if requests.get(base + "/health/readiness", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("eco2 dev did not become ready:\n" + (tmp / "dev.log").read_text())


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def sign_in(base: str, provider: str = "kakao", nickname: str = "이코친구") -> requests.Session:
    """What the web app and the browser do, scripted."""
    session = requests.Session()
    start = session.get(
        f"{base}/api/v1/auth/{provider}",
        params={"redirect_uri": f"{base}/api/v1/auth/{provider}/callback"},
        headers={"X-Frontend-Origin": ORIGIN},
        timeout=10,
    )
    assert start.status_code == 200, start.text
    data = start.json()["data"]
    assert data["provider"] == provider and data["state"]
    # the browser goes to the provider's sign-in page and submits it
    provider_answer = session.post(
        data["authorization_url"], data={"nickname": nickname, "action": "signin"}, allow_redirects=False, timeout=10
    )
    assert provider_answer.status_code in (302, 303), provider_answer.text
    callback = provider_answer.headers["Location"]
    assert callback.startswith(f"{base}/api/v1/auth/{provider}/callback")
    assert parse_qs(urlsplit(callback).query)["state"] == [data["state"]]
    done = session.get(callback, allow_redirects=False, timeout=10)
    assert done.status_code == 302
    assert done.headers["Location"] == f"{ORIGIN}/#/home"
    assert {"s_access", "s_refresh"} <= set(session.cookies.keys())
    return session


@pytest.fixture
def dev_real(clean_db: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": f"dev{os.getpid()}",
        "ALLOWED_ORIGINS": ORIGIN,
    }
    proc, base = start_dev(env, tmp_path)
    yield base
    stop(proc)


def test_sign_in_me_logout_through_eco2_dev(dev_real: str) -> None:
    base = dev_real
    session = sign_in(base)
    me = session.get(f"{base}/api/v1/users/me", timeout=10)
    assert me.status_code == 200
    assert me.headers["Cache-Control"] == "no-store"  # personal data
    assert me.json()["username"] == "이코친구" and me.json()["provider"] == "kakao"
    access = session.cookies["s_access"]
    characters = session.get(f"{base}/api/v1/users/me/characters", timeout=10).json()
    assert [c["name"] for c in characters] == ["이코"]
    out = session.post(f"{base}/api/v1/auth/logout", timeout=10)
    assert out.status_code == 200 and out.json()["success"] is True
    after = requests.get(f"{base}/api/v1/users/me", cookies={"s_access": access}, timeout=10)
    assert after.status_code in (401, 403)
    assert after.json()["code"] == "TOKEN_REVOKED"
    assert requests.post(f"{base}/api/v1/auth/logout", timeout=10).status_code == 200  # never 401


def test_gateway_routes_health_openapi_and_unknown_paths(dev_real: str) -> None:
    base = dev_real
    ready = requests.get(f"{base}/health/readiness", timeout=10).json()
    assert set(ready["functions"]) >= {"auth", "users"}
    doc = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert "/api/v1/users/me" in doc["paths"] and "/api/v1/auth/{provider}" in doc["paths"]
    missing = requests.get(f"{base}/api/v1/nothing", headers={"Origin": ORIGIN}, timeout=10)
    assert missing.status_code == 404 and set(missing.json()) == {"detail", "code"}
    # the gateway's own answers carry the functions' CORS headers: the browser sees the 404
    assert missing.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert missing.headers["Access-Control-Allow-Credentials"] == "true"
    # other spellings of a route are not that route (issue 19, item 11); a leading `//` never
    # reaches the app: the server collapses it to the one canonical path before routing
    for spelling in ("/api/v1//users/me", "/api/v1/users%2fme", "/api/v1/users%2Fme"):
        answer = requests.get(f"{base}{spelling}", timeout=10)
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND", spelling
    pre = requests.options(
        f"{base}/api/v1/users/me", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH"}, timeout=10
    )
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_embedded_defaults_need_no_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "K_SINK")}
    env["ALLOWED_ORIGINS"] = ORIGIN
    env["ECO2_DEV_DATA"] = str(tmp_path / "data")
    proc, base = start_dev(env, tmp_path)
    try:
        banner = (tmp_path / "dev.log").read_text()
        assert "embedded SQLite" in banner and "embedded in-process Redis" in banner
        session = sign_in(base, provider="google", nickname="newcomer")
        assert session.get(f"{base}/api/v1/users/me", timeout=10).json()["username"] == "newcomer"
        # the agent page on the in-process Redis and broker (no model key: the offline answer streams)
        chat_id = session.post(f"{base}/api/v1/chat", timeout=10).json()["id"]
        sent = session.post(
            f"{base}/api/v1/chat/{chat_id}/messages", json={"message": "페트병은 어떻게 버려?"}, timeout=10
        )
        assert sent.status_code == 200, sent.text
        events = []
        with session.get(base + sent.json()["stream_url"], stream=True, timeout=60) as response:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    events.append(line[len("event: ") :])
                    if events[-1] in ("done", "error"):
                        break
        assert events[0] == "token_recovery" and "token" in events and events[-1] == "done", events
    finally:
        stop(proc)


def test_dev_runs_the_collector_as_a_container_does(tmp_path: Path) -> None:
    """eco2 dev (the demo project, embedded defaults): a function answering from inside the process
    sees the collector on, the start-up's objects frozen, and the containers' threshold."""
    from eco2.serving.server import GC_THRESHOLD

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "K_SINK")}
    env["ECO2_DEV_DATA"] = str(tmp_path / "data")
    proc, base = start_dev(env, tmp_path, ROOT / "tests" / "fixtures" / "demo")
    try:
        answer = requests.get(f"{base}/api/v1/echo/whoami?seconds=0", timeout=10).json()
    finally:
        stop(proc)
    assert answer["gc_enabled"] == 1 and answer["gc_threshold"] == GC_THRESHOLD[0], answer
