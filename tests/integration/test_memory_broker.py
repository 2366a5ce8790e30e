"""The in-process broker of `eco2 dev` (eventing/memory.py, chosen by eventing.local.make_broker when
no RabbitMQ is configured) has Knative's Trigger semantics: exact-match filters, retries with
backoff, dead letters with the knativeerror* extensions, replies published back to the broker.
The demo functions run on real HTTP ports; the broker delivers to them over HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests
from werkzeug.wrappers import Request, Response

from eco2.core import funcyaml
from eco2.events.message import make_message
from eventing.delivery import TriggerSpec
from eventing.local import LocalBroker, make_broker
from eventing.memory import MemoryBroker
from eventing.triggers import trigger_name
from tests.support.servers import Served, serve_function, serve_wsgi
from tests.support.waiting import wait_for

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
FLAKY = trigger_name("flaky", {"type": "demo.flaky.requested.v1"})


class Recorder:
    """A subscriber that answers 200 and keeps (path, attributes) of what it received."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.server, _ = serve_wsgi(self.app)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{path}"

    def app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        attrs = {k[3:].lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        with self._lock:
            self.got.append((request.path.strip("/"), attrs))
        return Response(status=200)(environ, start_response)

    def at(self, path: str) -> list[dict[str, str]]:
        return [attrs for p, attrs in self.got if p == path]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def memory_url() -> str:
    return f"memory://test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def demo(redis_url: str, memory_url: str) -> Iterator[dict[str, Served]]:
    env = {
        "ECO2_ENV": "test",
        "REDIS_URL": redis_url,
        "JWT_SECRET": "x" * 40,
        "LOG_LEVEL": "WARNING",
        "RABBITMQ_URL": memory_url,  # sender publishes into the same in-process broker
    }
    served = {name: serve_function(name, env, DEMO) for name in ("echo", "sender", "tally", "flaky")}
    yield served
    for s in served.values():
        s.close()


@pytest.fixture
def r(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url, decode_responses=True)


def start(demo: dict[str, Served], memory_url: str) -> LocalBroker:
    """The broker exactly as `eco2 dev` makes it without RabbitMQ: every Trigger of func.yaml."""
    urls = {name: s.url for name, s in demo.items()}
    local = make_broker(
        funcyaml.load(DEMO / "func.yaml"), {"RABBITMQ_URL": memory_url, "ECO2_SUBSCRIBERS": json.dumps(urls)}
    )
    assert isinstance(local.broker, MemoryBroker)
    return local


def stopped(local: LocalBroker) -> MemoryBroker:
    """Stop: every queued delivery is made first (the workers take the stop marker last)."""
    broker: MemoryBroker = local.broker
    local.stop()
    assert all(not t.is_alive() for t in broker._threads)
    assert all(depth == 0 for name, depth in broker.depths().items() if name != "dead-letter")
    return broker


def test_filters_and_replies_through_the_chain(
    demo: dict[str, Served], memory_url: str, r: redis_lib.Redis, recorder: Recorder
) -> None:
    """sender publishes -> echo handles and replies -> the reply goes back to the broker -> tally and
    echo's second Trigger get it; a Trigger whose filter does not match gets nothing."""
    local = start(demo, memory_url)
    broker: MemoryBroker = local.broker
    # two more Triggers on the reply type: one matching, one with a source no event has
    counted = {"type": "demo.thing.counted.v1"}
    broker.start(
        [
            TriggerSpec("rec-match", recorder.url("match"), counted),
            TriggerSpec("rec-nowhere", recorder.url("nowhere"), {**counted, "source": "/nowhere"}),
            TriggerSpec("rec-happened", recorder.url("happened"), {"type": "demo.thing.happened.v1"}),
        ]
    )
    try:
        response = requests.post(demo["sender"].url + "api/v1/sender", json={"thing_id": "mem-1"}, timeout=5)
        assert response.status_code == 202
        assert wait_for(lambda: r.hget("demo:tally", "mem-1") == "1" and r.get("demo:counted") == "1")
        assert wait_for(lambda: len(recorder.at("match")) == 1)
    finally:
        broker = stopped(local)
    [happened] = recorder.at("happened")
    assert happened["id"] == response.json()["event_id"] and happened["source"] == "/eco2/sender"
    [reply] = recorder.at("match")
    assert reply["type"] == "demo.thing.counted.v1" and reply["source"] == "/eco2/echo"
    assert recorder.at("nowhere") == []  # filters are exact matches on every attribute
    assert r.get("demo:effects:mem-1") == "1" and r.hget("demo:tally", "mem-1") == "1"
    assert broker.dead_letters == []


def test_retries_with_linear_backoff_then_success(demo: dict[str, Served], memory_url: str, r: redis_lib.Redis) -> None:
    r.set("demo:flaky:mode", "fail-twice")
    local = start(demo, memory_url)
    local.broker.publisher.publish(make_message("demo.flaky.requested.v1", {}, source="/tests", event_id="m-twice"))
    try:
        assert wait_for(lambda: r.get("demo:effect:m-twice") == "1")
    finally:
        broker = stopped(local)
    attempts = [float(t) for t in r.lrange("demo:attempts:m-twice", 0, -1)]
    assert len(attempts) == 3  # retry: 2
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.1 * 0.9 and gaps[1] >= 0.2 * 0.9  # linear, PT0.1S
    assert r.get("demo:effect:m-twice") == "1" and broker.dead_letters == []


@pytest.mark.parametrize(
    ("mode", "attempts", "code", "answer_code"),
    [("always-fail", 3, "500", "INTERNAL_ERROR"), ("bad-request", 1, "400", "DEMO_REJECTED")],
)
def test_dead_letters_carry_the_knative_error_extensions(
    demo: dict[str, Served], memory_url: str, r: redis_lib.Redis, mode: str, attempts: int, code: str, answer_code: str
) -> None:
    """5xx is retried then dead-lettered; a 4xx other than 404/409/429 is dead-lettered at once."""
    r.set("demo:flaky:mode", mode)
    local = start(demo, memory_url)
    local.broker.publisher.publish(make_message("demo.flaky.requested.v1", {"n": 1}, source="/tests", event_id="m-d"))
    try:
        assert wait_for(lambda: local.broker.depths()["dead-letter"] == 1)
    finally:
        broker = stopped(local)
    [(trigger, letter)] = broker.dead_letters
    assert trigger == FLAKY
    assert letter.attributes["id"] == "m-d" and json.loads(letter.data) == {"n": 1}
    assert letter.attributes["knativeerrordest"] == demo["flaky"].url
    assert letter.attributes["knativeerrorcode"] == code
    assert json.loads(base64.b64decode(letter.attributes["knativeerrordata"]))["code"] == answer_code
    assert r.llen("demo:attempts:m-d") == attempts
    assert r.get("demo:effect:m-d") is None


def test_unreachable_subscriber_is_dead_lettered_without_a_code(memory_url: str) -> None:
    trigger = TriggerSpec("gone", "http://127.0.0.1:1/", {"type": "demo.gone.v1"})
    broker = MemoryBroker()
    broker.start([replace(trigger, delivery=replace(trigger.delivery, retry=1, backoff_delay=0.01))])
    broker.publish(make_message("demo.gone.v1", {}, source="/tests", event_id="g-1"))
    assert wait_for(lambda: broker.depths()["dead-letter"] == 1, 10)
    broker.stop()
    [(name, letter)] = broker.dead_letters
    assert name == "gone" and letter.attributes["knativeerrordest"] == "http://127.0.0.1:1/"
    assert "knativeerrorcode" not in letter.attributes  # no HTTP answer at all
    assert b"ConnectionRefused" in base64.b64decode(letter.attributes["knativeerrordata"])


def test_a_dead_letter_goes_to_the_triggers_sink_and_to_the_queue_only_when_the_sink_refuses(
    memory_url: str, recorder: Recorder
) -> None:
    """`eco2 dev`'s broker hands what a Trigger gave up on to its deadLetterSink (as Knative
    does), knativeerror* extensions included; a sink that refuses leaves it in the queue."""
    sink = recorder
    base = TriggerSpec("gone", "http://127.0.0.1:1/", {"type": "demo.gone.v1"})
    fast = replace(base.delivery, retry=0, backoff_delay=0.01, sink_attempts=2)
    broker = MemoryBroker()
    broker.start(
        [
            replace(base, delivery=replace(fast, dead_letter_sink=sink.url("sink"))),
            replace(base, name="refused", delivery=replace(fast, dead_letter_sink="http://127.0.0.1:1/sink")),
        ]
    )
    broker.publish(make_message("demo.gone.v1", {}, source="/tests", event_id="s-1"))
    try:
        assert wait_for(lambda: broker.depths()["dead-letter"] == 1 and len(sink.got) == 1, 10)
    finally:
        broker.stop()
    [(path, attrs)] = sink.got
    assert path == "sink" and attrs["id"] == "s-1" and attrs["knativeerrordest"] == "http://127.0.0.1:1/"
    [(name, letter)] = broker.dead_letters
    assert name == "refused" and letter.attributes["id"] == "s-1"
