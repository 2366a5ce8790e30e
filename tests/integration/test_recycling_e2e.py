"""The app's real sequence through `eco2 dev`, on real PostgreSQL, Redis, RabbitMQ, a local S3
server (moto, over HTTP) and a local OpenAI-compatible server answering through the openai client:

sign in -> POST /images/scan -> PUT the bytes -> POST /scan -> SSE to done -> GET result ->
GET /users/me/characters has the character. Then a scan that must not be rewarded -> reward null.
And the refusals on the same path: a photo never uploaded (with a convincing description), an
unconfirmed upload, a model outside the allow-list, an upload over the size limit.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.test_eco2_dev import ORIGIN, RABBIT, sign_in, start_dev, stop
from tests.support.llm_server import LLMServer

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 32


@pytest.fixture
def moto() -> Iterator[str]:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


@pytest.fixture
def dev(clean_db: str, redis_url: str, moto: str, llm: LLMServer, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": f"e2e{uuid.uuid4().hex[:6]}",
        "ALLOWED_ORIGINS": ORIGIN,
        "S3_ENDPOINT_URL": moto,
        "S3_BUCKET": "eco2-e2e",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": llm.base_url,
        "LLM_TIMEOUT": "5",
        "IMAGES_MAX_BYTES": "4096",
    }
    import boto3

    boto3.client(
        "s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).create_bucket(Bucket="eco2-e2e")
    proc, base = start_dev(env, tmp_path)
    yield base
    stop(proc)


def read_sse(session: requests.Session, url: str) -> list[dict[str, Any]]:
    events = []
    with session.get(url, stream=True, timeout=60, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        frame: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if line == "":
                if "event" in frame:
                    events.append({"id": frame.get("id"), "event": frame["event"], "data": json.loads(frame["data"])})
                    if frame["event"] == "done":
                        break
                frame = {}
                continue
            key, _, value = line.partition(": ")
            frame[key] = value
    return events


def scan_photo(session: requests.Session, base: str, user_input: str) -> dict[str, Any]:
    upload = session.post(
        f"{base}/api/v1/images/scan", json={"filename": "bottle.png", "content_type": "image/png"}, timeout=10
    )
    assert upload.status_code in (200, 201), upload.text
    target = upload.json()
    put = requests.put(target["upload_url"], data=PNG, headers=target["required_headers"], timeout=10)
    assert put.status_code in (200, 204), put.text
    confirm = session.post(f"{base}/api/v1/images/scan/callback", json={"key": target["key"]}, timeout=10)
    assert confirm.status_code == 200, confirm.text
    submitted = session.post(
        f"{base}/api/v1/scan", json={"image_url": target["cdn_url"], "user_input": user_input}, timeout=10
    )
    assert submitted.status_code in (200, 202), submitted.text
    body = submitted.json()
    job = body["result_url"].split("/")[-2]
    assert job == body["job_id"]
    events = read_sse(session, base + body["stream_url"])
    assert events[-1]["event"] == "done"
    result = session.get(base + body["result_url"], timeout=10)
    assert result.status_code == 200
    return result.json()


def test_photo_to_reward_through_eco2_dev(dev: str, llm: LLMServer) -> None:
    base = dev
    session = sign_in(base, nickname="recycler")
    result = scan_photo(session, base, "생수병이에요")
    assert result["status"] == "completed" and result["error"] is None
    final = result["pipeline_result"]["final_answer"]
    assert final["disposal_steps"]["단계1"] and final["insufficiencies"] == [] and final["user_answer"]
    assert result["pipeline_result"]["classification_result"]["classification"]["middle_category"] == "무색페트병"
    assert result["reward"]["name"] == "페티"
    assert llm.calls("vision") == 1 and llm.calls("answer") == 1
    # scan.completed -> character grants -> character.granted -> users: "my characters" has it
    names: list[str] = []
    deadline = time.monotonic() + 15
    while "페티" not in names and time.monotonic() < deadline:
        names = [c["name"] for c in session.get(f"{base}/api/v1/users/me/characters", timeout=10).json()]
        time.sleep(0.1)
    assert "페티" in names

    # contents left in a recyclable: no reward, and explicitly null
    llm.script.classification = {**llm.script.classification, "situation_tags": ["내용물_있음"]}
    second = scan_photo(session, base, "반쯤 남은 생수병")
    assert second["reward"] is None and second["pipeline_result"]["final_answer"]["insufficiencies"]
    # non-recyclable: no reward
    llm.script.classification = {
        "major_category": "일반종량제폐기물",
        "middle_category": "일반종량제폐기물",
        "minor_category": "휴지",
        "situation_tags": [],
    }
    third = scan_photo(session, base, "휴지")
    assert third["reward"] is None


def test_refusals_through_eco2_dev(dev: str, llm: LLMServer, moto: str) -> None:
    base = dev
    session = sign_in(base, nickname="prober")
    # a photo never uploaded, with a description that would have earned 페티 offline
    never = f"{moto}/eco2-e2e/scan/{uuid.uuid4().hex}.png"
    response = session.post(f"{base}/api/v1/scan", json={"image_url": never, "user_input": "생수병"}, timeout=10)
    assert response.status_code == 422 and response.json()["code"] == "IMAGE_NOT_UPLOADED"

    # uploaded but not confirmed
    target = session.post(
        f"{base}/api/v1/images/scan", json={"filename": "a.png", "content_type": "image/png"}, timeout=10
    ).json()
    assert requests.put(target["upload_url"], data=PNG, headers=target["required_headers"], timeout=10).ok
    response = session.post(f"{base}/api/v1/scan", json={"image_url": target["cdn_url"]}, timeout=10)
    assert response.status_code == 422 and response.json()["code"] == "IMAGE_NOT_UPLOADED"

    # confirmed, but a model nobody allowed
    assert session.post(f"{base}/api/v1/images/scan/callback", json={"key": target["key"]}, timeout=10).ok
    response = session.post(f"{base}/api/v1/scan", json={"image_url": target["cdn_url"], "model": "o1-pro"}, timeout=10)
    assert response.status_code == 422 and response.json()["code"] == "MODEL_NOT_ALLOWED"
    assert llm.requests == []  # nothing reached the model

    # over IMAGES_MAX_BYTES: refused at presign when declared, deleted at the callback when not
    declared = {"filename": "big.png", "content_type": "image/png", "size": 5000}
    response = session.post(f"{base}/api/v1/images/scan", json=declared, timeout=10)
    assert response.status_code == 413 and response.json()["code"] == "IMAGE_TOO_LARGE"
    big = session.post(
        f"{base}/api/v1/images/scan", json={"filename": "big.png", "content_type": "image/png"}, timeout=10
    ).json()
    assert requests.put(big["upload_url"], data=PNG + b"\x00" * 5000, headers=big["required_headers"], timeout=10).ok
    response = session.post(f"{base}/api/v1/images/scan/callback", json={"key": big["key"]}, timeout=10)
    assert response.status_code == 413 and set(response.json()) == {"detail", "code"}
    assert "deleted" in response.json()["detail"]
    assert requests.get(big["upload_url"].split("?")[0], timeout=10).status_code in (403, 404)
