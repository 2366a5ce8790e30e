"""Event streams of scan and chat jobs, many per process: one Redis reader fans out to every stream.

The design (measured by tests/benchmarks/bench_streams.py):

- **One reader per process.** A `Hub` task runs one `XREAD BLOCK` over every job stream that has a
  subscriber (`XREAD ... STREAMS k1 k2 … id1 id2 …`) on a connection of its own, and puts each new
  entry on the queues of that job's subscribers. A new job stream wakes it (`CLIENT UNBLOCK` from
  the pool); where that is unsupported (the embedded Redis of `eco2 dev`) the block timeout
  (1 s) bounds the wait. Every other command (ownership, the opening read, token re-checks,
  leases) goes through one bounded pool, so a process uses at most pool + 1 Redis connections
  however many streams it holds. One XREAD costs O(keys) (measured 0.6 ms for 200 keys, 2.1 ms for
  1,000), so a busy reader pauses between reads and each read carries many entries: the larger of
  `STREAMS_READER_LINGER_MS` (1 ms) and 4 µs per key (4 ms at 1,000 streams); without a pause a
  read followed every XADD (added p50 18 ms at 200 streams, against 7 ms with it).
- **Why not one blocking XREAD per stream** (the scan function's own reader): a connection and a
  thread per stream; 1,000 streams would need 1,000 Redis connections and threads. Pub/sub or
  keyspace notifications would need the writers or the Redis configuration to change.
- **No loss, no duplicate.** A stream subscribes *before* its catch-up read (`XREAD` without
  BLOCK from its position to the end), so every entry is either read by the catch-up or put on
  its queue by the hub after it subscribed; entries at or before the stream's position are
  dropped (ids compare as (ms, seq)).
- **Opening** (pure rules shared with the sync readers): a scan resumes after a valid
  `Last-Event-ID` (else from the start); a chat follows `functions.common.chatjobs.opening`
  (`token_recovery` without a usable id). A finished job sends what is after the id (or nothing:
  an id at or past its terminal entry) and closes; an id past the end of a running job is
  clamped to the end.
- **Sessions end streams.** Every keepalive interval the stream re-verifies its token (expiry and
  `eco2.core.security`'s revocation keys) and closes when it no longer holds; it closes at its time
  limit (below the Knative request timeout: the browser reconnects with `Last-Event-ID`) and when
  a client is too slow to take its queue (it resumes losslessly on reconnect), and at once on
  SIGTERM (Knative scaling down: the browsers resume on another pod).
- **Per-user cap.** Open streams are leases in `streams:user:{user_id}` (a sorted set scored by
  expiry, refreshed at every keepalive, so a crashed pod's leases lapse); past the cap the
  request is a 429 `TOO_MANY_STREAMS`.
- **Serving.** functions-framework's ASGI mode (Starlette; gunicorn's uvicorn worker in the
  container), runtime `eco2.serving.aio`. Routed by path ahead of the scan and chat prefixes: func.yaml
  `routes`; in the cluster the scan and chat VirtualServices hold these two regex rules before
  their prefix rules (rendered by eventing/manifests.py: the order inside one VirtualService is
  fixed, whatever the creation order of the VirtualServices); in `eco2 dev` (a WSGI gateway)
  the app runs on a loopback uvicorn in its own thread and the gateway forwards those two paths
  to it through a streaming proxy (`eco2.serving.aio.StreamProxy`: frames pass as they are written; one
  gateway thread per stream, fine for one developer). The scan function keeps its own reader as
  a fallback for `eco2 run scan` and direct calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from eco2 import errors
from functions.common import chatjobs, scanjobs

log = logging.getLogger("eco2.streams")
Fields = dict[str, str]
LINGER_PER_KEY = 4e-6  # seconds of pause per subscribed key when busy: twice a read's cost per key


def parse_id(value: str) -> tuple[int, int]:
    head, _, tail = value.partition("-")
    return int(head), int(tail or 0)


def is_stream_id(value: str | None) -> bool:
    return chatjobs.is_stream_id(value)


# -- the two kinds of stream ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    not_found: tuple[str, str]  # (detail, code)
    job_key: Callable[[str], str]
    stream_key: Callable[[str], str]
    event_field: str  # the entry field naming the SSE event
    terminal: frozenset[str]


SCAN = Kind(
    "scan",
    ("No such scan.", "SCAN_NOT_FOUND"),
    scanjobs.job_key,
    scanjobs.stream_key,
    "stage",
    frozenset({"done"}),
)
CHAT = Kind(
    "chat",
    ("No such chat answer.", "CHAT_JOB_NOT_FOUND"),
    chatjobs.job_key,
    chatjobs.stream_key,
    "event",
    frozenset(chatjobs.TERMINAL),
)


async def owned(redis: Any, kind: Kind, job_id: str, user_id: str) -> None:
    """Another user's job is as unknown as a missing one (404)."""
    owner = await redis.hget(kind.job_key(job_id), "user_id")
    if owner is None or owner != user_id:
        raise errors.NotFound(*kind.not_found)


