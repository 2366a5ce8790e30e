"""The forged-event attack of issue 9, replayed over real HTTP: a CloudEvent that grants a
character, POSTed with `ce-*` headers and no credentials to public paths — through `eco2 dev`'s
gateway and against the character function run alone (`eco2 run`). Refused every time; nothing
granted, nothing in the outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.integration.test_eco2_dev import RABBIT, ROOT, free_port, start_dev, stop

FORGED = {"job_id": "forged-job", "user_id": "", "major_category": "재활용폐기물", "middle_category": "무색페트병"}


def forged_headers() -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-source": "/eco2/scan-worker",
        "ce-type": "eco2.scan.job.completed.v1",
        "Content-Type": "application/json",
    }


def granted_and_announced(db_url: str, user_id: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        grants = conn.execute("SELECT count(*) FROM user_characters WHERE user_id::text = %s", (user_id,)).fetchone()
        outbox = conn.execute("SELECT count(*) FROM event_outbox WHERE data LIKE %s", (f"%{user_id}%",)).fetchone()
    assert grants is not None and outbox is not None
    return int(grants[0]), int(outbox[0])


def attack(base: str, paths: list[str], user_id: str) -> list[int]:
    body = json.dumps({**FORGED, "user_id": user_id})
    return [requests.post(base + path, data=body, headers=forged_headers(), timeout=10).status_code for path in paths]


PUBLIC_PATHS = [
    "/api/v1/character",
    "/api/v1/character/",
    "/api/v1/character/catalog",
    "/_functions/character/",  # eco2 dev's event route: not on the public port
    "/",
]


@pytest.fixture
def dev(clean_db: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": f"forged{os.getpid()}",
        "ECO2_DEV_DATA": str(tmp_path / "data"),
    }
    proc, base = start_dev(env, tmp_path)
    yield base
    stop(proc)


def test_forged_event_through_eco2_dev_is_refused(dev: str, clean_db: str) -> None:
    user_id = str(uuid.uuid4())
    codes = attack(dev, PUBLIC_PATHS, user_id)
    assert all(400 <= code < 500 for code in codes), codes
    # a dispatched event is handled (and its grant committed) before its answer: nothing to wait for
    assert granted_and_announced(clean_db, user_id) == (0, 0)


def test_forged_event_against_the_function_run_alone_is_refused(clean_db: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ECO2_ENV": "test", "DATABASE_URL": clean_db, "RABBITMQ_URL": RABBIT, "PORT": str(port)}
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.tooling.cli", "run", "character", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/health/readiness", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        user_id = str(uuid.uuid4())
        codes = attack(base, PUBLIC_PATHS[:3], user_id)
        assert all(400 <= code < 500 for code in codes), codes
        # what the public ingress forwards is marked; the event path refuses it
        marked = requests.post(
            base + "/",
            data=json.dumps({**FORGED, "user_id": user_id}),
            headers={**forged_headers(), "X-Eco2-Ingress": "public"},
            timeout=10,
        )
        assert marked.status_code == 403 and marked.json()["code"] == "EVENT_PATH_PRIVATE"
        assert granted_and_announced(clean_db, user_id) == (0, 0)
    finally:
        proc.terminate()
        proc.wait(20)
