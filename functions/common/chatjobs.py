"""Chat jobs in Redis: the contract between `chat` (creates, streams), `chat-worker` (writes) and any
reader of the job's event stream (the chat function's SSE today, an async streams server later).

Per job (kept one hour):
- `chat:job:{id}`     hash: `user_id`, `chat_id`, `status` ∈ submitted | streaming | completed | failed
- `chat:events:{id}`  a Redis stream; every entry has two fields: `event` (the SSE event name: a stage
                      name, `token`, `done` or `error`) and `data` (the JSON text of the event's data):
                        stage  {"job_id", "stage", "status": started|completed, "ts"}
                        token  {"content", "seq"}            seq = 1, 2, 3, … within the job
                        done   {"status", "result": {"answer", "persistence": {"conversation_id",
                                "user_message", "assistant_message", "assistant_message_created_at"}}}
                        error  {"error", "message"}
                      The SSE `id:` of an event is its entry id. A job's stream ends with `done` or `error`.
- `chat:lease:{id}`   held by the worker answering the job (no second answer while it runs)

Writing: the first terminal event stands. Every write after `create` is one server-side script that
writes nothing once the job has ended (status completed or failed) or is gone, and a terminal event
sets the final status in the same step. So a try that outlives its delivery (the dead-letter sink
failed the job meanwhile) stops at its next write instead of adding tokens after `error`, and
`done` and `error` can never both end one stream.

Reading (the same rules for every reader; the pure functions below carry them):
- `Last-Event-ID` that names an entry of the stream: send every entry after it, nothing else.
- no usable id (first connect, or a reconnect that lost it): send `token_recovery`
  `{"accumulated", "last_seq", "completed"}` built from the token entries so far, with the id of the
  last entry it covers, then the terminal event if the job already ended, then follow live.
- `keepalive` (id = the last id sent) when nothing happened for KEEPALIVE_SECONDS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

TTL = 3600
KEEPALIVE_SECONDS = 15
STREAM_LIMIT_SECONDS = 600
TERMINAL = ("done", "error")


def job_key(job_id: str) -> str:
    return f"chat:job:{job_id}"


def stream_key(job_id: str) -> str:
    return f"chat:events:{job_id}"


def lease_key(job_id: str) -> str:
    return f"chat:lease:{job_id}"


@dataclass(frozen=True)
class Job:
    id: str
    user_id: str
    chat_id: str
    status: str


@dataclass(frozen=True)
class Entry:
    id: str
    event: str
    data: str  # JSON text

    def json(self) -> Any:
        return json.loads(self.data)


# -- the reader's rules (pure: shared by the sync SSE here and any async reader) ---------------------


def is_stream_id(value: str | None) -> bool:
    if not value:
        return False
    head, dash, tail = value.partition("-")
    return head.isdigit() and (tail.isdigit() if dash else True)


def frame(entry_id: str, event: str, data: str) -> str:
    return f"id: {entry_id}\nevent: {event}\ndata: {data}\n\n"


def keepalive_frame(last_id: str, job_id: str) -> str:
    return frame(last_id, "keepalive", json.dumps({"job_id": job_id}))


def recovery(entries: list[Entry]) -> dict[str, Any]:
    """`token_recovery` data from the entries so far: the text of every token, in seq order."""
    tokens = sorted((e.json() for e in entries if e.event == "token"), key=lambda d: int(d["seq"]))
    done = next((e for e in entries if e.event == "done"), None)
    return {
        "accumulated": "".join(str(t["content"]) for t in tokens),
        "last_seq": int(tokens[-1]["seq"]) if tokens else 0,
        "completed": done is not None and done.json().get("status") == "completed",
    }


def opening(entries: list[Entry], last_event_id: str | None) -> tuple[list[str], str, bool]:
    """What a reader sends first, given everything the stream holds now: (frames, id to read after,
    whether the job already ended). `entries` is the whole stream (XRANGE - +)."""
    ids = [e.id for e in entries]
    if last_event_id and is_stream_id(last_event_id) and last_event_id in ids:
        position = ids.index(last_event_id)
        later = entries[position + 1 :]
        ended = any(e.event in TERMINAL for e in entries[: position + 1] + later)
        return [frame(e.id, e.event, e.data) for e in later], entries[-1].id, ended
    if not entries:
        return [], "0", False
    terminal = next((e for e in entries if e.event in TERMINAL), None)
    covered = [e for e in entries if e.event not in TERMINAL]
    frames = []
    if covered:
        frames.append(frame(covered[-1].id, "token_recovery", json.dumps(recovery(entries), ensure_ascii=False)))
    if terminal is not None:
        frames.append(frame(terminal.id, terminal.event, terminal.data))
    return frames, entries[-1].id, terminal is not None


# -- the store ---------------------------------------------------------------------------------------


# KEYS: the job hash, its stream. ARGV: event ("" for none), data, status to set ("" for none), TTL
# of the stream ("" to leave it). Nothing is written to a job that has ended or is gone.
_WRITE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'completed' or status == 'failed' then return false end
local id = 'ok'
if ARGV[1] ~= '' then
  id = redis.call('XADD', KEYS[2], '*', 'event', ARGV[1], 'data', ARGV[2])
  if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[3]) end
return id
"""