async def opening(redis: Any, kind: Kind, job_id: str, last_event_id: str | None) -> tuple[list[str], str, bool]:
    """(frames to send first, the id to follow after, whether the job already ended)."""
    key = kind.stream_key(job_id)
    if kind is CHAT:
        raw = await redis.xrange(key)
        entries = [chatjobs.Entry(str(i), f.get("event", ""), f.get("data", "")) for i, f in raw]
        return chatjobs.opening(entries, last_event_id)
    after = last_event_id if last_event_id and is_stream_id(last_event_id) else "0"
    tail = await redis.xrevrange(key, "+", "-", count=1)
    if tail:
        tail_id, fields = str(tail[0][0]), tail[0][1]
        if parse_id(after) >= parse_id(tail_id):
            if fields.get(kind.event_field) in kind.terminal:
                return [], tail_id, True  # finished, and the client has seen its end: nothing more
            after = tail_id  # an id from the future: follow from the end
    return [], after, False


# -- the hub: one reader, many subscribers ----------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    key: str
    limit: int
    queue: asyncio.Queue[tuple[str, Fields] | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def end(self) -> None:
        """End the stream now (the process is stopping): the browser resumes elsewhere."""
        self.queue.put_nowait(None)

    def push(self, entry_id: str, fields: Fields) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            self.queue.put_nowait(None)  # too slow: close; it resumes with Last-Event-ID
            return
        self.queue.put_nowait((entry_id, fields))


class Hub:
    """One `XREAD BLOCK` over every subscribed job stream, fanned out to the subscribers."""

    def __init__(
        self, clients: Any, *, block_ms: int = 1000, linger_ms: float = 1, count: int = 100, queue_limit: int = 1000
    ) -> None:
        self.clients = clients
        self.block_ms = block_ms
        self.linger = linger_ms / 1000
        self.count = count
        self.queue_limit = queue_limit
        self.cursors: dict[str, str] = {}
        self.subscribers: dict[str, set[Subscription]] = {}
        self._changed = asyncio.Event()
        self._reader: Any = None
        self._reader_id: int | None = None
        self._blocked = False
        self._waking = False
        self._task: asyncio.Task[None] | None = None
        self.reads = 0

    def subscribe(self, key: str, position: str) -> Subscription:
        sub = Subscription(key, self.queue_limit)
        subs = self.subscribers.setdefault(key, set())
        subs.add(sub)
        if key not in self.cursors:
            self.cursors[key] = position
            self._changed.set()
            self._wake()
        if self._task is None or self._task.done():
            # a context of its own: the reader outlives the request that started it (and its request id)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="eco2-streams-hub", context=contextvars.Context()
            )
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self.subscribers.get(sub.key)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self.subscribers[sub.key]
            self.cursors.pop(sub.key, None)

    def end_all(self) -> None:
        for subs in list(self.subscribers.values()):
            for sub in list(subs):
                sub.end()

    @property
    def streams(self) -> int:
        return sum(len(s) for s in self.subscribers.values())

    def _wake(self) -> None:
        """Interrupt the reader's XREAD so it picks up the new key now (not at its block timeout)."""
        if not self._blocked or self._waking or self._reader_id is None:
            return
        self._waking = True

        async def unblock() -> None:
            try:
                await self.clients.redis.client_unblock(self._reader_id)
            except Exception:  # unsupported (embedded Redis) or Redis away: the block timeout bounds the wait
                log.debug("CLIENT UNBLOCK failed", exc_info=True)
            finally:
                self._waking = False

        asyncio.get_running_loop().create_task(unblock())

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self.cursors:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            try:
                if self._reader is None:
                    self._reader = self.clients.new_redis()
                    try:
                        self._reader_id = int(await self._reader.client_id())
                    except Exception:
                        self._reader_id = None
                if not self.cursors:
                    continue  # every subscriber left while the reader connected
                self._blocked = True
                found = await self._reader.xread(dict(self.cursors), count=self.count, block=self.block_ms)
                self.reads += 1
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream reader: Redis failed, retrying", extra={"error": type(exc).__name__})
                await self._drop_reader()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            finally:
                self._blocked = False
            pairs = _pairs(found)
            for key, entries in pairs:
                if key not in self.cursors:
                    continue  # its last subscriber left meanwhile
                for entry_id, fields in entries:
                    entry_id = str(entry_id)
                    if parse_id(entry_id) > parse_id(self.cursors[key]):
                        self.cursors[key] = entry_id
                    for sub in list(self.subscribers.get(key, ())):
                        sub.push(entry_id, fields)
            if pairs and self.linger:
                # busy: let entries gather, so one XREAD over every key carries many (a writer's
                # every XADD would wake it again). A read costs ~2 µs per key (measured), so the
                # pause grows with the keys: the reader spends at most about a third of its time reading.
                await asyncio.sleep(max(self.linger, len(self.cursors) * LINGER_PER_KEY))

    async def _drop_reader(self) -> None:
        reader, self._reader, self._reader_id = self._reader, None, None
        if reader is not None:
            try:
                await reader.aclose()
            except Exception:
                log.debug("closing the stream reader failed", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._drop_reader()


def _pairs(found: Any) -> list[tuple[str, list[tuple[str, Fields]]]]:
    """XREAD's answer as [(key, entries)] (a list in RESP2, a dict in RESP3)."""
    if not found:
        return []
    if isinstance(found, dict):
        return [(str(k), v) for k, v in found.items()]
    return [(str(k), v) for k, v in found]


# -- per-user leases --------------------------------------------------------------------------------


def lease_key(user_id: str) -> str:
    return f"streams:user:{user_id}"


class TooManyStreams(errors.TooManyRequests):
    default_code = "TOO_MANY_STREAMS"
    default_detail = "Too many open event streams for this account; close one and try again."
    retry_after = 5


async def acquire(redis: Any, user_id: str, stream_id: str, cap: int, seconds: float) -> None:
    """Hold one of the user's `cap` stream leases for `seconds` (refreshed while open), or 429."""
    key = lease_key(user_id)
    now = time.time()
    pipe = redis.pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now)
    pipe.zadd(key, {stream_id: now + seconds})
    pipe.zcard(key)
    pipe.expire(key, int(seconds) + 1)
    count = (await pipe.execute())[2]
    if int(count) > cap:
        await redis.zrem(key, stream_id)
        raise TooManyStreams()


