"""The web app's agent page through `eco2 dev` (a real process), on real PostgreSQL, Redis and
RabbitMQ (the local broker delivers chat.message.requested to chat-worker), with the local
OpenAI-compatible server streaming and the location function answering through the gateway:

sign in -> GET /chat?limit=1 -> POST /chat (no body) -> POST /chat/{id}/messages -> SSE to done
(tokens arrive one by one) -> GET /chat/{id}?limit=5 reads the answer as the last element, and
again after a "reload" (a new connection, the same cookies).
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

TOKENS = ["우유팩은 ", "물로 ", "헹군 ", "뒤 ", "말려서 ", "종이팩 ", "수거함에 ", "넣어 ", "주세요!"]


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    server.reset(chat_tokens=list(TOKENS), token_interval=0.05)
    yield server
    server.close()


@pytest.fixture
def points(clean_db: str) -> list[dict[str, Any]]:
    """The collection points the migration loads (the per-test cleanup emptied the table)."""
    from sqlalchemy import create_engine

    from eco2.core.db import normalise_url
    from functions.location.load import load_points, read_points

    engine = create_engine(normalise_url(clean_db))
    with engine.begin() as connection:
        load_points(connection)
    engine.dispose()
    return read_points()


@pytest.fixture
def dev(clean_db: str, redis_url: str, llm: LLMServer, points: list[dict[str, Any]], tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "RABBITMQ_URL": RABBIT,
        "ECO2_BROKER": f"chat{uuid.uuid4().hex[:6]}",
        "ALLOWED_ORIGINS": ORIGIN,
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": llm.base_url,
        "LLM_TIMEOUT": "5",
    }
    env.pop("LOCATION_URL", None)  # eco2 dev: the location function through the gateway
    proc, base = start_dev(env, tmp_path)
    yield base
    stop(proc)


def stream(session: requests.Session, url: str) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, event) for every event until `done` or `error`."""
    out: list[tuple[float, dict[str, Any]]] = []
    with session.get(url, stream=True, timeout=60, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if line:
                key, _, value = line.partition(": ")
                frame[key] = value
                continue
            if "event" in frame:
                out.append(
                    (
                        time.monotonic(),
                        {"id": frame.get("id"), "event": frame["event"], "data": json.loads(frame["data"])},
                    )
                )
                if frame["event"] in ("done", "error"):
                    break
            frame = {}
    return out


def test_agent_page_through_eco2_dev(dev: str, llm: LLMServer, points: list[dict[str, Any]]) -> None:
    base = dev
    here = {"latitude": float(points[0]["latitude"]), "longitude": float(points[0]["longitude"])}
    session = sign_in(base, nickname="이코친구")
    empty = session.get(f"{base}/api/v1/chat", params={"limit": 1}, timeout=10)
    assert empty.status_code == 200 and empty.json() == {"chats": [], "next_cursor": None}
    created = session.post(f"{base}/api/v1/chat", timeout=10)
    assert created.status_code == 201, created.text
    chat_id = created.json()["id"]
    nearby = session.get(
        f"{base}/api/v1/locations/centers",
        params={"lat": here["latitude"], "lon": here["longitude"], "radius": 3000},
        timeout=10,
    )
    assert nearby.status_code == 200 and nearby.json(), nearby.text
    submitted = session.post(
        f"{base}/api/v1/chat/{chat_id}/messages",
        json={"message": "다 마신 우유팩, 근처 어디에 버리면 돼?", "user_location": here},
        timeout=10,
    )
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "submitted" and body["stream_url"] == f"/api/v1/chat/{body['job_id']}/events"

    events = stream(session, base + body["stream_url"])
    names = [e["event"] for _, e in events]
    assert names[0] == "token_recovery" and names[-1] == "done", names
    tokens = [(t, e) for t, e in events if e["event"] == "token"]
    first = events[0][1]["data"]
    assert first["accumulated"] + "".join(e["data"]["content"] for _, e in tokens) == "".join(TOKENS)
    assert len(tokens) >= 3 and tokens[-1][0] - tokens[0][0] > 0.05  # streamed, not delivered at once
    done = events[-1][1]["data"]
    assert done["status"] == "completed" and done["result"]["answer"] == "".join(TOKENS)
    assert done["result"]["persistence"]["conversation_id"] == chat_id

    [prompt] = llm.prompts("chat")
    from functions.common import recycling

    rules = recycling.rules_for("재활용폐기물", "종이팩")
    assert rules is not None and rules.common_steps[0] in prompt
    assert nearby.json()[0]["name"] in prompt  # the location function's nearest point, through the gateway

    for _reload in range(2):  # the page polls limit=5 and reads the last element as the newest
        fresh = requests.Session()
        fresh.cookies.update(session.cookies)
        page = fresh.get(f"{base}/api/v1/chat/{chat_id}", params={"limit": 5}, timeout=10)
        assert page.status_code == 200, page.text
        messages = page.json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[-1]["content"] == "".join(TOKENS)
        assert messages[-1]["id"] == done["result"]["persistence"]["assistant_message"]
    listed = session.get(f"{base}/api/v1/chat", params={"limit": 1}, timeout=10).json()["chats"][0]
    assert listed["id"] == chat_id and listed["message_count"] == 2 and listed["title"] == "우유팩 분리배출"
