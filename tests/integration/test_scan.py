"""scan and scan-worker on real Redis with a local OpenAI-compatible server over real HTTP.

scan publishes to a stand-in broker ingress (K_SINK, binary mode, as in the cluster); the test
hands the captured CloudEvent to scan-worker exactly as a Trigger would. A scan accepts only a photo
the user uploaded and confirmed: most tests record the confirmation as the images function does
(functions/common/uploads.py, in the real Redis); one runs the images function on the S3 test server.
Models come from the allow-lists (functions/common/llmmodels.py): scan refuses others, the worker
never sends others.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from eco2.serving.testing import FunctionClient
from eventing.catalogue import SCAN_COMPLETED, SCAN_FAILED, SCAN_REQUESTED
from functions.common.uploads import ConfirmedUpload, ConfirmedUploads
from tests.support.llm_server import LLMServer
from tests.support.s3_server import S3Server, s3_server_fixture  # noqa: F401  (registers the s3_server fixture)
from tests.support.sink import EventSink

IMAGE_BASE = "http://127.0.0.1:9/eco2-images"  # SCAN_IMAGE_HOSTS=127.0.0.1:9 below


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


@pytest.fixture
def scan(function_client: Callable[..., FunctionClient], sink: EventSink) -> FunctionClient:
    return function_client("scan", K_SINK=sink.url, SCAN_IMAGE_HOSTS="127.0.0.1:9")


@pytest.fixture
def worker(function_client: Callable[..., FunctionClient], llm: LLMServer) -> FunctionClient:
    llm.reset()
    return function_client(
        "scan-worker",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=llm.base_url,
        LLM_TIMEOUT="1",
        LLM_MAX_ATTEMPTS="3",
        LLM_BACKOFF="0.05",
    )


def token(client: FunctionClient, user: str | None = None) -> tuple[str, dict[str, str]]:
    user = user or str(uuid.uuid4())
    return user, {"Authorization": f"Bearer {client.runtime.clients.tokens.issue(user, 'access', 'kakao').token}"}


def upload(scan: FunctionClient, user: str, channel: str = "scan") -> str:
    """A photo `user` uploaded and confirmed, recorded as the images function records it; its URL."""
    key = f"{channel}/{uuid.uuid4().hex}.jpg"
    url = f"{IMAGE_BASE}/{key}"
    ConfirmedUploads(scan.runtime.clients.redis).record(
        ConfirmedUpload(key, user, channel, "image/jpeg", 1234, url, "2026-01-01T00:00:00+00:00")
    )
    return url


def user_of(scan: FunctionClient, headers: dict[str, str]) -> str:
    return scan.runtime.clients.tokens.verify(headers["Authorization"].removeprefix("Bearer "), "access").sub


def submit(scan: FunctionClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """Submit a scan; without an image_url, of a fresh photo the caller uploaded."""
    if "image_url" not in body:
        body["image_url"] = upload(scan, user_of(scan, headers))
    response = scan.post("/api/v1/scan", json=body, headers=headers)
    assert response.status_code == 202, response.json
    return response.json  # type: ignore[no-any-return]


def deliver(worker: FunctionClient, sink: EventSink, job_id: str) -> Any:
    [event] = [e for e in sink.of_type(SCAN_REQUESTED) if e["data"]["job_id"] == job_id]
    a = event["attributes"]
    return worker.cloudevent(a["type"], event["data"], source=a["source"], event_id=a["id"])


def sse(scan: FunctionClient, job_id: str, headers: dict[str, str], last_id: str | None = None) -> list[dict[str, Any]]:
    h = dict(headers)
    if last_id:
        h["Last-Event-ID"] = last_id
    response = scan.get(f"/api/v1/scan/{job_id}/events", headers=h, buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    out = []
    for frame in response.get_data(as_text=True).split("\n\n"):
        fields: dict[str, str] = {}
        for line in frame.splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields:
            out.append(
                {
                    "id": fields.get("id"),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]) if "data" in fields else None,
                }
            )
    return out


def test_submit_shape_and_published_event(scan: FunctionClient, sink: EventSink) -> None:
    user, headers = token(scan)
    image = upload(scan, user)
    body = submit(scan, headers, image_url=image, user_input="생수병이에요")
    job = body["job_id"]
    assert body == {
        "job_id": job,
        "stream_url": f"/api/v1/scan/{job}/events",
        "result_url": f"/api/v1/scan/{job}/result",
        "status": "queued",
    }
    [event] = sink.of_type(SCAN_REQUESTED)
    assert event["data"] == {
        "job_id": job,
        "user_id": user,
        "image_url": image,
        "user_input": "생수병이에요",
        "model": None,
    }
    assert event["attributes"]["source"] == "/eco2/scan" and event["attributes"]["subject"] == job
    pending = scan.get(f"/api/v1/scan/{job}/result", headers=headers)
    assert pending.status_code == 202 and pending.headers["Retry-After"]
    assert pending.json == {"status": "processing", "current_stage": "queued", "progress": 0}


def test_idempotency_key_returns_the_same_job(scan: FunctionClient, sink: EventSink) -> None:
    _, headers = token(scan)
    first = submit(scan, {**headers, "X-Idempotency-Key": "k-1"})
    again = submit(scan, {**headers, "X-Idempotency-Key": "k-1"})
    other = submit(scan, {**headers, "X-Idempotency-Key": "k-2"})
    assert first["job_id"] == again["job_id"] != other["job_id"]
    assert len(sink.of_type(SCAN_REQUESTED)) == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/x.jpg",
        "file:///etc/passwd",
        "ftp://127.0.0.1:9/x",
        "http://user:pw@127.0.0.1:9/x.jpg",
        "not a url",
        "http://127.0.0.1:10/x.jpg",
    ],
)
def test_image_url_outside_the_image_hosts_is_refused(scan: FunctionClient, sink: EventSink, url: str) -> None:
    _, headers = token(scan)
    response = scan.post("/api/v1/scan", json={"image_url": url}, headers=headers)
    assert response.status_code == 400 and response.json["code"] in ("INVALID_IMAGE_URL", "IMAGE_HOST_NOT_ALLOWED")
    assert sink.events == []


# -- only photos this user uploaded and confirmed (issue 19, item 7) ----------------------------------


@pytest.mark.parametrize(
    "case",
    ["never uploaded", "another user's", "another path to it", "another host", "a query", "CR/LF", "encoded", "spaces"],
)
def test_only_this_users_confirmed_photos_are_scanned(scan: FunctionClient, sink: EventSink, case: str) -> None:
    user, headers = token(scan)
    mine = upload(scan, user)
    theirs = upload(scan, str(uuid.uuid4()))
    key = mine.removeprefix(IMAGE_BASE + "/")
    url, status, code = {
        "never uploaded": (f"{IMAGE_BASE}/scan/{uuid.uuid4().hex}.jpg", 422, "IMAGE_NOT_UPLOADED"),
        "another user's": (theirs, 422, "IMAGE_NOT_UPLOADED"),
        "another path to it": (f"http://127.0.0.1:9/other-bucket/{key}", 422, "IMAGE_NOT_UPLOADED"),
        "another host": (f"http://127.0.0.1:10/eco2-images/{key}", 400, "IMAGE_HOST_NOT_ALLOWED"),
        "a query": (mine + "?versionId=1", 400, "INVALID_IMAGE_URL"),
        "CR/LF": (mine[:-4] + "\r\nX-Injected: 1\r\n.jpg", 400, "INVALID_IMAGE_URL"),
        "encoded": (mine.replace("/scan/", "/scan%2F"), 422, "IMAGE_NOT_UPLOADED"),
        "spaces": (mine + " ", 400, "INVALID_IMAGE_URL"),
    }[case]
    response = scan.post("/api/v1/scan", json={"image_url": url, "user_input": "생수병"}, headers=headers)
    assert response.status_code == status, response.json
    assert set(response.json) == {"detail", "code"} and response.json["code"] == code
    assert sink.events == []  # nothing was queued
    assert submit(scan, headers, image_url=mine)["status"] == "queued"  # the user's own photo is fine


def test_upload_then_confirm_then_scan_through_the_images_function(
    function_client: Callable[..., FunctionClient], sink: EventSink, s3_server: S3Server
) -> None:
    """The real flow on the S3 test server: a pending (unconfirmed) upload is refused, the confirmed
    one is accepted, and another user cannot scan it."""
    images = function_client("images", **s3_server.env(), IMAGES_SWEEP_INTERVAL="0")
    scan = function_client("scan", **s3_server.env(), K_SINK=sink.url)
    user, headers = token(scan)
    _, stranger = token(scan)
    ticket = images.post(
        "/api/v1/images/scan", json={"filename": "bottle.png", "content_type": "image/png"}, headers=headers
    ).json
    png = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64
    assert requests.put(ticket["upload_url"], data=png, headers=ticket["required_headers"], timeout=10).ok

    body = {"image_url": ticket["cdn_url"], "user_input": "생수병"}
    response = scan.post("/api/v1/scan", json=body, headers=headers)
    assert response.status_code == 422 and response.json["code"] == "IMAGE_NOT_UPLOADED"  # not confirmed yet

    confirmed = images.post("/api/v1/images/scan/callback", json={"key": ticket["key"]}, headers=headers)
    assert confirmed.status_code == 200 and confirmed.json["cdn_url"] == ticket["cdn_url"]
    response = scan.post("/api/v1/scan", json=body, headers=headers)
    assert response.status_code == 202, response.json
    [event] = sink.of_type(SCAN_REQUESTED)
    assert event["data"]["image_url"] == ticket["cdn_url"] and event["data"]["user_id"] == user

    response = scan.post("/api/v1/scan", json=body, headers=stranger)
    assert response.status_code == 422 and response.json["code"] == "IMAGE_NOT_UPLOADED"
    assert len(sink.of_type(SCAN_REQUESTED)) == 1


def test_a_submit_body_over_its_bound_is_413(scan: FunctionClient, sink: EventSink) -> None:
    user, headers = token(scan)
    body = json.dumps({"image_url": upload(scan, user), "user_input": "가" * 6000})  # 18 KB
    response = scan.post("/api/v1/scan", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 413 and response.json["code"] == "PAYLOAD_TOO_LARGE"
    assert sink.events == []


# -- models from the allow-lists (issue 19, item 2) --------------------------------------------------


@pytest.mark.parametrize("model", ["o1-pro", "../../v1/files", "gpt-4o-mini\r\n", "", "GPT-4O-MINI"])
def test_a_model_outside_the_allow_list_is_422(
    function_client: Callable[..., FunctionClient], sink: EventSink, model: str
) -> None:
    scan = function_client(
        "scan",
        K_SINK=sink.url,
        SCAN_IMAGE_HOSTS="127.0.0.1:9",
        LLM_VISION_MODELS="gpt-4o",
        OPENAI_API_KEY="sk-secret-do-not-show",
        OPENAI_BASE_URL="http://10.0.0.7/v1",
    )
    user, headers = token(scan)
    response = scan.post("/api/v1/scan", json={"image_url": upload(scan, user), "model": model}, headers=headers)
    assert response.status_code == 422, response.json
    assert set(response.json) == {"detail", "code"} and response.json["code"] == "MODEL_NOT_ALLOWED"
    detail = response.json["detail"]
    assert detail.startswith("model:") and "gpt-4o-mini, gpt-4o" in detail
    assert "sk-secret" not in detail and "10.0.0.7" not in detail and "files" not in detail
    assert sink.events == []


def test_an_allowed_model_is_used_where_it_is_allowed_and_an_unlisted_one_never_sent(
    function_client: Callable[..., FunctionClient], sink: EventSink, llm: LLMServer
) -> None:
    allow = {"LLM_VISION_MODELS": "gpt-4o, gpt-4.1-mini", "LLM_ANSWER_MODELS": "gpt-4.1-mini"}
    scan = function_client("scan", K_SINK=sink.url, SCAN_IMAGE_HOSTS="127.0.0.1:9", **allow)
    llm.reset()
    worker = function_client(
        "scan-worker", OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=llm.base_url, LLM_TIMEOUT="2", **allow
    )
    _, headers = token(scan)

    job = submit(scan, headers, model="gpt-4o")["job_id"]  # a vision model only
    assert deliver(worker, sink, job).status_code == 200
    assert [(r["kind"], r["body"]["model"]) for r in llm.requests] == [("vision", "gpt-4o"), ("answer", "gpt-4o-mini")]

    llm.reset()
    job = submit(scan, headers, model="gpt-4.1-mini")["job_id"]  # allowed for both
    deliver(worker, sink, job)
    assert [r["body"]["model"] for r in llm.requests] == ["gpt-4.1-mini", "gpt-4.1-mini"]

    # an event scan would never have sent (forged, or from before the list changed): the defaults
    llm.reset()
    for forged in ("o1-pro", "../../v1/files"):
        job_id = uuid.uuid4().hex
        from functions.common.scanjobs import JobStore

        JobStore(worker.runtime.clients.redis).create(job_id, str(uuid.uuid4()))
        data = {"job_id": job_id, "user_id": str(uuid.uuid4()), "image_url": f"{IMAGE_BASE}/x.jpg", "model": forged}
        assert worker.cloudevent(SCAN_REQUESTED, data, source="/eco2/scan").status_code == 200
    assert {r["body"]["model"] for r in llm.requests} == {"gpt-4o-mini"} and len(llm.requests) == 4


def test_a_bad_allow_list_stops_the_function_before_it_serves(
    function_client: Callable[..., FunctionClient], sink: EventSink
) -> None:
    from eco2.core.settings import SettingsError

    with pytest.raises(SettingsError) as problem:
        function_client("scan-worker", LLM_VISION_MODELS="gpt-4o,../../v1/files")
    assert "LLM_VISION_MODELS" in str(problem.value)


def test_full_pipeline_with_reward(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    user, headers = token(scan)
    image = upload(scan, user)
    job = submit(scan, headers, image_url=image)["job_id"]
    reply = deliver(worker, sink, job)
    assert reply.status_code == 200 and reply.headers["ce-type"] == SCAN_COMPLETED
    assert json.loads(reply.data)["reward_character_code"] == "char-petty"
    result = scan.get(f"/api/v1/scan/{job}/result", headers=headers)
    assert result.status_code == 200
    body = result.json
    assert body["task_id"] == job and body["status"] == "completed" and body["error"] is None
    cls = body["pipeline_result"]["classification_result"]["classification"]
    assert cls == {"major_category": "재활용폐기물", "middle_category": "무색페트병", "minor_category": "생수병"}
    assert body["pipeline_result"]["disposal_rules"]["category"] == "재활용폐기물"
    answer = body["pipeline_result"]["final_answer"]
    assert list(answer["disposal_steps"]) == ["단계1", "단계2", "단계3"] and answer["insufficiencies"] == []
    assert body["reward"]["name"] == "페티" and {"name", "dialog", "match_reason", "type"} <= set(body["reward"])
    vision_call = next(r for r in llm.requests if r["kind"] == "vision")
    image_part = vision_call["body"]["messages"][1]["content"][1]
    assert image_part == {"type": "image_url", "image_url": {"url": image, "detail": "low"}}
    assert vision_call["body"]["model"] == "gpt-4o-mini"  # no model asked: the defaults
    assert next(r for r in llm.requests if r["kind"] == "answer")["body"]["model"] == "gpt-4o-mini"
    assert vision_call["body"]["response_format"]["json_schema"]["strict"] is True
    events = sse(scan, job, headers)
    assert events[0]["event"] == "queued" and events[-1]["event"] == "done"
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["id"] for e in events)
    assert events[-1]["data"]["result"]["reward"]["name"] == "페티"
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    assert {e["event"] for e in events} == {"queued", "vision", "rule", "answer", "reward", "done"}
    from functions.common.scanjobs import JobStore

    stored = JobStore(scan.runtime.clients.redis).get(job)  # the job itself ends where its stream does
    assert stored is not None and (stored.status, stored.current_stage, stored.progress) == ("completed", "done", 100)


def test_contents_left_means_no_reward(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.classification = {**llm.script.classification, "situation_tags": ["내용물_있음"]}
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    deliver(worker, sink, job)
    body = scan.get(f"/api/v1/scan/{job}/result", headers=headers).json
    assert body["reward"] is None and "reward" in body
    assert body["pipeline_result"]["final_answer"]["insufficiencies"]


def test_non_recyclable_means_no_reward(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.classification = {
        "major_category": "일반종량제폐기물",
        "middle_category": "일반종량제폐기물",
        "minor_category": "휴지",
        "situation_tags": [],
    }
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    reply = deliver(worker, sink, job)
    assert json.loads(reply.data)["reward_character_code"] is None
    assert scan.get(f"/api/v1/scan/{job}/result", headers=headers).json["reward"] is None


def test_garbage_and_off_taxonomy_answers_fall_back(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, headers = token(scan)
    llm.script.vision_raw = "I think it's a bottle!"
    job = submit(scan, headers)["job_id"]
    assert deliver(worker, sink, job).status_code == 200
    body = scan.get(f"/api/v1/scan/{job}/result", headers=headers).json
    assert body["status"] == "completed" and body["reward"] is None
    assert body["pipeline_result"]["classification_result"]["classification"]["major_category"] == "미분류"
    llm.reset(
        classification={
            "major_category": "재활용폐기물",
            "middle_category": "우주쓰레기",
            "minor_category": "위성",
            "situation_tags": ["없는_태그"],
        }
    )
    job = submit(scan, headers)["job_id"]
    deliver(worker, sink, job)
    body = scan.get(f"/api/v1/scan/{job}/result", headers=headers).json
    assert body["pipeline_result"]["classification_result"]["classification"]["middle_category"] == "미분류"
    assert body["pipeline_result"]["classification_result"]["situation_tags"] == []
    assert body["reward"] is None


def test_transient_5xx_is_retried(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.vision_failures = 2
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    deliver(worker, sink, job)
    assert llm.calls("vision") == 3
    assert scan.get(f"/api/v1/scan/{job}/result", headers=headers).json["status"] == "completed"


def test_llm_timeout_ends_the_job_failed_and_the_stream_still_ends(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.vision_delay = 2.0  # the worker waits 1 s per try, 3 tries
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    started = time.monotonic()
    reply = deliver(worker, sink, job)
    assert time.monotonic() - started < 10
    assert reply.status_code == 200 and reply.headers["ce-type"] == SCAN_FAILED
    body = scan.get(f"/api/v1/scan/{job}/result", headers=headers).json
    assert body["status"] == "failed" and body["reward"] is None and "시도" in body["error"]
    events = sse(scan, job, headers)
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "failed"
    assert any(e["event"] == "vision" and e["data"]["status"] == "failed" for e in events)
    from functions.common.scanjobs import JobStore

    stored = JobStore(scan.runtime.clients.redis).get(job)
    assert stored is not None and (stored.status, stored.current_stage) == ("failed", "done")


def test_redelivery_does_not_rerun_the_pipeline(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    first = deliver(worker, sink, job)
    second = deliver(worker, sink, job)  # the same event again (at-least-once)
    assert first.headers["ce-id"] == second.headers["ce-id"] == f"{job}-completed"
    assert llm.calls("vision") == 1


def test_reconnect_with_last_event_id_loses_and_repeats_nothing(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink
) -> None:
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    deliver(worker, sink, job)
    everything = sse(scan, job, headers)
    cut = 3
    resumed = sse(scan, job, headers, last_id=everything[cut - 1]["id"])
    assert everything[:cut] + resumed == everything


def test_stream_follows_a_running_job_live(
    scan: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.vision_delay = 0.3
    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    thread = threading.Thread(target=deliver, args=(worker, sink, job))
    thread.start()
    events = sse(scan, job, headers)  # opened before the worker finished: follows it to `done`
    thread.join()
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "completed"


def test_other_users_job_is_404(scan: FunctionClient, sink: EventSink) -> None:
    _, mine = token(scan)
    _, theirs = token(scan)
    job = submit(scan, mine)["job_id"]
    for path in (f"/api/v1/scan/{job}/result", f"/api/v1/scan/{job}/events"):
        response = scan.get(path, headers=theirs)
        assert response.status_code == 404 and response.json["code"] == "SCAN_NOT_FOUND"
    assert scan.get(f"/api/v1/scan/{uuid.uuid4().hex}/result", headers=mine).status_code == 404
    assert scan.get(f"/api/v1/scan/{job}/result").status_code == 401


def test_categories(scan: FunctionClient) -> None:
    body = scan.get("/api/v1/scan/categories").json
    majors = {c["major"] for c in body}
    assert "재활용폐기물" in majors and all(c["summary"] for c in body)


def test_offline_classifier_says_so(
    scan: FunctionClient, function_client: Callable[..., FunctionClient], sink: EventSink
) -> None:
    offline = function_client("scan-worker")  # no OPENAI_API_KEY
    _, headers = token(scan)
    job = submit(scan, headers, user_input="다 마신 생수병이에요, 라벨도 뗐어요")["job_id"]
    deliver(offline, sink, job)
    body = scan.get(f"/api/v1/scan/{job}/result", headers=headers).json
    assert body["pipeline_result"]["classifier"] == "offline"
    assert "오프라인" in body["message"]
    assert body["pipeline_result"]["classification_result"]["classification"]["middle_category"] == "무색페트병"


def test_stream_sends_keepalives_while_nothing_happens(scan: FunctionClient, sink: EventSink, redis_url: str) -> None:
    """With no new event within the keepalive interval the stream says it is alive, and it stops
    at its time limit (here driven by a fake clock) instead of hanging."""
    import redis

    from functions.common.scanjobs import JobStore
    from functions.scan import service

    _, headers = token(scan)
    job = submit(scan, headers)["job_id"]
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    ticks = iter([0.0, 0.0, 1.0, service.STREAM_LIMIT_SECONDS + 1])
    original = service.KEEPALIVE_SECONDS
    service.KEEPALIVE_SECONDS = 1
    try:
        frames = [f.decode() for f in service.sse_events(store, job, None, lambda: next(ticks))]
    finally:
        service.KEEPALIVE_SECONDS = original
    assert frames[0].startswith("retry:")
    assert frames[1].startswith("id: ") and "event: queued" in frames[1]
    assert frames[2].startswith("event: keepalive")
    assert len(frames) == 3  # the limit ended the stream; the browser reconnects with Last-Event-ID