async def refresh(redis: Any, user_id: str, stream_id: str, seconds: float) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(lease_key(user_id), {stream_id: time.time() + seconds}, xx=True)
    pipe.expire(lease_key(user_id), int(seconds) + 1)
    await pipe.execute()


# -- one stream -------------------------------------------------------------------------------------


@dataclass
class Limits:
    keepalive: float
    limit: float
    lease: float


_background: set[asyncio.Task[Any]] = set()


def _later(coro: Any) -> None:
    """Run `coro` after this stream's task is gone (a cancelled task cannot await in `finally`)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def frames(
    ctx: Any,
    hub: Hub,
    kind: Kind,
    job_id: str,
    first: list[str],
    position: str,
    ended: bool,
    limits: Limits,
    stream_id: str,
    on_close: Callable[[str], None],
) -> AsyncIterator[bytes]:
    """The SSE bytes of one stream: the opening, the catch-up, then live entries and keepalives."""
    redis = ctx.redis
    user_id = ctx.user_id
    key = kind.stream_key(job_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reason = "ended"
    sub: Subscription | None = None
    try:
        # what is ready at once goes out as one chunk (one write to the socket, not one per event)
        yield "".join(["retry: 3000\n\n", *first]).encode()
        if ended:
            return
        sub = hub.subscribe(key, position)
        # catch-up: everything already in the stream after the position (the hub has the rest)
        while True:
            found = await redis.xread({key: position}, count=500)
            batch = [(str(i), f) for _k, entries in _pairs(found) for i, f in entries]
            if not batch:
                break
            chunk: list[str] = []
            for entry_id, fields in batch:
                position = entry_id
                event = fields.get(kind.event_field, "")
                chunk.append(chatjobs.frame(entry_id, event, fields.get("data", "")))
                if event in kind.terminal:
                    yield "".join(chunk).encode()
                    return
            yield "".join(chunk).encode()
        last_sent = next_check = loop.time()
        next_check += limits.keepalive
        while True:
            now = loop.time()
            if now - started >= limits.limit:
                reason = "time limit"
                return
            if now >= next_check:
                try:
                    await ctx.check_session()
                except errors.AppError as exc:
                    reason = f"session: {exc.code}"
                    return
                await refresh(redis, user_id, stream_id, limits.lease)
                next_check = now + limits.keepalive
            if sub.queue.empty():
                wait = min(next_check, last_sent + limits.keepalive, started + limits.limit) - now
                try:
                    async with asyncio.timeout(max(wait, 0.001)):
                        item = await sub.queue.get()
                except TimeoutError:
                    if loop.time() - last_sent >= limits.keepalive - 0.005:
                        yield chatjobs.keepalive_frame(position, job_id).encode()
                        last_sent = loop.time()
                    continue
            else:
                item = sub.queue.get_nowait()
            # this entry and every other one already queued behind it, as one chunk
            chunk = []
            terminal = False
            while item is not None:
                entry_id, fields = item
                if parse_id(entry_id) > parse_id(position):  # else: already sent by the catch-up read
                    position = entry_id
                    event = fields.get(kind.event_field, "")
                    chunk.append(chatjobs.frame(entry_id, event, fields.get("data", "")))
                    if event in kind.terminal:
                        terminal = True
                        break
                if sub.queue.empty():
                    break
                item = sub.queue.get_nowait()
            if chunk:
                yield "".join(chunk).encode()
                last_sent = loop.time()
            if terminal:
                return
            if item is None:
                reason = "slow client" if sub.overflowed else "shutdown"
                return
    except Exception as exc:  # Redis away mid-stream: end cleanly, the browser reconnects
        reason = f"error: {type(exc).__name__}"
        log.warning("stream interrupted", extra={"job_id": job_id, "error": type(exc).__name__})
    finally:
        if sub is not None:
            hub.unsubscribe(sub)
        _later(_release(redis, user_id, stream_id))
        on_close(reason)
        log.info(
            "stream closed",
            extra={"kind": kind.name, "job_id": job_id, "reason": reason, "seconds": round(loop.time() - started, 3)},
        )


async def _release(redis: Any, user_id: str, stream_id: str) -> None:
    try:
        await redis.zrem(lease_key(user_id), stream_id)
    except Exception:  # the lease lapses by itself
        log.debug("releasing a stream lease failed", exc_info=True)


def new_stream_id() -> str:
    return uuid.uuid4().hex
