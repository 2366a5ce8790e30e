"""The local broker on real RabbitMQ: Knative Trigger semantics end to end, and its faults."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import redis as redis_lib
import requests

from eco2.core import funcyaml
from eco2.events.amqp import AmqpPublisher, Names
from eco2.events.message import Message, make_message
from eventing.delivery import DeliverySpec, TriggerSpec
from eventing.rabbitmq import RabbitBroker
from eventing.triggers import trigger_name, triggers
from tests.support.private_servers import PrivateRabbitMQ
from tests.support.private_servers import start as start_private
from tests.support.servers import Served, serve_function
from tests.support.waiting import wait_for

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
FLAKY_TRIGGER = trigger_name("flaky", {"type": "demo.flaky.requested.v1"})


@pytest.fixture
def broker_name() -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    names = Names(name)
    project = funcyaml.load(DEMO / "func.yaml")
    for spec in project.functions.values():
        for sub in spec.deploy.subscriptions:
            channel.queue_delete(names.queue(trigger_name(spec.name, sub.filters)))
    channel.queue_delete(names.dead_letter)
    channel.exchange_delete(names.exchange)
    connection.close()


@pytest.fixture
def r(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def demo(redis_url: str, broker_name: str) -> Iterator[dict[str, Served]]:
    env = {
        "ECO2_ENV": "test",
        "REDIS_URL": redis_url,
        "JWT_SECRET": "x" * 40,
        "LOG_LEVEL": "WARNING",
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": broker_name,
    }
    served = {name: serve_function(name, env, DEMO) for name in ("echo", "sender", "tally", "flaky")}
    yield served
    for s in served.values():
        s.close()


def start_broker(served: dict[str, Served], broker_name: str) -> RabbitBroker:
    project = funcyaml.load(DEMO / "func.yaml")
    broker = RabbitBroker(RABBIT, triggers(project, lambda fn: served[fn].url), broker=broker_name)
    broker.start()
    assert broker.wait_connected(10)
    return broker


def settled(broker: RabbitBroker, dead: int = 0) -> Callable[[], bool]:
    """The quiet state: no delivery in any dispatcher, every Trigger queue empty, `dead` dead letters."""

    def check() -> bool:
        if any(d._in_flight for d in broker.dispatchers):
            return False
        depths = broker.depths()
        return depths.pop(broker.names.dead_letter) == dead and not any(depths.values())

    return check


def finish(broker: RabbitBroker, dead: int = 0) -> dict[str, tuple[int, int]]:
    """Wait for the quiet state, stop the dispatchers (they drain and close their channels, so any
    message still unacked would go back to its queue), check that every queue is still empty, and
    return each Trigger's final (delivered, dead-lettered) counters."""
    assert wait_for(settled(broker, dead)), broker.depths()
    broker.stop()
    depths = broker.depths()
    assert depths.pop(broker.names.dead_letter) == dead
    assert not any(depths.values()), depths  # nothing was left unacked
    return {d.trigger.name: (d.delivered, d.dead_lettered) for d in broker.dispatchers}


def publish(broker: RabbitBroker, event_type: str, data: object, event_id: str | None = None) -> str:
    message = make_message(event_type, data, source="/tests", event_id=event_id)
    broker.publisher.publish(message)
    return message.attributes["id"]


def test_chain_publish_handler_reply_third_function(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis
) -> None:
    """sender publishes -> broker -> echo handles and replies -> broker -> tally (and echo) get the reply."""
    broker = start_broker(demo, broker_name)
    try:
        response = requests.post(demo["sender"].url + "api/v1/sender", json={"thing_id": "chain-1"}, timeout=5)
        assert response.status_code == 202
        assert wait_for(lambda: r.hget("demo:tally", "chain-1") == "1")
        assert r.get("demo:effects:chain-1") == "1"  # echo's handler ran once
        assert wait_for(lambda: r.get("demo:counted") == "1")  # echo's second trigger got the reply too
        counters = finish(broker)  # every queue empty, including the one no event matches
        assert counters[trigger_name("tally", {"type": "demo.thing.counted.v1", "source": "/nowhere"})] == (0, 0)
        assert counters[trigger_name("tally", {"type": "demo.thing.counted.v1"})] == (1, 0)
        assert counters[trigger_name("echo", {"type": "demo.thing.happened.v1"})] == (1, 0)
        assert counters[trigger_name("echo", {"type": "demo.thing.counted.v1"})] == (1, 0)
        assert r.hget("demo:tally", "chain-1") == "1" and r.get("demo:counted") == "1"
    finally:
        broker.stop()


