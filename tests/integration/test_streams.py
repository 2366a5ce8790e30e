"""The streams function (async, functions-framework's ASGI mode) on real Redis over real HTTP.

The function is loaded exactly as its container loads it (functions-framework's `create_app` on
functions/streams/main.py) and served by uvicorn on a loopback port; the tests write the job
streams themselves, as scan-worker and chat-worker do (functions/common/scanjobs.py, chatjobs.py).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from eco2.core import funcyaml
from eco2.serving.aio import LoopbackServer
from eco2.serving.server import container_env, create_app
from functions.common.chatjobs import ChatJobs
from functions.common.scanjobs import JobStore, StageStatus
from tests.conftest import ORIGIN, ROOT


class Streams:
    def __init__(self, env: dict[str, str]) -> None:
        spec = funcyaml.load(ROOT / "func.yaml").get("streams")
        app, self.runtime = create_app(spec, ROOT, container_env(spec, env))
        self.server = LoopbackServer(app, self.runtime)  # type: ignore[arg-type]
        self.port = self.server.port

    def token(self, user: str | None = None, ttl: int | None = None) -> tuple[str, str]:
        user = user or str(uuid.uuid4())
        codec = self.runtime.clients.tokens
        now = None if ttl is None else time.time() - codec.ttl("access") + ttl
        return user, codec.issue(user, "access", "kakao", now=now).token

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse()

    def open(self, path: str, token: str | None, **headers: str) -> SSE:
        h = dict(headers)
        if token:
            h["Cookie"] = f"s_access={token}"
        return SSE(self.port, path, h)

    def close(self) -> None:
        self.server.stop()
        self.runtime.close()


class SSE:
    """A minimal EventSource: frames parsed as they arrive."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        self.sock = self.conn.sock  # http.client lets go of it when the response is close-delimited
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.buffer = b""
        self.ended = False

    def body(self) -> Any:
        return json.loads(self.response.read())

    def next(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next named event, or None when the server closed the stream."""
        self.sock.settimeout(timeout)  # type: ignore[union-attr]
        while True:
            while b"\n\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n\n", 1)
                fields: dict[str, str] = {}
                for line in raw.decode().splitlines():
                    key, _, value = line.partition(": ")
                    fields[key] = value
                if "event" in fields:
                    data = fields.get("data")
                    return {
                        "id": fields.get("id"),
                        "event": fields["event"],
                        "data": json.loads(data) if data else None,
                    }
            chunk = self.response.read1(65536)
            if not chunk:
                self.ended = True
                return None
            self.buffer += chunk

    def rest(self, timeout: float = 10) -> list[dict[str, Any]]:
        """Every event until the server closes the stream (fails if it does not within `timeout`)."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next(timeout=max(0.01, deadline - time.monotonic()))
            if event is None:
                return out
            out.append(event)
        raise AssertionError(f"the stream did not end within {timeout} s: {out}")

    def close(self) -> None:
        self.response.close()
        self.conn.close()
        if self.sock is not None:
            self.sock.close()


@pytest.fixture
def start(base_env: dict[str, str]) -> Iterator[Callable[..., Streams]]:
    opened: list[Streams] = []

    def make(**extra: str) -> Streams:
        server = Streams({**base_env, **extra})
        opened.append(server)
        return server

    yield make
    for server in opened:
        server.close()


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def scan_event(client: redis.Redis, job: str, stage: str, status: StageStatus) -> None:
    """One progress event, written on its own (as scan-worker writes one before a model call)."""
    progress = JobStore(client).progress(job)
    progress.event(stage, status)
    progress.flush()


def scan_done(client: redis.Redis, job: str) -> None:
    JobStore(client).progress(job).finish({"task_id": job, "status": "completed", "reward": None, "error": None})


def scan_job(client: redis.Redis, user: str, finished: bool = True) -> str:
    job = uuid.uuid4().hex
    JobStore(client).create(job, user)
    for stage in ("vision", "rule", "answer", "reward"):
        scan_event(client, job, stage, "started")
        scan_event(client, job, stage, "completed")
        if not finished and stage == "rule":
            return job
    scan_done(client, job)
    return job


def chat_job(client: redis.Redis, user: str, tokens: list[str], done: bool = False) -> str:
    jobs = ChatJobs(client)
    job = uuid.uuid4().hex
    jobs.create(job, user, str(uuid.uuid4()))
    jobs.stage(job, "answer", "started")
    for seq, text in enumerate(tokens, 1):
        jobs.token(job, text, seq)
    if done:
        finish_chat(client, job, "".join(tokens))
    return job


def finish_chat(client: redis.Redis, job: str, answer: str) -> str:
    persistence = {
        "conversation_id": "c",
        "user_message": "u",
        "assistant_message": "a",
        "assistant_message_created_at": "2026-01-01T00:00:00+00:00",
    }
    return ChatJobs(client).append(
        job, "done", {"status": "completed", "result": {"answer": answer, "persistence": persistence}}
    )


# -- scan --------------------------------------------------------------------------------------------


def test_scan_replay_of_a_finished_job_ends_after_done(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start()
    user, token = streams.token()
    job = scan_job(store, user)
    stream = streams.open(f"/api/v1/scan/{job}/events", token, Origin=ORIGIN)
    assert stream.status == 200
    assert stream.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert stream.response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert stream.response.getheader("X-Request-ID")
    events = stream.rest(timeout=5)
    assert events[0]["event"] == "queued" and events[-1]["event"] == "done"
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["id"] for e in events)
    # a reconnect after the third event gets exactly the rest
    resumed = streams.open(f"/api/v1/scan/{job}/events", token, Last_Event_ID=events[2]["id"]).rest(timeout=5)
    assert events[:3] + resumed == events


def test_finished_job_with_an_id_at_or_past_its_end_closes_at_once(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    """The probe's 50 streams for a finished job with `Last-Event-ID: 9999999999999-0` stayed open."""
    streams = start()
    user, token = streams.token()
    job = scan_job(store, user)
    done_id = streams.open(f"/api/v1/scan/{job}/events", token).rest(timeout=5)[-1]["id"]
    started = time.monotonic()
    opened = [
        streams.open(f"/api/v1/scan/{job}/events", token, Last_Event_ID=last)
        for last in ["9999999999999-0"] * 4 + [done_id]
    ]
    for stream in opened:
        assert stream.status == 200 and stream.rest(timeout=3) == []
    assert time.monotonic() - started < 3


def test_scan_stream_follows_a_running_job_live(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start()
    user, token = streams.token()
    job = scan_job(store, user, finished=False)
    stream = streams.open(f"/api/v1/scan/{job}/events", token)
    seen = [stream.next() for _ in range(5)]  # queued, vision x2, rule x2: what was there
    assert [e["event"] for e in seen if e] == ["queued", "vision", "vision", "rule", "rule"]
    written_at = time.monotonic()
    scan_event(store, job, "answer", "started")
    live = stream.next(timeout=3)
    assert live is not None and live["event"] == "answer" and time.monotonic() - written_at < 1.0
    scan_done(store, job)
    rest = stream.rest(timeout=5)
    assert rest[-1]["event"] == "done" and rest[-1]["data"]["status"] == "completed"
    assert [e["data"]["seq"] for e in [*seen, live, *rest]] == list(range(1, 8))


def test_events_written_together_reach_the_client_as_one_chunk(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    """scan-worker writes what happened between two model calls in one transaction; the stream
    sends what the hub hands it at once as one chunk (one write), not one per event."""
    from functions.common.scanjobs import Pending

    streams = start()
    user, token = streams.token()
    job = scan_job(store, user, finished=False)
    stream = streams.open(f"/api/v1/scan/{job}/events", token)
    caught_up = [stream.next() for _ in range(5)]
    assert [e["event"] for e in caught_up if e] == ["queued", "vision", "vision", "rule", "rule"]
    assert stream.buffer == b""
    now = "2026-01-01T00:00:00+00:00"
    JobStore(store).append(job, [Pending("answer", "started", now), Pending("answer", "completed", now)])
    stream.sock.settimeout(3)  # type: ignore[union-attr]
    chunk = stream.response.read1(65536)  # at most one HTTP chunk
    assert chunk.count(b"event: answer") == 2
    stream.buffer = chunk
    assert [stream.next()["data"]["seq"], stream.next()["data"]["seq"]] == [6, 7]  # type: ignore[index]
    stream.close()


def test_future_id_on_a_running_job_follows_from_the_end(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start()
    user, token = streams.token()
    job = scan_job(store, user, finished=False)
    stream = streams.open(f"/api/v1/scan/{job}/events", token, Last_Event_ID="9999999999999-0")
    scan_event(store, job, "answer", "started")
    event = stream.next(timeout=3)
    assert event is not None and event["event"] == "answer" and event["data"]["seq"] == 6
    stream.close()


def test_other_users_job_unknown_job_and_no_session(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start()
    user, _ = streams.token()
    _, theirs = streams.token()
    job = scan_job(store, user)
    for path, code in (
        (f"/api/v1/scan/{job}/events", "SCAN_NOT_FOUND"),
        (f"/api/v1/chat/{job}/events", "CHAT_JOB_NOT_FOUND"),
    ):
        other = streams.open(path, theirs)
        assert other.status == 404 and other.body() == {"detail": other_detail(code), "code": code}
    anonymous = streams.open(f"/api/v1/scan/{job}/events", None)
    assert anonymous.status == 401 and anonymous.body()["code"] == "NOT_AUTHENTICATED"
    forged = streams.open(f"/api/v1/scan/{job}/events", "a.b.c")
    assert forged.status == 401 and forged.body()["code"] == "INVALID_TOKEN"


def other_detail(code: str) -> str:
    return {"SCAN_NOT_FOUND": "No such scan.", "CHAT_JOB_NOT_FOUND": "No such chat answer."}[code]


# -- chat --------------------------------------------------------------------------------------------


def test_chat_reconnect_without_an_id_recovers_the_tokens_then_follows_live(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    streams = start()
    user, token = streams.token()
    job = chat_job(store, user, ["안녕", "하세요", "! "])
    stream = streams.open(f"/api/v1/chat/{job}/events", token)
    recovery = stream.next()
    assert recovery is not None and recovery["event"] == "token_recovery"
    assert recovery["data"] == {"accumulated": "안녕하세요! ", "last_seq": 3, "completed": False}
    ChatJobs(store).token(job, "페트병은", 4)
    live = stream.next(timeout=3)
    assert live is not None and live["event"] == "token" and live["data"] == {"content": "페트병은", "seq": 4}
    done_id = finish_chat(store, job, "안녕하세요! 페트병은")
    [done] = stream.rest(timeout=5)
    assert done["event"] == "done" and done["id"] == done_id
    assert done["data"]["result"]["persistence"]["conversation_id"] == "c"
    assert int(recovery["id"].split("-")[0]) > 0 and live["id"] != recovery["id"]


def test_chat_reconnect_with_last_event_id_loses_and_repeats_nothing(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    streams = start()
    user, token = streams.token()
    job = chat_job(store, user, [f"t{i} " for i in range(1, 21)], done=True)
    everything = ChatJobs(store).entries(job)
    cut = everything[7]  # a token in the middle
    resumed = streams.open(f"/api/v1/chat/{job}/events", token, Last_Event_ID=cut.id).rest(timeout=5)
    assert [(e["id"], e["event"]) for e in resumed] == [(x.id, x.event) for x in everything[8:]]
    assert [e["data"]["seq"] for e in resumed if e["event"] == "token"] == list(range(7, 21))
    # a finished job without an id: the whole text at once, then its end, then the stream closes
    replay = streams.open(f"/api/v1/chat/{job}/events", token).rest(timeout=5)
    assert [e["event"] for e in replay] == ["token_recovery", "done"]
    assert replay[0]["data"]["accumulated"] == "".join(f"t{i} " for i in range(1, 21))
    assert replay[0]["data"]["completed"] is True
    # at its end: nothing more, closed
    assert streams.open(f"/api/v1/chat/{job}/events", token, Last_Event_ID=everything[-1].id).rest(timeout=3) == []


def test_chat_error_event_ends_the_stream(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start()
    user, token = streams.token()
    job = chat_job(store, user, ["잠시만요"])
    stream = streams.open(f"/api/v1/chat/{job}/events", token)
    assert stream.next()["event"] == "token_recovery"  # type: ignore[index]
    ChatJobs(store).append(job, "error", {"error": "UPSTREAM_ERROR", "message": "답변을 만들지 못했어요."})
    [error] = stream.rest(timeout=5)
    assert error["event"] == "error" and error["data"]["error"] == "UPSTREAM_ERROR"


# -- sessions, keepalives, limits --------------------------------------------------------------------


def test_keepalives_carry_the_last_id_while_nothing_happens(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start(STREAMS_KEEPALIVE_SECONDS="0.3")
    user, token = streams.token()
    job = chat_job(store, user, ["하나"])
    stream = streams.open(f"/api/v1/chat/{job}/events", token)
    recovery = stream.next()
    started = time.monotonic()
    keepalives = [stream.next(timeout=2) for _ in range(3)]
    took = time.monotonic() - started
    assert all(k is not None and k["event"] == "keepalive" for k in keepalives)
    assert {k["id"] for k in keepalives if k} == {recovery["id"]}  # type: ignore[index]
    assert 0.6 < took < 2.0
    stream.close()


def test_a_revoked_session_ends_its_stream(start: Callable[..., Streams], store: redis.Redis) -> None:
    """The probe's stream opened before logout kept streaming after the token was revoked."""
    streams = start(STREAMS_KEEPALIVE_SECONDS="0.5")
    user, token = streams.token()
    claims = streams.runtime.clients.tokens.verify(token, "access")
    job = chat_job(store, user, ["첫"])
    stream = streams.open(f"/api/v1/chat/{job}/events", token)
    assert stream.next()["event"] == "token_recovery"  # type: ignore[index]
    store.set(f"blacklist:{claims.jti}", "1", ex=60)  # what logout does
    revoked_at = time.monotonic()
    leftover = stream.rest(timeout=3)
    assert all(e["event"] == "keepalive" for e in leftover)
    assert time.monotonic() - revoked_at < 1.5  # within one keepalive (0.5 s) and a little
    again = streams.open(f"/api/v1/chat/{job}/events", token)
    assert again.status == 403 and again.body()["code"] == "TOKEN_REVOKED"


def test_streams_are_checked_against_the_local_revocation_view(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    """The async runtime keeps the local view of the revocation keys the sync one keeps: opening
    streams costs no MGET, and a revocation written elsewhere is refused within the view's bound."""
    from tests.integration.test_revocation_view import mgets_naming, wait_current

    streams = start()
    user, token = streams.token()
    claims = streams.runtime.clients.tokens.verify(token, "access")
    job = scan_job(store, user)
    assert streams.open(f"/api/v1/scan/{job}/events", token).rest(timeout=5)[-1]["event"] == "done"
    view = streams.runtime.clients.revocation_view()
    assert view is not None
    wait_current(view)
    reloads = view.reloads
    with mgets_naming(f"blacklist:{claims.jti}") as round_trips:
        for _ in range(10):
            assert streams.open(f"/api/v1/scan/{job}/events", token).rest(timeout=5)[-1]["event"] == "done"
    # the only MGETs allowed are checks during a reload (a FLUSHDB elsewhere on this shared server)
    assert len(round_trips) <= 2 * (view.reloads - reloads), round_trips
    store.set(f"blacklist:{claims.jti}", "1", ex=60)  # what logout does, from another client
    revoked_at = time.monotonic()
    while True:
        again = streams.open(f"/api/v1/scan/{job}/events", token)
        if again.status == 403 or time.monotonic() - revoked_at > view.bound:
            break
        again.close()
    assert again.status == 403 and again.body()["code"] == "TOKEN_REVOKED"


def test_an_expired_session_ends_its_stream(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start(STREAMS_KEEPALIVE_SECONDS="0.5", JWT_LEEWAY_SECONDS="0")
    user, token = streams.token(ttl=2)  # expires two seconds from now
    job = scan_job(store, user, finished=False)
    stream = streams.open(f"/api/v1/scan/{job}/events", token)
    opened = time.monotonic()
    events = stream.rest(timeout=5)
    assert events[0]["event"] == "queued" and events[-1]["event"] == "keepalive"
    assert 1.0 < time.monotonic() - opened < 4.0
    assert streams.open(f"/api/v1/scan/{job}/events", token).status == 401


def test_concurrent_streams_per_user_are_capped(start: Callable[..., Streams], store: redis.Redis) -> None:
    streams = start(STREAMS_PER_USER="2")
    user, token = streams.token()
    job = scan_job(store, user, finished=False)
    first = streams.open(f"/api/v1/scan/{job}/events", token)
    second = streams.open(f"/api/v1/scan/{job}/events", token)
    assert first.status == second.status == 200
    third = streams.open(f"/api/v1/scan/{job}/events", token, Origin=ORIGIN)
    assert third.status == 429 and third.response.getheader("Retry-After")
    assert third.response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert third.body() == {
        "detail": "Too many open event streams for this account; close one and try again.",
        "code": "TOO_MANY_STREAMS",
    }
    other_user, other_token = streams.token()
    other_job = scan_job(store, other_user, finished=False)
    assert streams.open(f"/api/v1/scan/{other_job}/events", other_token).status == 200  # per user
    first.close()  # the browser leaves: its lease goes
    deadline = time.monotonic() + 3
    while store.zcard(f"streams:user:{user}") > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert streams.open(f"/api/v1/scan/{job}/events", token).status == 200
    # a finished stream gives its lease back too
    done_job = scan_job(store, user)
    second.close()
    time.sleep(0.3)
    for _ in range(3):
        assert streams.open(f"/api/v1/scan/{done_job}/events", token).rest(timeout=3)[-1]["event"] == "done"


def test_many_streams_share_a_bounded_number_of_redis_connections(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    streams = start(REDIS_POOL_SIZE="4", REDIS_MAX_CONNECTIONS="1000")
    opened = []
    for _ in range(60):
        user, token = streams.token()
        job = chat_job(store, user, ["a"])
        stream = streams.open(f"/api/v1/chat/{job}/events", token)
        assert stream.status == 200 and stream.next()["event"] == "token_recovery"  # type: ignore[index]
        opened.append((job, stream))
    for job, _ in opened:
        ChatJobs(store).token(job, "b", 2)
    for _job, stream in opened:
        event = stream.next(timeout=5)
        assert event is not None and event["data"] == {"content": "b", "seq": 2}
    names = [c.get("name") for c in store.client_list()]
    used = names.count(streams.runtime.clients.client_name)
    assert 1 <= used <= 5, names  # the pool (4) and the reader
    metrics = streams.get("/metrics").read().decode()
    assert "eco2_streams_open 60.0" in metrics
    [gauge] = [line for line in metrics.splitlines() if line.startswith("eco2_streams_redis_connections ")]
    assert 1 <= float(gauge.split()[1]) <= 5, gauge
    for _job, stream in opened:
        stream.close()


def test_streams_joining_while_tokens_flow_lose_and_repeat_nothing(
    start: Callable[..., Streams], store: redis.Redis
) -> None:
    """Subscribe-then-catch-up: streams opened (fresh, or resuming from an id) while a writer
    appends every few ms each see every token after their start exactly once, in order."""
    streams = start(STREAMS_PER_USER="20")
    user, token = streams.token()
    job = chat_job(store, user, ["t1 "])
    jobs = ChatJobs(store)
    written: list[str] = []

    def write() -> None:
        writer = redis.Redis(connection_pool=store.connection_pool)
        for seq in range(2, 302):
            written.append(ChatJobs(writer).token(job, f"t{seq} ", seq))
            time.sleep(0.003)
        finish_chat(writer, job, "")

    thread = threading.Thread(target=write)
    thread.start()
    opened = []
    for i in range(12):
        time.sleep(0.07)
        resume = written[len(written) // 2] if i % 2 and written else None
        headers = {"Last_Event_ID": resume} if resume else {}
        opened.append((resume, streams.open(f"/api/v1/chat/{job}/events", token, **headers)))
    thread.join()
    entries = {e.id: e for e in jobs.entries(job)}
    order = [e.id for e in jobs.entries(job)]
    for resume, stream in opened:
        assert stream.status == 200
        events = stream.rest(timeout=10)
        assert events[-1]["event"] == "done"
        tokens = [e for e in events if e["event"] == "token"]
        ids = [e["id"] for e in events if e["event"] in ("token", "done")]
        if resume is None:
            recovery = events[0]
            assert recovery["event"] == "token_recovery"
            first = recovery["data"]["last_seq"] + 1
            assert ids == order[order.index(recovery["id"]) + 1 :]
        else:
            first = entries[resume].json()["seq"] + 1
            assert ids == order[order.index(resume) + 1 :]
        assert [t["data"]["seq"] for t in tokens] == list(range(first, 302))


def test_health_metrics_cors_preflight_and_openapi(start: Callable[..., Streams]) -> None:
    streams = start()
    ready = streams.get("/health/readiness")
    assert ready.status == 200 and json.loads(ready.read())["checks"] == {"jwt": "ok", "redis": "ok"}
    assert streams.get("/health/liveness").status == 200
    preflight = http.client.HTTPConnection("127.0.0.1", streams.port, timeout=5)
    preflight.request(
        "OPTIONS",
        "/api/v1/chat/x/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )
    answer = preflight.getresponse()
    assert answer.status == 204 and "Last-Event-ID" in (answer.getheader("Access-Control-Allow-Headers") or "")
    assert answer.getheader("Access-Control-Allow-Origin") == ORIGIN
    answer.read()
    preflight.request(
        "OPTIONS",
        "/api/v1/chat/x/events",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    refused = preflight.getresponse()
    assert refused.status == 403 and json.loads(refused.read())["code"] == "ORIGIN_NOT_ALLOWED"
    paths = json.loads(streams.get("/openapi.json").read())["paths"]
    assert set(paths) == {"/api/v1/scan/{job_id}/events", "/api/v1/chat/{job_id}/events"}
    missing = streams.get("/api/v1/scan/x/result")
    assert missing.status == 404 and json.loads(missing.read())["code"] == "NOT_FOUND"
    assert streams.get("/api/v1/scan//events").status == 404


# -- through `eco2 dev`'s gateway --------------------------------------------------------------------


def test_eco2_dev_gateway_streams_the_events_paths_from_the_async_function(
    base_env: dict[str, str], store: redis.Redis
) -> None:
    from werkzeug.serving import make_server

    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec
    from eco2.tooling.dev import build

    gateway = build(ROOT, {**base_env, "K_SINK": "http://127.0.0.1:9"}, only=["scan", "streams"])
    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        user = str(uuid.uuid4())
        token = TokenCodec(Settings.from_env(base_env)).issue(user, "access", "kakao").token
        job = scan_job(store, user, finished=False)
        stream = SSE(server.server_port, f"/api/v1/scan/{job}/events", {"Cookie": f"s_access={token}"})
        assert stream.status == 200 and stream.response.getheader("Content-Type", "").startswith("text/event-stream")
        assert [stream.next()["event"] for _ in range(5)] == ["queued", "vision", "vision", "rule", "rule"]  # type: ignore[index]
        scan_event(store, job, "answer", "started")
        live = stream.next(timeout=3)  # arrives while the stream is open: streamed, not buffered
        assert live is not None and live["event"] == "answer"
        scan_done(store, job)
        assert stream.rest(timeout=5)[-1]["event"] == "done"
        assert "streams" in {name for _t, name, _a in gateway.paths}
        # the rest of /api/v1/scan is still the scan function
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        conn.request("GET", f"/api/v1/scan/{job}/result", headers={"Cookie": f"s_access={token}"})
        result = conn.getresponse()
        assert result.status == 200 and json.loads(result.read())["task_id"] == job
    finally:
        server.shutdown()
        for runtime in gateway.runtimes.values():
            runtime.close()


# -- the scan function's own reader (the fallback: `eco2 run scan`, direct calls) -------------------


def test_scan_fallback_closes_finished_jobs_and_revoked_sessions(
    function_client: Callable[..., Any], store: redis.Redis
) -> None:
    from functions.scan import service as scan_service

    scan = function_client("scan", K_SINK="http://127.0.0.1:9")
    codec = scan.runtime.clients.tokens
    user = str(uuid.uuid4())
    issued = codec.issue(user, "access", "kakao")
    headers = {"Authorization": f"Bearer {issued.token}"}
    job = scan_job(store, user)
    started = time.monotonic()
    ended = scan.get(f"/api/v1/scan/{job}/events", headers={**headers, "Last-Event-ID": "9999999999999-0"})
    assert ended.status_code == 200 and ended.get_data(as_text=True) == "retry: 3000\n\n"
    assert time.monotonic() - started < 2
    running = scan_job(store, user, finished=False)
    original = scan_service.KEEPALIVE_SECONDS
    scan_service.KEEPALIVE_SECONDS = 1
    try:
        response = scan.get(f"/api/v1/scan/{running}/events", headers=headers, buffered=False)
        frames = iter(response.response)
        assert next(frames).startswith(b"retry:")
        assert b"event: queued" in next(frames)
        store.set(f"blacklist:{issued.claims.jti}", "1", ex=60)
        rest = b"".join(frames)  # ends at the next keepalive instead of streaming on
        assert b"event: keepalive" not in rest and b"event: done" not in rest
    finally:
        scan_service.KEEPALIVE_SECONDS = original
    assert time.monotonic() - started < 6


def test_sigterm_ends_open_streams_at_once_and_the_container_exits(
    base_env: dict[str, str], store: redis.Redis, tmp_path: Any
) -> None:
    """The container contract: on SIGTERM (Knative scaling down) every open stream ends cleanly
    right away (the browser resumes with Last-Event-ID on another pod) and the process exits."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenCodec

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, **base_env, "PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1"}
    env["PYTHONPATH"] = f"{ROOT / 'platform'}:{ROOT}"
    log = (tmp_path / "streams.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "eco2.serving.server", "functions/streams/main.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/health/readiness")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "streams.log").read_text()
            time.sleep(0.1)
        user = str(uuid.uuid4())
        token = TokenCodec(Settings.from_env(base_env)).issue(user, "access", "kakao").token
        job = chat_job(store, user, ["하나 "])
        stream = SSE(port, f"/api/v1/chat/{job}/events", {"Cookie": f"s_access={token}"})
        assert stream.status == 200 and stream.next()["event"] == "token_recovery"  # type: ignore[index]
        ChatJobs(store).token(job, "둘 ", 2)
        assert stream.next(timeout=3)["data"]["seq"] == 2  # type: ignore[index]
        stopped = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert stream.rest(timeout=5) == []  # ended cleanly (the chunked body was closed), not cut off
        assert time.monotonic() - stopped < 3
        server.wait(15)
        assert time.monotonic() - stopped < 10
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
