"""Scan jobs in Redis, shared by `scan` (creates, reads, streams) and `scan-worker` (progresses).

Per job (all kept one hour):
- `scan:job:{id}`      hash: user_id, status (queued|processing|completed|failed), current_stage, progress
- `scan:result:{id}`   the final result JSON, written in the same script as the `done` event
- `scan:events:{id}`   a Redis stream of progress events; its entry ids are the SSE `id:` values, so a
                       reconnect with Last-Event-ID resumes exactly after the last event seen
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import redis

TTL = 3600
STAGES = ("queued", "vision", "rule", "answer", "reward", "done")
PROGRESS = {"queued": 0, "vision": 25, "rule": 50, "answer": 75, "reward": 100, "done": 100}
StageStatus = Literal["started", "completed", "failed"]


def job_key(job_id: str) -> str:
    return f"scan:job:{job_id}"


def result_key(job_id: str) -> str:
    return f"scan:result:{job_id}"


def stream_key(job_id: str) -> str:
    return f"scan:events:{job_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def failed_result(job_id: str, error: str) -> dict[str, Any]:
    """The final result of a scan that ended without an answer; `error` is shown to the user."""
    return {
        "task_id": job_id,
        "status": "failed",
        "message": "분석을 끝내지 못했어요.",
        "pipeline_result": None,
        "reward": None,
        "error": error,
    }


def _event_parts(
    job_id: str, stage: str, status: StageStatus, result: dict[str, Any] | None, ts: str
) -> tuple[str, str, int, str]:
    """An event's data JSON cut around its sequence number (`head + str(seq) + tail` is the JSON
    of {job_id, stage, status, seq, ts, progress[, result]}, which only the writer can number),
    the job's progress after it, and the job's new status ("" to keep it)."""
    index = STAGES.index(stage)
    progress = PROGRESS[STAGES[index - 1]] if status == "started" and index else PROGRESS[stage]
    head = json.dumps({"job_id": job_id, "stage": stage, "status": status}, ensure_ascii=False)[:-1] + ', "seq": '
    rest: dict[str, Any] = {"ts": ts, "progress": progress}
    if result is not None:
        rest["result"] = result
    tail = ", " + json.dumps(rest, ensure_ascii=False)[1:]
    return head, tail, progress, "processing" if stage not in ("queued", "done") else ""


# KEYS: result, sequence counter, events stream, job hash. ARGV: ttl, the final result JSON and its
# status ("" and "" for none), then five per event: stage, data head, data tail, progress, job status
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[4]) == 0 then return false end
local ttl = ARGV[1]
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl) end
local ids = {}
for i = 4, #ARGV, 5 do
  seq = seq + 1
  ids[#ids + 1] = redis.call('XADD', KEYS[3], '*', 'stage', ARGV[i], 'data', ARGV[i + 1] .. seq .. ARGV[i + 2])
  redis.call('EXPIRE', KEYS[3], ttl)
  if ARGV[i + 4] ~= '' then
    redis.call('HSET', KEYS[4], 'current_stage', ARGV[i], 'progress', ARGV[i + 3], 'status', ARGV[i + 4])
  else
    redis.call('HSET', KEYS[4], 'current_stage', ARGV[i], 'progress', ARGV[i + 3])
  end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], 'status', ARGV[3]) end
redis.call('SET', KEYS[2], seq, 'EX', ttl)
return ids
"""


@dataclass(frozen=True)
class Pending:
    """A progress event noted but not yet written: its time is when it happened."""

    stage: str
    status: StageStatus
    ts: str
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class Job:
    id: str
    user_id: str
    status: str
    current_stage: str
    progress: int


def _job(job_id: str, raw: dict[str, str]) -> Job | None:
    if not raw:
        return None
    return Job(job_id, raw["user_id"], raw["status"], raw["current_stage"], int(raw["progress"]))


class JobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis: Any = client  # decode_responses=True: str in, str out (redis-py's stubs cannot say so)
        self._append_script = client.register_script(_APPEND)  # EVALSHA, loaded again after a Redis restart

    def create(self, job_id: str, user_id: str) -> None:
        """The job and its first event (`queued`, seq 1) in one transaction: one round trip on the
        submit path, where the hash, the sequence counter and the first event took three."""
        pipe = self.redis.pipeline()
        pipe.hset(
            job_key(job_id),
            mapping={
                "user_id": user_id,
                "status": "queued",
                "current_stage": "queued",
                "progress": 0,
                "created_at": time.time(),
            },
        )
        pipe.expire(job_key(job_id), TTL)
        pipe.set(f"scan:seq:{job_id}", 1, ex=TTL)
        self._append(pipe, job_id, "queued", "completed", 1, None, _now())
        pipe.execute()

    def get(self, job_id: str) -> Job | None:
        return _job(job_id, self.redis.hgetall(job_key(job_id)))

    def delete(self, job_id: str) -> None:
        self.redis.delete(job_key(job_id), result_key(job_id), stream_key(job_id), f"scan:seq:{job_id}")

    def get_with_result(self, job_id: str) -> tuple[Job | None, dict[str, Any] | None]:
        """The job and its final result (None until it has one), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(job_key(job_id))
        pipe.get(result_key(job_id))
        raw, result = pipe.execute()
        return _job(job_id, raw), None if result is None else dict(json.loads(result))

    def append(self, job_id: str, events: list[Pending], final: dict[str, Any] | None = None) -> list[str] | None:
        """Append `events` in order, atomically; returns their stream entry ids. With `final`, the
        job's final result is stored and its status set in the same step, so it is readable with
        `done`.

        Nothing is written once the job has its final result, or when the job is gone (None is
        returned): the first result stands. A job failed by its dead-letter sink while a slow try
        was still running, or two tries of one job, would otherwise add events after `done`, set
        the job "processing" again or replace the result the user was shown. One Redis script
        (`_APPEND`, EVALSHA): one round trip, where the optimistic transaction it replaced (WATCH,
        MGET, MULTI/EXEC) took three, and no retry when another writer of the job gets in between."""
        args = (
            [str(TTL), "", ""] if final is None else [str(TTL), json.dumps(final, ensure_ascii=False), final["status"]]
        )
        for e in events:
            head, tail, progress, job_status = _event_parts(job_id, e.stage, e.status, e.result, e.ts)
            args += [e.stage, head, tail, str(progress), job_status]
        keys = [result_key(job_id), f"scan:seq:{job_id}", stream_key(job_id), job_key(job_id)]
        ids = self._append_script(keys=keys, args=args)
        return None if ids is None else [str(i) for i in ids]

    def progress(self, job_id: str) -> JobProgress:
        return JobProgress(self, job_id)

    def fail_unfinished(self, job_id: str, error: str) -> bool:
        """End a job that has no result yet as failed: its stage (when one had started) and `done`
        are written as failed, with the failed result. False when the job is gone or finished
        (a retry that got through meanwhile keeps its result)."""
        job, done = self.get_with_result(job_id)
        if job is None or done is not None:
            return False
        progress = self.progress(job_id)
        if job.current_stage not in ("queued", "done"):
            progress.event(job.current_stage, "failed")
        result = failed_result(job_id, error)
        return progress.finish(result) is result  # else a try finished in between, and its result stands

    @staticmethod
    def _append(
        pipe: Any,
        job_id: str,
        stage: str,
        status: StageStatus,
        seq: int,
        result: dict[str, Any] | None,
        ts: str,
    ) -> None:
        """Queue, on `pipe`, the event (first command: its reply is the stream entry id) and the
        job's new stage (three commands), as `_APPEND` writes them."""
        head, tail, progress, job_status = _event_parts(job_id, stage, status, result, ts)
        pipe.xadd(stream_key(job_id), {"stage": stage, "data": f"{head}{seq}{tail}"})
        pipe.expire(stream_key(job_id), TTL)
        mapping: dict[str, Any] = {"current_stage": stage, "progress": progress}
        if job_status:
            mapping["status"] = job_status
        pipe.hset(job_key(job_id), mapping=mapping)

    def result(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(result_key(job_id))
        return None if raw is None else dict(json.loads(raw))

    def read(self, job_id: str, after: str, block_ms: int) -> list[tuple[str, str, str]]:
        """Events after stream id `after` ('0' = from the start): [(id, stage, data json)]."""
        found = self.redis.xread({stream_key(job_id): after}, count=100, block=block_ms)
        out = []
        for _stream, entries in found or []:
            for entry_id, fields in entries:
                out.append((str(entry_id), fields["stage"], fields["data"]))
        return out


class JobProgress:
    """One job's progress as its pipeline reports it. Events noted between two waits (a model
    call) are written together: `flush` before anything that waits, `finish` with the result and
    `done`. A scan's nine events and its result take three transactions instead of ten."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self._pending: list[Pending] = []

    def event(self, stage: str, status: StageStatus) -> None:
        self._pending.append(Pending(stage, status, _now()))

    def flush(self) -> None:
        if self._pending:
            self.store.append(self.job_id, self._pending)
            self._pending = []

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write `result` with `done`, and return the job's final result: `result`, or the one
        already stored (the first result stands, `JobStore.append`)."""
        done: StageStatus = "completed" if result["status"] == "completed" else "failed"
        written = self.store.append(self.job_id, [*self._pending, Pending("done", done, _now(), result)], final=result)
        self._pending = []
        if written is not None:
            return result
        stored = self.store.result(self.job_id)
        return result if stored is None else stored  # None: expired meanwhile