def test_message_encoding_matches_eventing_rabbitmq(broker_name: str) -> None:
    """Attributes as unprefixed AMQP headers, content type, data as body, persistent."""
    names = Names(broker_name)
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    channel.exchange_declare(names.exchange, exchange_type="headers", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, names.exchange, arguments={"x-match": "all", "type": "demo.enc.v1"})
    publisher = AmqpPublisher(RABBIT, broker_name)
    publisher.publish(make_message("demo.enc.v1", {"k": "값"}, source="/tests", event_id="enc-1", subject="s1"))
    publisher.close()
    assert wait_for(lambda: channel.queue_declare(queue, passive=True).method.message_count == 1, 5)
    _, props, body = channel.basic_get(queue, auto_ack=True)
    connection.close()
    assert props.headers["specversion"] == "1.0" and props.headers["id"] == "enc-1"
    assert props.headers["type"] == "demo.enc.v1" and props.headers["source"] == "/tests"
    assert props.headers["subject"] == "s1" and "time" in props.headers
    assert not any(k.startswith("ce-") or k.startswith("ce_") for k in props.headers)
    assert props.content_type == "application/json" and props.delivery_mode == 2
    assert json.loads(body) == {"k": "값"}


def test_fails_twice_then_succeeds_with_backoff(demo: dict[str, Served], broker_name: str, r: redis_lib.Redis) -> None:
    r.set("demo:flaky:mode", "fail-twice")
    broker = start_broker(demo, broker_name)
    try:
        event_id = publish(broker, "demo.flaky.requested.v1", {}, "twice-1")
        assert wait_for(lambda: r.get(f"demo:effect:{event_id}") == "1")
        attempts = [float(t) for t in r.lrange(f"demo:attempts:{event_id}", 0, -1)]
        assert len(attempts) == 3
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.1 * 0.9 and gaps[1] >= 0.2 * 0.9  # linear backoff, PT0.1S
        counters = finish(broker)  # drained: no retry still pending, no dead letter
        assert counters[FLAKY_TRIGGER] == (1, 0)
        assert r.get(f"demo:effect:{event_id}") == "1" and r.llen(f"demo:attempts:{event_id}") == 3
    finally:
        broker.stop()


