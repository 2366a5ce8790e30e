"""Chat jobs in Redis (functions/common/chatjobs.py) on a real server: the first terminal event
stands. Once a job has ended (`done` or `error`) nothing more is written to it, its status is the
one its terminal event set, and a job that is gone gets nothing written at all."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from functions.common.chatjobs import ChatJobs, stream_key

DONE = {"status": "completed", "result": {"answer": "헹궈서 버려 주세요.", "persistence": {}}}


@pytest.fixture
def jobs(redis_url: str) -> Iterator[ChatJobs]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield ChatJobs(client)
    client.close()


def new_job(jobs: ChatJobs) -> str:
    job_id = uuid.uuid4().hex
    jobs.create(job_id, str(uuid.uuid4()), str(uuid.uuid4()))
    return job_id


def test_a_try_that_outlives_its_dead_letter_writes_nothing_after_the_error(jobs: ChatJobs) -> None:
    job_id = new_job(jobs)
    assert jobs.streaming(job_id) is True
    assert jobs.stage(job_id, "answer", "started") is not None
    assert jobs.token(job_id, "우유팩은 ", 1) is not None
    assert jobs.fail_unfinished(job_id, "ANSWER_UNAVAILABLE", "다시 보내 주세요.") is True  # the dead-letter sink

    # the slow try goes on: every write is refused
    assert jobs.token(job_id, "헹궈서 ", 2) is None
    assert jobs.stage(job_id, "answer", "completed") is None
    assert jobs.append(job_id, "done", DONE) is None
    assert jobs.streaming(job_id) is False

    events = [e.event for e in jobs.entries(job_id)]
    assert events == ["queued", "answer", "token", "error"]
    job = jobs.get(job_id)
    assert job is not None and job.status == "failed"
    assert jobs.fail_unfinished(job_id, "ANSWER_UNAVAILABLE", "again") is False  # ended once


def test_done_ends_the_job_as_completed_and_the_sink_leaves_it(jobs: ChatJobs) -> None:
    job_id = new_job(jobs)
    done_id = jobs.append(job_id, "done", DONE)
    assert done_id is not None
    job = jobs.get(job_id)
    assert job is not None and job.status == "completed"
    assert jobs.fail_unfinished(job_id, "ANSWER_UNAVAILABLE", "late") is False
    assert jobs.append(job_id, "done", DONE) is None  # a replay writes no second `done`
    entries = jobs.entries(job_id)
    assert [e.event for e in entries] == ["queued", "done"] and entries[-1].id == done_id
    assert jobs.redis.ttl(stream_key(job_id)) > 0


def test_a_job_that_is_gone_gets_nothing_written(jobs: ChatJobs) -> None:
    job_id = uuid.uuid4().hex  # expired, or never created
    assert jobs.token(job_id, "x", 1) is None
    assert jobs.append(job_id, "error", {"error": "E", "message": "m"}) is None
    assert jobs.fail_unfinished(job_id, "E", "m") is False
    assert jobs.redis.exists(stream_key(job_id)) == 0


def test_done_and_error_racing_end_each_job_once(jobs: ChatJobs) -> None:
    """A worker's `done` and the dead-letter sink's `error` at the same moment, on 30 jobs: each
    job's stream ends with exactly one of them, and its status is the one that event set."""
    ids = [new_job(jobs) for _ in range(30)]
    go = threading.Barrier(2)
    won: dict[str, list[str]] = {"done": [], "error": []}

    def finish() -> None:
        go.wait()
        won["done"].extend(j for j in ids if jobs.append(j, "done", DONE) is not None)

    def fail() -> None:
        go.wait()
        won["error"].extend(j for j in ids if jobs.fail_unfinished(j, "ANSWER_UNAVAILABLE", "m"))

    threads = [threading.Thread(target=finish), threading.Thread(target=fail)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(won["done"] + won["error"]) == sorted(ids)  # one winner per job
    for job_id in ids:
        terminal = [e.event for e in jobs.entries(job_id) if e.event in ("done", "error")]
        job = jobs.get(job_id)
        assert job is not None
        assert len(terminal) == 1
        assert job.status == ("completed" if terminal == ["done"] else "failed")
