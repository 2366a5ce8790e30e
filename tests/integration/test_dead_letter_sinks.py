"""Requests a worker never takes: the broker gives up and hands them to the function that accepted
them (the Trigger's deadLetterSink in func.yaml), which fails the job, so the app stops waiting.
scan-worker's scan requests go to scan, chat-worker's messages to chat.

Real RabbitMQ (the local broker, this repository's func.yaml Triggers with their retries
shortened), real Redis, and the real scan and chat functions over HTTP as the sinks (scan also for
the submit). The worker is a stand-in answering 503 to every delivery: a pod that crashes on it.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
import redis as redis_lib
import requests

from eco2.core import funcyaml
from eco2.events.amqp import Names
from eco2.events.message import make_message
from eventing.catalogue import CHAT_REQUESTED, SCAN_REQUESTED
from eventing.rabbitmq import RabbitBroker
from eventing.triggers import trigger_name, triggers
from functions.chat.service import UNDELIVERED as CHAT_UNDELIVERED
from functions.common.chatjobs import ChatJobs
from functions.common.scanjobs import JobStore
from functions.common.uploads import ConfirmedUpload, ConfirmedUploads
from functions.scan.service import UNDELIVERED
from tests.integration.test_scan_jobs import completed
from tests.support.servers import Served, serve_function
from tests.support.sink import EventSink
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
TRIGGER = trigger_name("scan-worker", {"type": SCAN_REQUESTED})
CHAT_TRIGGER = trigger_name("chat-worker", {"type": CHAT_REQUESTED})
IMAGE_BASE = "http://127.0.0.1:9/eco2-images"


@pytest.fixture
def broker_name() -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    names = Names(name)
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    channel.queue_delete(names.queue(TRIGGER))
    channel.queue_delete(names.queue(CHAT_TRIGGER))
    channel.queue_delete(names.dead_letter)
    channel.exchange_delete(names.exchange)
    connection.close()


@pytest.fixture
def scan(base_env: dict[str, str], broker_name: str) -> Iterator[Served]:
    env = {**base_env, "RABBITMQ_URL": RABBIT, "ECO2_BROKER": broker_name, "SCAN_IMAGE_HOSTS": "127.0.0.1:9"}
    served = serve_function("scan", env, ROOT)
    yield served
    served.close()


@pytest.fixture
def worker() -> Iterator[EventSink]:
    """scan-worker or chat-worker crashing on every delivery (503)."""
    w = EventSink(status=503, body="worker crashed")
    yield w
    w.close()


def start_broker(broker_name: str, worker_url: str, sink_url: str, app: str = "scan") -> RabbitBroker:
    """The repository's Trigger of `<app>-worker` (whose deadLetterSink is `app`), the worker at
    `worker_url` and the sink at `sink_url`, retried once after 50 ms."""
    trigger = TRIGGER if app == "scan" else CHAT_TRIGGER
    urls = {f"{app}-worker": worker_url, app: sink_url}
    [spec] = [t for t in triggers(funcyaml.load(ROOT / "func.yaml"), lambda f: urls.get(f, "")) if t.name == trigger]
    assert spec.delivery.dead_letter_sink == sink_url  # resolved from func.yaml's deadLetterSink
    fast = replace(spec, delivery=replace(spec.delivery, retry=1, backoff_delay=0.05, timeout=5.0))
    broker = RabbitBroker(RABBIT, [fast], broker=broker_name)
    broker.start()
    assert broker.wait_connected(10)
    return broker


def submit(scan: Served, r: redis_lib.Redis) -> tuple[str, dict[str, str]]:
    """A signed-in user's scan of a photo they uploaded and confirmed, over HTTP: (job id, headers)."""
    user = str(uuid.uuid4())
    token = scan.client.runtime.clients.tokens.issue(user, "access", "kakao").token
    key = f"scan/{uuid.uuid4().hex}.jpg"
    ConfirmedUploads(r).record(
        ConfirmedUpload(key, user, "scan", "image/jpeg", 1234, f"{IMAGE_BASE}/{key}", "2026-01-01T00:00:00+00:00")
    )
    headers = {"Authorization": f"Bearer {token}"}
    response = requests.post(
        f"{scan.url}api/v1/scan", json={"image_url": f"{IMAGE_BASE}/{key}"}, headers=headers, timeout=10
    )
    assert response.status_code == 202, response.text
    return response.json()["job_id"], headers


