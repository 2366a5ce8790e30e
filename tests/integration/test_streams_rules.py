"""The streams function's rules that need no HTTP: func.yaml `routes`, path matching, entry-id order,
slow subscribers, and the hub's fan-out on real Redis (one reader for many streams)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis

from eco2.core import funcyaml
from eco2.serving.aio import path_pattern
from functions.streams import service

BASE = """
specVersion: 0.36.0
name: eco2
functions:
  scan:
    ingress: [/api/v1/scan]
  streams:
    routes: {routes}
"""


def test_func_yaml_routes_are_exact_paths_and_reach_the_function() -> None:
    spec = funcyaml.parse(BASE.format(routes='["/api/v1/scan/{job_id}/events"]')).get("streams")
    assert spec.routes == ("/api/v1/scan/{job_id}/events",) and spec.ingress == ()
    for bad in ('["/api/v1/scan/{job_id}/../events"]', '["/metrics"]', '["/api/v1/scan/{Job}/events"]'):
        with pytest.raises(funcyaml.FuncYamlError, match="not a path like"):
            funcyaml.parse(BASE.format(routes=bad))
    with pytest.raises(funcyaml.FuncYamlError, match="no ingress, subscription or schedule"):
        funcyaml.parse(BASE.format(routes="[]"))


def test_the_repository_routes_both_event_paths_to_streams() -> None:
    spec = funcyaml.load().get("streams")
    assert set(spec.routes) == {"/api/v1/scan/{job_id}/events", "/api/v1/chat/{job_id}/events"}
    pattern = path_pattern("/api/v1/chat/{job_id}/events")
    assert pattern.fullmatch("/api/v1/chat/4f2a/events")
    assert not pattern.fullmatch("/api/v1/chat/4f2a/events/x")
    assert not pattern.fullmatch("/api/v1/chat/a/b/events")
    assert not pattern.fullmatch("/api/v1/chat/events")


def test_entry_ids_compare_as_numbers() -> None:
    assert service.parse_id("1700000000000-10") > service.parse_id("1700000000000-9")
    assert service.parse_id("999-0") < service.parse_id("1000-0")
    assert service.parse_id("5") == (5, 0)


def test_a_slow_subscriber_is_ended_once_its_queue_is_full() -> None:
    async def scenario() -> tuple[int, bool, Any]:
        sub = service.Subscription("k", limit=3)
        for i in range(10):
            sub.push(f"{i}-0", {"event": "token"})
        items = []
        while not sub.queue.empty():
            items.append(sub.queue.get_nowait())
        return len(items), sub.overflowed, items[-1]

    count, overflowed, last = asyncio.run(scenario())
    assert overflowed and count == 4 and last is None  # three entries, then the end


class _Clients:
    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.redis = aioredis.Redis.from_url(url, decode_responses=True)

    def new_redis(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(self.url, decode_responses=True, single_connection_client=True)


def test_one_reader_fans_out_to_every_subscriber_of_many_streams(redis_url: str) -> None:
    """Two subscribers on each of 30 job streams; entries written after they subscribed reach
    both, in order, through one XREAD connection; a stream subscribed later is picked up too."""
    writer = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = [f"chat:events:{uuid.uuid4().hex}" for _ in range(30)]
    late = f"chat:events:{uuid.uuid4().hex}"

    async def scenario() -> dict[str, Any]:
        clients = _Clients(redis_url)
        hub = service.Hub(clients, block_ms=2000, linger_ms=2)
        subs = {key: [hub.subscribe(key, "0"), hub.subscribe(key, "0")] for key in keys}
        await asyncio.sleep(0.2)  # the reader is blocked on every key
        for n in range(3):
            for key in keys:
                writer.xadd(key, {"event": "token", "data": str(n)})
        got: dict[str, Any] = {}
        async with asyncio.timeout(5):
            for key, pair in subs.items():
                got[key] = [[(await s.queue.get())[1]["data"] for _ in range(3)] for s in pair]  # type: ignore[index]
        reads = hub.reads
        await asyncio.sleep(0.3)  # nothing to read: the reader blocks (2 s) on the 30 keys
        late_sub = hub.subscribe(late, "0")  # a new key wakes it (CLIENT UNBLOCK), no 2 s wait
        writer.xadd(late, {"event": "token", "data": "late"})
        woke = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            got[late] = (await late_sub.queue.get())[1]["data"]  # type: ignore[index]
        got["late_seconds"] = asyncio.get_running_loop().time() - woke
        for pair in subs.values():
            for s in pair:
                hub.unsubscribe(s)
        hub.unsubscribe(late_sub)
        assert hub.cursors == {} and hub.streams == 0
        await hub.aclose()
        await clients.redis.aclose()
        return {"got": got, "reads": reads}

    try:
        result = asyncio.run(scenario())
    finally:
        writer.delete(*keys, late)
        writer.close()
    assert all(result["got"][key] == [["0", "1", "2"], ["0", "1", "2"]] for key in keys)
    assert result["got"][late] == "late" and result["got"]["late_seconds"] < 1.0
    assert result["reads"] < 90  # batched: far fewer reads than the 91 entries written
