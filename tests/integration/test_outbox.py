"""Transactional outbox on real PostgreSQL and RabbitMQ, through a real function (the demo `ledger`,
`uses=("db", "events")`): a function process killed after its handler's commit loses nothing (the
next process's own relay delivers the event); a handler that raises after `ctx.publish` publishes
nothing, and without the raise the event goes out."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pika
import psycopg
import pytest
import requests

from eco2.core.db import Database
from eco2.events import outbox
from eco2.events.amqp import AmqpPublisher, Names
from eco2.events.message import make_message
from eco2.serving.testing import FunctionClient
from eventing.catalogue import USER_DELETED
from tests.support.private_servers import free_port
from tests.support.waiting import wait_for

RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2F"
DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
LEDGER = "demo.ledger.recorded.v1"
Channel: TypeAlias = Any  # pika's BlockingChannel (pika has no type information)


@pytest.fixture
def tap() -> Iterator[tuple[str, Channel]]:
    """A broker name and an exclusive queue bound to its exchange, catching every event."""
    name = f"o{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    channel.exchange_declare(Names(name).exchange, exchange_type="headers", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, Names(name).exchange, arguments={"x-match": "all", "specversion": "1.0"})
    channel.tap_queue = queue
    yield name, channel
    channel.exchange_delete(Names(name).exchange)
    connection.close()


def depth(channel: Channel) -> int:
    """Messages waiting in the tap (nothing consumes it but `drain`, which acks as it reads)."""
    return int(channel.queue_declare(channel.tap_queue, passive=True).method.message_count)


def drain(channel: Channel, expect: int, timeout: float = 10) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expect:
        method, props, _ = channel.basic_get(channel.tap_queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        got.append({k: v.decode() if isinstance(v, bytes) else v for k, v in props.headers.items()})
    return got


def outbox_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, type, data, published_at FROM event_outbox ORDER BY created_at").fetchall()


def start_ledger(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The demo ledger function as its container runs it (`python -m eco2.serving.server`), live on a port."""
    port = free_port()
    full = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1", "ECO2_ROOT": str(DEMO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.serving.server", str(DEMO / "functions_demo/ledger/main.py")],
        cwd=DEMO,
        env=full,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def live() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return requests.get(base + "/health/liveness", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    assert wait_for(live, 30), log.read_text()
    return proc, base


def test_function_killed_after_its_commit_is_delivered_by_the_next_process(
    clean_db: str, tap: tuple[str, Channel], tmp_path: Path
) -> None:
    broker_name, channel = tap
    env = {
        "ECO2_ENV": "test",
        "DATABASE_URL": clean_db,
        "JWT_SECRET": "x" * 40,
        "ECO2_BROKER": broker_name,
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "ledger.log"
    # the first process commits the handler's unit of work, but its relay cannot reach the broker
    first, base = start_ledger({**env, "RABBITMQ_URL": UNREACHABLE}, log)
    try:
        response = requests.post(base + "/api/v1/ledger", json={"entry_id": "crash-1"}, timeout=10)
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        [(row_id, row_type, data, published_at)] = outbox_rows(clean_db)  # committed with the handler
        assert (row_id.hex, row_type, published_at) == (event_id, LEDGER, None)
        assert '"crash-1"' in data
    finally:
        first.send_signal(signal.SIGKILL)  # dies with the event committed and unpublished
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert depth(channel) == 0  # the dead process published nothing
    assert outbox_rows(clean_db)[0][3] is None

    # the next process of the function: nobody calls it; its own relay finds the row and sends it
    second, _ = start_ledger({**env, "RABBITMQ_URL": RABBIT}, log)
    try:
        [event] = drain(channel, 1, timeout=20)
        assert event["id"] == event_id and event["type"] == LEDGER and event["source"] == "/eco2/ledger"
        assert wait_for(lambda: outbox_rows(clean_db)[0][3] is not None, 10)  # marked published
        database = Database(clean_db)
        try:
            assert outbox.pending(database) == 0  # nothing left that a relay could send again
        finally:
            database.close()
        assert depth(channel) == 0  # and it was sent once
    finally:
        second.terminate()
        second.wait(20)


@pytest.fixture
def ledger(clean_db: str, tap: tuple[str, Channel]) -> Iterator[FunctionClient]:
    broker_name, _ = tap
    env = {
        "ECO2_ENV": "test",
        "DATABASE_URL": clean_db,
        "JWT_SECRET": "x" * 40,
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": broker_name,
        "LOG_LEVEL": "WARNING",
    }
    with FunctionClient("ledger", env, root=DEMO) as client:
        yield client


def test_handler_raising_after_publish_publishes_nothing(
    ledger: FunctionClient, clean_db: str, tap: tuple[str, Channel]
) -> None:
    _, channel = tap
    failed = ledger.post("/api/v1/ledger", json={"entry_id": "rolled-back", "fail_after_publish": True})
    assert failed.status_code == 500 and failed.json["code"] == "INTERNAL_ERROR", failed.json
    assert outbox_rows(clean_db) == []  # the staged event went with the rolled-back transaction

    # the same handler without the raise: its event does go out, through the outbox
    ok = ledger.post("/api/v1/ledger", json={"entry_id": "kept"})
    assert ok.status_code == 202
    [event] = drain(channel, 1)
    assert event["id"] == ok.json["event_id"] and event["type"] == LEDGER
    # the relay publishes oldest first and has nothing left: had the failed request staged a row,
    # it would have been sent before this one
    assert wait_for(lambda: [r[3] is not None for r in outbox_rows(clean_db)] == [True], 10)
    [(row_id, _, data, _)] = outbox_rows(clean_db)
    assert row_id.hex == ok.json["event_id"] and '"kept"' in data
    assert depth(channel) == 0


def test_relay_thread_publishes_after_commit_and_survives_broker_outage(
    clean_db: str, tap: tuple[str, Channel], caplog: pytest.LogCaptureFixture
) -> None:
    broker_name, channel = tap
    db = Database(clean_db)
    publisher = AmqpPublisher(UNREACHABLE, broker_name)  # unreachable at first
    relay = outbox.Relay(db, publisher, interval=0.1)
    caplog.set_level(logging.WARNING, logger="eco2.outbox")
    relay.start()
    try:
        with db.session() as s:
            outbox.add(s, make_message(USER_DELETED, {"user_id": "u-later"}, source="/eco2/users"))
            s.commit()
        relay.kick()
        # the relay really tried, failed, and kept the row
        assert wait_for(lambda: "outbox relay failed" in caplog.text, 20)
        assert outbox.pending(db) == 1
        assert depth(channel) == 0
        publisher.url = RABBIT  # the broker comes back
        assert [e["type"] for e in drain(channel, 1, timeout=40)] == [USER_DELETED]
        assert wait_for(lambda: outbox.pending(db) == 0, 10)
    finally:
        relay.stop(flush=False)
        publisher.close()
        db.close()
