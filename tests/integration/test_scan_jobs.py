"""Scan jobs in Redis (functions/common/scanjobs.py) on a real server: the first final result
stands. A try still running when the job was failed by its dead-letter sink, or a second try of
one job, writes nothing after `done`; concurrent writers of one job get contiguous sequence numbers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from functions.common.scanjobs import JobStore, Pending, _now, failed_result, stream_key


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield JobStore(client)
    client.close()


def completed(job_id: str) -> dict[str, Any]:
    return {
        "task_id": job_id,
        "status": "completed",
        "message": "ok",
        "pipeline_result": {},
        "reward": None,
        "error": None,
    }


def events(store: JobStore, job_id: str) -> list[tuple[str, str, int]]:
    out = []
    for _id, stage, data in store.read(job_id, "0", 0):
        parsed = json.loads(data)
        out.append((stage, parsed["status"], parsed["seq"]))
    return out


def test_a_try_that_finishes_after_its_dead_letter_changes_nothing(store: JobStore) -> None:
    job_id, user = uuid.uuid4().hex, str(uuid.uuid4())
    store.create(job_id, user)
    slow = store.progress(job_id)  # a try that started, then outlived its delivery's timeout
    slow.event("vision", "started")
    slow.flush()
    assert store.fail_unfinished(job_id, "undelivered") is True  # the dead-letter sink
    failed = store.result(job_id)
    assert failed is not None and failed["status"] == "failed"

    slow.event("vision", "completed")
    slow.event("answer", "started")
    slow.flush()  # written nowhere: the job has its result
    assert slow.finish(completed(job_id)) == failed  # the result the user was shown stands
    assert store.result(job_id) == failed
    job = store.get(job_id)
    assert job is not None and job.status == "failed"
    assert events(store, job_id) == [
        ("queued", "completed", 1),
        ("vision", "started", 2),
        ("vision", "failed", 3),
        ("done", "failed", 4),
    ]


def test_the_first_result_stands_and_done_is_written_once(store: JobStore) -> None:
    job_id = uuid.uuid4().hex
    store.create(job_id, "u")
    first, second = completed(job_id), failed_result(job_id, "late")
    assert store.progress(job_id).finish(first) is first
    assert store.progress(job_id).finish(second) == first
    assert store.fail_unfinished(job_id, "undelivered") is False
    assert store.result(job_id) == first
    assert [e for e in events(store, job_id) if e[0] == "done"] == [("done", "completed", 2)]


def test_concurrent_writers_of_one_job_get_contiguous_sequence_numbers(store: JobStore) -> None:
    job_id = uuid.uuid4().hex
    store.create(job_id, "u")
    go = threading.Barrier(8)

    def write() -> None:
        go.wait()
        for _ in range(5):
            assert store.append(job_id, [Pending("vision", "started", _now())]) is not None

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    seqs = [seq for _stage, _status, seq in events(store, job_id)]
    assert seqs == list(range(1, 42))  # `queued` and 40 events, none lost or repeated
    assert store.redis.xlen(stream_key(job_id)) == 41


def test_a_job_that_is_gone_gets_nothing_written(store: JobStore) -> None:
    """Expired or deleted: no event, no half job hash without its owner (the hash alone would be
    a job nobody can read)."""
    job_id = uuid.uuid4().hex
    assert store.append(job_id, [Pending("vision", "started", _now())]) is None
    assert store.redis.exists(stream_key(job_id), f"scan:job:{job_id}", f"scan:seq:{job_id}") == 0


def test_each_write_is_one_round_trip(store: JobStore) -> None:
    """One EVALSHA per write of a job's progress, and no WATCH (the optimistic transaction it
    replaced took three round trips per write)."""

    def calls() -> dict[str, int]:
        stats = store.redis.info("commandstats")
        return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "watch", "exec")}

    job_id = uuid.uuid4().hex
    store.create(job_id, "user-1")
    progress = store.progress(job_id)
    store.append(job_id, [Pending("vision", "started", _now())])  # loads the script on a new server
    before = calls()
    progress.event("vision", "completed")
    progress.event("answer", "started")
    progress.flush()
    assert progress.finish(completed(job_id))["status"] == "completed"
    after = calls()
    assert {name: after[name] - before[name] for name in after} == {"evalsha": 2, "watch": 0, "exec": 0}
    assert [stage for stage, _status, _seq in events(store, job_id)][-1] == "done"
