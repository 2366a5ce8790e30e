"""Transactional outbox on real PostgreSQL and RabbitMQ: killed between commit and publish, the
event is delivered later; rolled back, nothing is published."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from eco2.db import Database
from eco2.events.message import make_message
from eventing import outbox
from eventing.catalogue import USER_DELETED
from eventing.rabbitmq import AmqpPublisher, Names

RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def tap() -> Iterator[tuple[str, pika.adapters.blocking_connection.BlockingChannel]]:
    """A broker name and an exclusive queue bound to its exchange, catching every event."""
    name = f"o{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    channel.exchange_declare(Names(name).exchange, exchange_type="headers", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, Names(name).exchange, arguments={"x-match": "all", "specversion": "1.0"})
    channel.tap_queue = queue  # type: ignore[attr-defined]
    yield name, channel
    channel.exchange_delete(Names(name).exchange)
    connection.close()


def drain(
    channel: pika.adapters.blocking_connection.BlockingChannel, expect: int, timeout: float = 10
) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expect:
        method, props, _ = channel.basic_get(channel.tap_queue, auto_ack=True)  # type: ignore[attr-defined]
        if method is None:
            time.sleep(0.05)
            continue
        got.append({k: v.decode() if isinstance(v, bytes) else v for k, v in props.headers.items()})
    return got


def test_killed_between_commit_and_publish_is_delivered_later(clean_db: str, tap: tuple[str, object]) -> None:
    broker_name, channel = tap
    script = textwrap.dedent(f"""
        import os
        from eco2.db import Database
        from eventing import outbox
        from eco2.events.message import make_message
        db = Database({clean_db!r})
        with db.session() as s:
            outbox.add(s, make_message({USER_DELETED!r}, {{"user_id": "u-crash"}}, source="/eco2/users",
                                       event_id="0123456789abcdef0123456789abcdef"))
            s.commit()
        os._exit(9)  # the process dies after the commit, before any relay ran
    """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    db = Database(clean_db)
    assert outbox.pending(db) == 1
    assert drain(channel, 1, timeout=0.5) == []  # nothing was published by the dead process
    publisher = AmqpPublisher(RABBIT, broker_name)
    try:
        assert outbox.relay_once(db, publisher) == 1
        [event] = drain(channel, 1)
        assert event["id"] == "0123456789abcdef0123456789abcdef" and event["type"] == USER_DELETED
        assert outbox.pending(db) == 0
        assert outbox.relay_once(db, publisher) == 0  # published once
    finally:
        publisher.close()
        db.close()


def test_rollback_publishes_nothing(clean_db: str, tap: tuple[str, object]) -> None:
    broker_name, channel = tap
    db = Database(clean_db)
    with db.session() as s:
        outbox.add(s, make_message(USER_DELETED, {"user_id": "u-rolled-back"}, source="/eco2/users"))
        s.rollback()
    publisher = AmqpPublisher(RABBIT, broker_name)
    try:
        assert outbox.relay_once(db, publisher) == 0
        assert drain(channel, 1, timeout=0.5) == []
    finally:
        publisher.close()
        db.close()


def test_relay_thread_publishes_after_commit_and_survives_broker_outage(clean_db: str, tap: tuple[str, object]) -> None:
    broker_name, channel = tap
    db = Database(clean_db)
    publisher = AmqpPublisher("amqp://guest:guest@127.0.0.1:1/%2F", broker_name)  # unreachable at first
    relay = outbox.Relay(db, publisher, interval=0.1)
    relay.start()
    try:
        with db.session() as s:
            outbox.add(s, make_message(USER_DELETED, {"user_id": "u-later"}, source="/eco2/users"))
            s.commit()
        relay.kick()
        time.sleep(0.5)
        assert outbox.pending(db) == 1  # kept while the broker is unreachable
        publisher.url = RABBIT  # the broker comes back
        assert [e["type"] for e in drain(channel, 1, timeout=40)] == [USER_DELETED]
        assert outbox.pending(db) == 0
    finally:
        relay.stop(flush=False)
        publisher.close()
        db.close()
