"""Done records written behind the answer (eco2.events.ingress.DoneRecords), against the real Redis:
the answer does not wait for the record, a duplicate meanwhile is answered from it in this process
(and gets 409 elsewhere, so the broker retries it), a Redis that fails keeps the record pending and
retried, and closing the runtime writes what is left."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from eco2.core import errors
from eco2.core.context import Event, OutEvent
from eco2.events.ingress import CLAIM_TTL, DEDUPE_TTL, Deduplicator, DoneRecords, Ingress, reply
from eco2.serving.testing import FunctionClient
from tests.support.waiting import wait_for

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
UNREACHABLE = "redis://127.0.0.1:9/0"  # nothing listens: every write fails at once
SECRET = "demo-secret-0123456789-0123456789-0123456789"


@pytest.fixture
def client(redis_url: str) -> Iterator[FunctionClient]:
    env = {"ECO2_ENV": "test", "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    with FunctionClient("echo", env, root=DEMO) as c:
        yield c


def event() -> Event[Any]:
    return Event(id=uuid.uuid4().hex, source="/tests", type="demo.thing.happened.v1", data=None)


def test_the_function_process_writes_done_records_behind_its_answers(client: FunctionClient, redis_url: str) -> None:
    ingress = client.runtime.event_ingress
    assert isinstance(ingress, Ingress)
    first = client.cloudevent("demo.thing.happened.v1", {"thing_id": "behind"}, event_id="b-1", source="/s")
    assert first.status_code == 200
    redis = redis_lib.Redis.from_url(redis_url)
    assert wait_for(lambda: ingress.records.pending() == 0, 5)
    stored = json.loads(redis.get("dedupe:echo:/s:b-1") or b"{}")
    assert stored["done"] is True and stored["reply"]["headers"]["ce-id"] == first.headers["ce-id"]
    assert 0 < int(redis.ttl("dedupe:echo:/s:b-1")) <= DEDUPE_TTL
    again = client.cloudevent("demo.thing.happened.v1", {"thing_id": "behind"}, event_id="b-1", source="/s")
    assert again.status_code == 200 and again.headers["ce-id"] == first.headers["ce-id"]
    assert redis.get("demo:effects:behind") == b"1"


def test_a_duplicate_while_the_record_is_pending_gets_the_reply_here_and_409_elsewhere(
    client: FunctionClient, redis_url: str
) -> None:
    records = DoneRecords(within=30)
    failing = redis_lib.Redis.from_url(UNREACHABLE, socket_connect_timeout=0.2)
    handled = event()
    first = Deduplicator(client.runtime, records)
    assert first.claim(handled) is None
    answer = reply(OutEvent(type="demo.thing.counted.v1", data={"n": 1}, id="r-1"), default_source="/eco2/echo")
    first.redis = failing  # the record's writes fail: it stays pending (and retried)
    first.done(handled, answer)
    first.redis = client.runtime.clients.redis
    assert records.pending() == 1
    here = Deduplicator(client.runtime, records).claim(handled)  # a duplicate reaching this process
    assert here is not None and here.status_code == 200 and here.headers["ce-id"] == "r-1"
    with pytest.raises(errors.Conflict):  # one reaching another process: 409, the broker retries
        Deduplicator(client.runtime, DoneRecords()).claim(handled)
    stored = redis_lib.Redis.from_url(redis_url).get(first.key(handled)) or b""
    assert stored.startswith(b"processing:")
    assert 0 < int(redis_lib.Redis.from_url(redis_url).ttl(first.key(handled))) <= CLAIM_TTL


def test_the_next_claim_carries_the_waiting_records(client: FunctionClient, redis_url: str) -> None:
    """Under a steady stream a record costs no round trip of its own: the next claim's pipeline
    writes it (the writer, lingering 30 s here, never had to)."""
    records = DoneRecords(linger=30)
    redis = client.runtime.clients.redis
    handled, following = event(), event()
    first = Deduplicator(client.runtime, records)
    assert first.claim(handled) is None
    first.done(handled, reply(OutEvent(type="demo.thing.counted.v1", data={}, id="r-2"), default_source="/t"))
    assert records.pending() == 1
    assert Deduplicator(client.runtime, records).claim(following) is None
    assert records.pending() == 0
    stored = json.loads(redis_lib.Redis.from_url(redis_url).get(first.key(handled)) or b"{}")
    assert stored["reply"]["headers"]["ce-id"] == "r-2"
    assert redis.get(first.key(following)).startswith("processing:")
    assert records.flush(1)


def test_records_wait_for_a_failing_redis_and_are_written_once_it_answers(redis_url: str) -> None:
    """The writer keeps the batch while Redis fails (backoff) and writes it when Redis answers."""
    real = redis_lib.Redis.from_url(redis_url)
    flaky = _FailingFor(real, failures=3)
    records = DoneRecords(within=30)
    keys = [f"dedupe:t:/s:{uuid.uuid4().hex}" for _ in range(5)]
    for key in keys:
        records.add(flaky, key, json.dumps({"done": True}))
    assert wait_for(lambda: records.pending() == 0, 10), "records not written after Redis came back"
    assert flaky.failed == 3
    assert all(real.get(key) == b'{"done": true}' for key in keys)
    assert records.flush(1)


def test_records_are_given_up_after_within_seconds_and_the_claims_expire(redis_url: str) -> None:
    records = DoneRecords(within=0.5)
    records.add(redis_lib.Redis.from_url(UNREACHABLE, socket_connect_timeout=0.2), "dedupe:t:/s:x", "{}")
    assert wait_for(lambda: records.pending() == 0, 5)
    assert records.flush(1)


def test_closing_the_runtime_writes_what_is_pending(redis_url: str) -> None:
    env = {"ECO2_ENV": "test", "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LOG_LEVEL": "WARNING"}
    gate = threading.Event()
    with FunctionClient("echo", env, root=DEMO) as c:
        ingress = c.runtime.event_ingress
        assert isinstance(ingress, Ingress)
        slow = _Gated(c.runtime.clients.redis, gate)
        keys = [f"dedupe:echo:/s:{uuid.uuid4().hex}" for _ in range(3)]
        for key in keys:
            ingress.records.add(slow, key, '{"done": true}')
        assert ingress.records.pending() == 3
        threading.Timer(0.2, gate.set).start()  # the writer is held until after close() began
    real = redis_lib.Redis.from_url(redis_url)
    assert all(real.get(key) == b'{"done": true}' for key in keys)


def test_under_concurrency_records_share_round_trips(redis_url: str) -> None:
    """Records that accumulate while a write is in flight go out together in one pipeline."""
    real = redis_lib.Redis.from_url(redis_url)
    counting = _Counting(real)
    records = DoneRecords()
    keys = [f"dedupe:t:/s:{uuid.uuid4().hex}" for _ in range(200)]
    for key in keys:
        records.add(counting, key, "{}")
    assert wait_for(lambda: records.pending() == 0, 10)
    assert all(real.exists(key) for key in keys)
    assert counting.pipelines < len(keys) / 2, counting.pipelines
    assert records.flush(1)


class _FailingFor:
    """A Redis client whose first `failures` pipelines fail as a Redis outage does."""

    def __init__(self, real: redis_lib.Redis, failures: int) -> None:
        self.real, self.failures, self.failed = real, failures, 0

    def pipeline(self, transaction: bool = False) -> Any:
        if self.failed < self.failures:
            self.failed += 1
            raise redis_lib.ConnectionError("Redis is restarting")
        return self.real.pipeline(transaction=transaction)


class _Gated:
    def __init__(self, real: redis_lib.Redis, gate: threading.Event) -> None:
        self.real, self.gate = real, gate

    def pipeline(self, transaction: bool = False) -> Any:
        self.gate.wait(5)
        return self.real.pipeline(transaction=transaction)


class _Counting:
    def __init__(self, real: redis_lib.Redis) -> None:
        self.real, self.pipelines = real, 0

    def pipeline(self, transaction: bool = False) -> Any:
        self.pipelines += 1
        time.sleep(0.002)  # a round trip's worth: records arrive meanwhile
        return self.real.pipeline(transaction=transaction)


def test_a_claim_whose_reply_was_lost_is_still_this_deliverys(client: FunctionClient) -> None:
    """The claim landed but its reply did not arrive (the connection broke; Lines sends it once
    more): the key holds this delivery's own token, so this delivery runs; another gets 409."""
    mine = Deduplicator(client.runtime, DoneRecords())
    happened = event()
    client.runtime.clients.redis.set(mine.key(happened), mine.token, ex=CLAIM_TTL)  # the first send
    assert mine.claim(happened) is None
    with pytest.raises(errors.Conflict):
        Deduplicator(client.runtime, DoneRecords()).claim(happened)


def test_claims_go_on_after_redis_closed_their_connections(client: FunctionClient) -> None:
    """An idle claim connection Redis has closed (a restart, a failover, CLIENT KILL) is replaced
    on its next use: the delivery does not fail for it."""
    records = DoneRecords()
    assert Deduplicator(client.runtime, records).claim(event()) is None  # opens a claim connection
    redis = client.runtime.clients.redis
    killed = redis.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    assert killed >= 1
    assert Deduplicator(client.runtime, records).claim(event()) is None
    records.lines.close()


def test_a_claim_round_trip_reads_every_reply_and_raises_an_error_reply(client: FunctionClient) -> None:
    """An error reply in a round trip is raised after every reply was read, so the connection is
    still in step for the next delivery."""
    from redis.exceptions import ResponseError

    redis = client.runtime.clients.redis
    lines = DoneRecords().lines
    key = f"lines-{uuid.uuid4().hex}"
    with pytest.raises(ResponseError):
        lines.run(redis, [("SET", key, "not a number"), ("INCR", key), ("SET", key + "-after", "1")])
    assert lines.run(redis, [("GET", key), ("GET", key + "-after")]) == ["not a number", "1"]
    lines.close()