def test_always_failing_is_dead_lettered_and_replay_redrives(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis, tmp_path: Path
) -> None:
    r.set("demo:flaky:mode", "always-fail")
    broker = start_broker(demo, broker_name)
    try:
        event_id = publish(broker, "demo.flaky.requested.v1", {"n": 1}, "dead-1")
        assert wait_for(lambda: broker.depths()[broker.names.dead_letter] == 1)
        assert r.llen(f"demo:attempts:{event_id}") == 3  # 1 + retry 2
        [(trigger, letter)] = broker.dead_letters()
        assert trigger == FLAKY_TRIGGER
        assert letter.attributes["id"] == event_id
        assert letter.attributes["knativeerrordest"] == demo["flaky"].url
        assert letter.attributes["knativeerrorcode"] == "500"
        # knativeerrordata: the subscriber's answer, base64 (the runtime's generic 500 body)
        answer = json.loads(base64.b64decode(letter.attributes["knativeerrordata"]))
        assert answer["code"] == "INTERNAL_ERROR" and "permanent failure" not in json.dumps(answer)
        assert broker.depths()[broker.names.dead_letter] == 1  # peeking leaves it there
        r.set("demo:flaky:mode", "ok")
        out = subprocess.run(
            [sys.executable, "-m", "eco2.tooling.cli", "--root", str(DEMO), "events", "replay"],
            env={**os.environ, "RABBITMQ_URL": RABBIT, "ECO2_BROKER": broker_name},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "replayed 1" in out.stdout
        assert wait_for(lambda: r.get(f"demo:effect:{event_id}") == "1")
        assert broker.depths()[broker.names.dead_letter] == 0
    finally:
        broker.stop()


def test_non_retryable_4xx_is_dead_lettered_after_one_try(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis
) -> None:
    r.set("demo:flaky:mode", "bad-request")
    broker = start_broker(demo, broker_name)
    try:
        event_id = publish(broker, "demo.flaky.requested.v1", {}, "bad-1")
        assert wait_for(lambda: broker.depths()[broker.names.dead_letter] == 1)
        assert r.llen(f"demo:attempts:{event_id}") == 1
        [(_, letter)] = broker.dead_letters()
        assert letter.attributes["knativeerrorcode"] == "400"
        answer = json.loads(base64.b64decode(letter.attributes["knativeerrordata"]))
        assert answer == {"detail": "this event can never be handled", "code": "DEMO_REJECTED"}
    finally:
        broker.stop()


def test_malformed_event_data_is_not_retried_forever(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis
) -> None:
    broker = start_broker(demo, broker_name)
    try:
        publish(broker, "demo.thing.happened.v1", {"no_thing_id": True}, "malformed-1")
        assert wait_for(lambda: broker.depths()[broker.names.dead_letter] == 1)
        [(_, letter)] = broker.dead_letters()
        assert letter.attributes["knativeerrorcode"] == "400"
    finally:
        broker.stop()


def test_same_event_twice_has_one_effect(demo: dict[str, Served], broker_name: str, r: redis_lib.Redis) -> None:
    broker = start_broker(demo, broker_name)
    try:
        publish(broker, "demo.flaky.requested.v1", {}, "twice-same")
        publish(broker, "demo.flaky.requested.v1", {}, "twice-same")
        [flaky] = [d for d in broker.dispatchers if d.trigger.name == FLAKY_TRIGGER]
        assert wait_for(lambda: flaky.delivered == 2)  # both copies reached the function and got a 2xx
        counters = finish(broker)
        assert counters[FLAKY_TRIGGER] == (2, 0)
        assert r.llen("demo:attempts:twice-same") == 1  # the handler ran for the first copy only
        assert r.get("demo:effect:twice-same") == "1"  # the second copy was deduplicated
        assert r.get("dedupe:flaky:/tests:twice-same") is not None
    finally:
        broker.stop()


def test_rabbitmq_outage_longer_than_a_second_with_events_in_flight(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis, tmp_path: Path
) -> None:
    """A RabbitMQ of the test's own is stopped mid-stream and started again (down for several
    seconds): the dispatchers reconnect, nothing is lost, nothing is applied twice."""
    rabbit = start_private(PrivateRabbitMQ, tmp_path / "rabbitmq")
    project = funcyaml.load(DEMO / "func.yaml")
    broker = RabbitBroker(rabbit.url, triggers(project, lambda fn: demo[fn].url), broker=broker_name)
    broker.setup()
    ids = [f"outage-{i}" for i in range(400)]
    try:
        r.set("demo:flaky:delay", "0.03")  # ~1.2 s of work at parallelism 10: the stop lands mid-stream
        for event_id in ids:  # all queued before any dispatcher runs
            publish(broker, "demo.flaky.requested.v1", {}, event_id)
        broker.start()
        assert broker.wait_connected(10)
        assert wait_for(lambda: r.scard("demo:effects") >= 50, 30)
        rabbit.stop()
        down_at = time.monotonic()
        assert r.scard("demo:effects") < len(ids)  # the outage really hit events in flight
        assert wait_for(lambda: not any(d.connected.is_set() for d in broker.dispatchers), 10)
        rabbit.start()
        outage = time.monotonic() - down_at
        assert outage > 1.0
        assert wait_for(lambda: r.scard("demo:effects") == len(ids), 60, 0.2), r.scard("demo:effects")
        finish(broker)
        counts = r.mget([f"demo:effect:{i}" for i in ids])
        assert counts.count("1") == len(ids)  # none lost, none applied twice
    finally:
        broker.stop()
        rabbit.remove()


def _queue(name: str) -> Any:
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    try:
        return connection.channel().queue_declare(name, passive=True).method
    except pika.exceptions.ChannelClosedByBroker:
        return None  # not declared yet
    finally:
        if connection.is_open:
            connection.close()


def consumers(queue: str) -> int:
    method = _queue(queue)
    return 0 if method is None else int(method.consumer_count)


def ready(queue: str) -> int:
    """Messages waiting in the queue (unacked ones are not counted until their channel closes)."""
    return int(_queue(queue).message_count)


def test_dispatcher_killed_mid_stream_and_restarted(
    demo: dict[str, Served], broker_name: str, r: redis_lib.Redis
) -> None:
    """The dispatchers run in their own process (`eco2 events dispatch`); SIGKILL it, start another."""
    urls = {name: s.url for name, s in demo.items()}
    env = {**os.environ, "RABBITMQ_URL": RABBIT, "ECO2_BROKER": broker_name, "ECO2_SUBSCRIBERS": json.dumps(urls)}
    cmd = [sys.executable, "-m", "eco2.tooling.cli", "--root", str(DEMO), "events", "dispatch"]
    project = funcyaml.load(DEMO / "func.yaml")
    RabbitBroker(RABBIT, triggers(project, lambda fn: urls[fn]), broker=broker_name).setup()
    publisher = AmqpPublisher(RABBIT, broker_name)
    ids = [f"kill-{i}" for i in range(300)]
    queue = Names(broker_name).queue(FLAKY_TRIGGER)
    first: subprocess.Popen[bytes] | None = None
    try:
        r.set("demo:flaky:delay", "0.02")
        for event_id in ids:  # all queued before the dispatcher process starts
            publisher.publish(make_message("demo.flaky.requested.v1", {}, source="/tests", event_id=event_id))
        assert ready(queue) == 300
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: consumers(queue) >= 1, 30)  # the dispatcher process is consuming
        assert wait_for(lambda: r.scard("demo:effects") >= 30, 30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        done_at_kill = r.scard("demo:effects")
        assert done_at_kill < 300
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: r.scard("demo:effects") == 300, 90, 0.2)
            assert wait_for(lambda: ready(queue) == 0)
        finally:
            second.terminate()
            second.wait(30)
        # the second dispatcher drained and closed its channel: an unacked message would be back
        assert ready(queue) == 0
        assert r.mget([f"demo:effect:{i}" for i in ids]).count("1") == 300
    finally:
        publisher.close()
        if first is not None and first.poll() is None:
            first.kill()


