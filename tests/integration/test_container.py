"""The container contract as Knative runs it: `python -m eco2.serving.server <main.py>` on $PORT, with
SIGTERM draining the in-flight requests before the clients are closed and the process exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis as redis_lib
import requests

from eco2.serving.server import GC_THRESHOLD
from tests.integration.test_eco2_dev import free_port

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"


def start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ECO2_ROOT": str(DEMO),
        "ECO2_ENV": "test",
        "JWT_SECRET": "x" * 40,
        "LOG_LEVEL": "INFO",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.serving.server", str(DEMO / "functions_demo/echo/main.py")],
        cwd=DEMO,
        env=full,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        try:
            if requests.get(base + "/health/readiness", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the function did not become ready:\n" + log_path.read_text())


def in_flight(base: str) -> float:
    """eco2_requests_in_flight of the (single) worker, the /metrics request itself included."""
    text = requests.get(base + "/metrics", timeout=2).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("eco2_requests_in_flight{"))


def log_lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # gunicorn's own lines
    return out


def test_sigterm_drains_in_flight_requests_then_closes_clients(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc, base = start_server({"REDIS_URL": redis_url, "SHUTDOWN_GRACE_SECONDS": "10"}, log)
    try:
        result: dict[str, object] = {}

        def call() -> None:
            response = requests.get(base + "/api/v1/echo/slow-count?seconds=1.5", timeout=10)
            result["status"], result["body"] = response.status_code, response.json()

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while in_flight(base) < 2 and time.monotonic() < deadline:  # the slow request is being handled
            time.sleep(0.02)
        assert in_flight(base) >= 2
        proc.send_signal(signal.SIGTERM)
        caller.join(10)
        # drained, not cut off: the request finished, and its Redis client still worked at its end
        assert result == {"status": 200, "body": {"slept": 1.5, "count": 1}}
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert redis_lib.Redis.from_url(redis_url).get("demo:slow:done") == b"1"
    messages = [line["message"] for line in log_lines(log)]
    assert "function ready" in messages
    # the order: the in-flight request finished, then the clients were closed, once
    assert messages.count("function stopped, clients closed") == 1, messages
    assert messages.index("slow request finished") < messages.index("function stopped, clients closed")


def test_workers_and_threads_each_worker_builds_its_own_clients(redis_url: str, tmp_path: Path) -> None:
    """WORKERS=2, THREADS=2: two worker processes, each handling at most two requests at once, each
    with the clients it built itself after the fork (never the master's)."""
    log = tmp_path / "server.log"
    proc, base = start_server({"REDIS_URL": redis_url, "WORKERS": "2", "THREADS": "2"}, log)
    try:

        def call(_: int) -> dict[str, float]:
            # a new connection per request (no keep-alive), so the workers share the load
            response = requests.get(
                base + "/api/v1/echo/whoami?seconds=0.5", headers={"Connection": "close"}, timeout=20
            )
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        answers: list[dict[str, float]] = []

        def overlap(pid: float) -> int:
            """The most requests worker `pid` ran at the same moment."""
            mine = [a for a in answers if a["pid"] == pid]
            return max(sum(1 for b in mine if b["started"] <= a["started"] < b["ended"]) for a in mine)

        def seen_enough() -> bool:
            pids = {a["pid"] for a in answers}
            return len(pids) == 2 and all(overlap(pid) == 2 for pid in pids)

        # rounds of eight simultaneous requests until both workers showed two at once (which worker
        # accepts a connection is the kernel's choice)
        deadline = time.monotonic() + 20
        while not seen_enough() and time.monotonic() < deadline:
            with ThreadPoolExecutor(8) as pool:
                answers += list(pool.map(call, range(8)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    pids = {a["pid"] for a in answers}
    assert len(pids) == 2 and proc.pid not in pids, pids  # two workers, forked from the master
    for answer in answers:
        assert answer["clients_built_in"] == answer["pid"]  # built in the worker, after the fork
        # off for the start (eco2.serving.server.gunicorn_options), on again once the worker is
        # ready, with what the start built frozen out of its way
        assert answer["gc_enabled"] == 1 and answer["gc_frozen"] > 10_000, answer
        assert answer["gc_threshold"] == GC_THRESHOLD[0], answer  # not CPython's 700
    for pid in pids:
        assert overlap(pid) == 2, (pid, overlap(pid))  # THREADS: two at once, never more
        assert len({a["thread"] for a in answers if a["pid"] == pid}) >= 2
    readies = [line for line in log_lines(log) if line["message"] == "function ready"]
    assert len(readies) == 2  # once per worker


def test_listens_on_port_and_fails_fast_on_bad_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JWT_SECRET")}
    env.update({"PORT": str(free_port()), "ECO2_ROOT": str(DEMO), "ECO2_ENV": "production"})
    out = subprocess.run(
        [sys.executable, "-m", "eco2.serving.server", str(DEMO / "functions_demo/echo/main.py")],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "REDIS_URL: required" in out.stderr and "JWT_SECRET" in out.stderr


def test_chunked_bodies_are_read_and_bounded_and_every_request_is_logged(redis_url: str, tmp_path: Path) -> None:
    """Through gunicorn, on one keep-alive connection: a chunked body (no Content-Length) is read
    and bounded like any other, a GET without a body is answered without one being read, and each
    request gets its access line (written by the function's own log handler, eco2.core.logs.access)."""
    import http.client

    log = tmp_path / "server.log"
    proc, base = start_server({"REDIS_URL": redis_url}, log)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=10)
        answers = []
        for body in (b'{"name": "ok"}', b'{"name": "' + b"x" * 200 + b'"}'):
            conn.request(
                "POST",
                "/api/v1/echo/small",
                body=iter([body[:5], body[5:]]),
                headers={"Content-Type": "application/json"},
                encode_chunked=True,
            )
            response = conn.getresponse()
            answers.append((response.status, json.loads(response.read())))
        conn.request("GET", "/api/v1/echo/items/abc", headers={"X-Request-ID": "chunked-then-get"})
        response = conn.getresponse()
        answers.append((response.status, json.loads(response.read())))
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert answers[0][0] == 200
    assert answers[1][0] == 413 and answers[1][1]["code"] == "PAYLOAD_TOO_LARGE"
    assert answers[2] == (200, {"item_id": "abc"})
    access = [line for line in log_lines(log) if line["message"] == "request" and "route" in line]
    assert [(line["method"], line["route"], line["status"]) for line in access] == [
        ("POST", "/api/v1/echo/small", 200),
        ("POST", "/api/v1/echo/small", 413),
        ("GET", "/api/v1/echo/items/{item_id}", 200),
    ]
    assert access[-1]["request_id"] == "chunked-then-get" and access[-1]["function"] == "echo"
    assert all(isinstance(line["duration_ms"], float) and line["logger"] == "eco2.core.runtime" for line in access)