class ChatJobs:
    def __init__(self, client: redis.Redis) -> None:
        self.redis: Any = client  # decode_responses=True: str in, str out
        self._write = client.register_script(_WRITE)  # EVALSHA, loaded again after a Redis restart

    def create(self, job_id: str, user_id: str, chat_id: str) -> None:
        """The job, `submitted`, with its first stage event (`queued`)."""
        pipe = self.redis.pipeline()
        pipe.hset(job_key(job_id), mapping={"user_id": user_id, "chat_id": chat_id, "status": "submitted"})
        pipe.expire(job_key(job_id), TTL)
        pipe.execute()
        self.stage(job_id, "queued", "completed")

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.hgetall(job_key(job_id))
        if not raw or "user_id" not in raw:
            return None
        return Job(job_id, raw["user_id"], raw.get("chat_id", ""), raw.get("status", "submitted"))

    def delete(self, job_id: str) -> None:
        self.redis.delete(job_key(job_id), stream_key(job_id), lease_key(job_id))

    def streaming(self, job_id: str) -> bool:
        """Status `streaming` (a worker took the job); False when it has ended or is gone."""
        return self._run(job_id, "", "", "streaming", "") is not None

    def fail_unfinished(self, job_id: str, code: str, message: str) -> bool:
        """End a job that has not ended with `error` {code, message} (status failed). False when
        it is gone or already ended (completed or failed)."""
        return self.append(job_id, "error", {"error": code, "message": message}) is not None

    def lease(self, job_id: str, holder: str, seconds: int) -> bool:
        return bool(self.redis.set(lease_key(job_id), holder, ex=seconds, nx=True))

    def release(self, job_id: str) -> None:
        self.redis.delete(lease_key(job_id))

    def append(self, job_id: str, event: str, data: dict[str, Any]) -> str | None:
        """One event (entry) on the job's stream; returns its id, or None when the job has ended or
        is gone (nothing written). `done` ends the job as completed, `error` as failed."""
        status = {"done": "completed", "error": "failed"}.get(event, "")
        return self._run(job_id, event, json.dumps(data, ensure_ascii=False), status, str(TTL))

    def stage(self, job_id: str, stage: str, status: str) -> str | None:
        ts = datetime.now(UTC).isoformat()
        return self.append(job_id, stage, {"job_id": job_id, "stage": stage, "status": status, "ts": ts})

    def token(self, job_id: str, content: str, seq: int) -> str | None:
        # one round trip per token, no EXPIRE: the stream's TTL was set by the stage events before it
        return self._run(job_id, "token", json.dumps({"content": content, "seq": seq}), "", "")

    def _run(self, job_id: str, event: str, data: str, status: str, ttl: str) -> str | None:
        written = self._write(keys=[job_key(job_id), stream_key(job_id)], args=[event, data, status, ttl])
        return None if written is None else str(written)

    def entries(self, job_id: str) -> list[Entry]:
        return [Entry(str(i), f["event"], f["data"]) for i, f in self.redis.xrange(stream_key(job_id))]

    def read(self, job_id: str, after: str, block_ms: int) -> list[Entry]:
        found = self.redis.xread({stream_key(job_id): after}, count=200, block=block_ms)
        return [Entry(str(i), f["event"], f["data"]) for _s, batch in found or [] for i, f in batch]


def sse_frames(
    jobs: ChatJobs,
    job_id: str,
    last_event_id: str | None,
    clock: Callable[[], float],
    on_redis_error: Callable[[Exception], None] | None = None,
) -> Iterator[str]:
    """A synchronous reader: the job's events as SSE frames until the job ends (or the time limit:
    the browser then reconnects with Last-Event-ID)."""
    from redis.exceptions import RedisError

    started = clock()
    yield "retry: 3000\n\n"
    try:
        frames, after, ended = opening(jobs.entries(job_id), last_event_id)
        yield from frames
        while not ended and clock() - started < STREAM_LIMIT_SECONDS:
            batch = jobs.read(job_id, after, block_ms=KEEPALIVE_SECONDS * 1000)
            if not batch:
                yield keepalive_frame(after, job_id)
                continue
            for entry in batch:
                after = entry.id
                yield frame(entry.id, entry.event, entry.data)
                if entry.event in TERMINAL:
                    ended = True
                    break
    except RedisError as exc:  # end cleanly: the browser reconnects (retry: 3000) with Last-Event-ID
        if on_redis_error is not None:
            on_redis_error(exc)