def test_parallelism_one_is_fifo(redis_url: str, broker_name: str, r: redis_lib.Redis) -> None:
    """A Trigger with parallelism 1 delivers in publish order."""
    from werkzeug.wrappers import Request, Response

    from tests.support.servers import serve_wsgi

    seen: list[str] = []

    @Request.application  # type: ignore[arg-type]
    def subscriber(request: Request) -> Response:
        seen.append(request.headers["ce-id"])
        time.sleep(0.002)
        return Response(status=200)

    server, _ = serve_wsgi(subscriber)
    trigger = TriggerSpec(
        "fifo",
        f"http://127.0.0.1:{server.server_port}/",
        {"type": "demo.fifo.v1"},
        DeliverySpec(retry=0),
        parallelism=1,
    )
    broker = RabbitBroker(RABBIT, [trigger], broker=broker_name)
    broker.start()
    try:
        ids = [f"{i:03d}" for i in range(100)]
        for event_id in ids:
            broker.publisher.publish(
                Message({"specversion": "1.0", "id": event_id, "source": "/t", "type": "demo.fifo.v1"}, b"{}")
            )
        assert wait_for(lambda: len(seen) == 100)
        assert seen == ids
    finally:
        broker.stop()
        server.shutdown()
        pika_conn = pika.BlockingConnection(pika.URLParameters(RABBIT))
        pika_conn.channel().queue_delete(Names(broker_name).queue("fifo"))
        pika_conn.close()