def result(scan: Served, job_id: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{scan.url}api/v1/scan/{job_id}/result", headers=headers, timeout=10)


@pytest.fixture
def r(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url, decode_responses=True)


def test_a_request_the_worker_never_takes_fails_its_job_through_the_sink(
    scan: Served, worker: EventSink, broker_name: str, r: redis_lib.Redis
) -> None:
    broker = start_broker(broker_name, worker.url, scan.url)
    try:
        job_id, headers = submit(scan, r)
        assert wait_for(lambda: result(scan, job_id, headers).status_code == 200), result(scan, job_id, headers).text
        final = result(scan, job_id, headers).json()
        assert final["status"] == "failed" and final["error"] == UNDELIVERED and final["pipeline_result"] is None
        # the stream the app follows ends with done/failed, so an open SSE stream closes
        last = json.loads(r.xrevrange(f"scan:events:{job_id}", count=1)[0][1]["data"])
        assert (last["stage"], last["status"]) == ("done", "failed")
        [dispatcher] = broker.dispatchers
        assert wait_for(lambda: dispatcher.dead_lettered == 1 and not dispatcher._in_flight)
        assert len(worker.events) == 2  # the first try and the one retry
        assert broker.depths()[broker.names.dead_letter] == 0  # the sink took it: nothing left queued
    finally:
        broker.stop()


def test_when_the_sink_refuses_too_the_event_stays_in_the_dead_letter_queue(
    scan: Served, worker: EventSink, broker_name: str, r: redis_lib.Redis
) -> None:
    closed = "http://127.0.0.1:9/"  # nothing listens there
    broker = start_broker(broker_name, worker.url, closed)
    try:
        job_id, headers = submit(scan, r)
        assert wait_for(lambda: broker.depths()[broker.names.dead_letter] == 1), broker.depths()
        [(trigger, letter)] = broker.dead_letters()
        assert trigger == TRIGGER and letter.attributes["knativeerrorcode"] == "503"
        assert letter.attributes["knativeerrordest"] == worker.url
        assert base64.b64decode(letter.attributes["knativeerrordata"]) == b"worker crashed"
        assert json.loads(letter.data)["job_id"] == job_id
        assert result(scan, job_id, headers).status_code == 202  # nobody failed it; the queue has it
    finally:
        broker.stop()


def test_only_a_dead_letter_reaches_the_handler_and_a_finished_job_keeps_its_result(
    scan: Served, r: redis_lib.Redis
) -> None:
    user = str(uuid.uuid4())
    job_id = uuid.uuid4().hex
    store = JobStore(r)
    store.create(job_id, user)
    data = {"job_id": job_id, "user_id": user, "image_url": f"{IMAGE_BASE}/x.jpg", "user_input": None, "model": None}
    plain = scan.client.cloudevent(SCAN_REQUESTED, data, source="/eco2/scan")
    assert plain.status_code == 400 and plain.json["code"] == "NOT_A_DEAD_LETTER"
    assert store.result(job_id) is None

    done = completed(job_id)
    store.progress(job_id).finish(done)  # a retry got through after all
    dead = {"knativeerrordest": "http://scan-worker.eco2.svc.cluster.local", "knativeerrorcode": "503"}
    assert scan.client.cloudevent(SCAN_REQUESTED, data, source="/eco2/scan", extensions=dead).status_code == 200
    assert store.result(job_id) == done  # left as it was
    job = store.get(job_id)
    assert job is not None and job.status == "completed"


def test_a_chat_message_the_worker_never_takes_ends_its_job_with_an_error(
    base_env: dict[str, str], worker: EventSink, broker_name: str, r: redis_lib.Redis
) -> None:
    chat = serve_function("chat", {**base_env, "RABBITMQ_URL": RABBIT, "ECO2_BROKER": broker_name}, ROOT)
    broker = start_broker(broker_name, worker.url, chat.url, app="chat")
    try:
        jobs = ChatJobs(r)
        job_id, user = uuid.uuid4().hex, str(uuid.uuid4())
        jobs.create(job_id, user, str(uuid.uuid4()))
        data = {"job_id": job_id, "user_id": user, "chat_id": str(uuid.uuid4()), "message": "페트병은 어떻게 버려요?"}
        broker.publisher.publish(make_message(CHAT_REQUESTED, data, source="/eco2/chat"))
        assert wait_for(lambda: (job := jobs.get(job_id)) is not None and job.status == "failed")
        last = jobs.entries(job_id)[-1]
        assert last.event == "error" and last.json() == {"error": "ANSWER_UNAVAILABLE", "message": CHAT_UNDELIVERED}
        [dispatcher] = broker.dispatchers
        assert wait_for(lambda: dispatcher.dead_lettered == 1 and not dispatcher._in_flight)
        assert len(worker.events) == 2 and broker.depths()[broker.names.dead_letter] == 0
    finally:
        broker.stop()
        chat.close()
