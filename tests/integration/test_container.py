"""The container contract as Knative runs it: `python -m eco2.server <main.py>` on $PORT, with
SIGTERM draining the in-flight requests before the clients are closed and the process exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.integration.test_eco2_dev import free_port

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"


def test_sigterm_drains_in_flight_requests_then_closes_clients(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ECO2_ROOT": str(DEMO),
        "ECO2_ENV": "test",
        "REDIS_URL": redis_url,
        "JWT_SECRET": "x" * 40,
        "SHUTDOWN_GRACE_SECONDS": "10",
    }
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.server", str(DEMO / "functions_demo/echo/main.py")],
        cwd=DEMO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/health/readiness", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        result: dict[str, object] = {}

        def call() -> None:
            response = requests.get(base + "/api/v1/echo/slow?seconds=1.5", timeout=10)
            result["status"], result["body"] = response.status_code, response.json()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.4)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        caller.join(10)
        assert result == {"status": 200, "body": {"slept": 1.5}}  # drained, not cut off
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (tmp_path / "server.log").read_text()
    assert "function ready" in text and "function stopped, clients closed" in text


def test_listens_on_port_and_fails_fast_on_bad_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JWT_SECRET")}
    env.update({"PORT": str(free_port()), "ECO2_ROOT": str(DEMO), "ECO2_ENV": "production"})
    out = subprocess.run(
        [sys.executable, "-m", "eco2.server", str(DEMO / "functions_demo/echo/main.py")],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "REDIS_URL: required" in out.stderr and "JWT_SECRET" in out.stderr
