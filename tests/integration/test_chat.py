"""chat and chat-worker on real PostgreSQL and Redis, with the local OpenAI-compatible server
streaming over real HTTP and a local stand-in for the location function.

chat publishes through its outbox to a stand-in broker ingress (K_SINK, binary mode, as in the
cluster); the test hands the captured CloudEvent to chat-worker exactly as a Trigger would. The
stream is read over real HTTP where timing matters (reconnects in the middle of the tokens).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from eco2.serving.testing import FunctionClient
from eventing.catalogue import CHAT_COMPLETED, CHAT_REQUESTED
from functions.common.chatjobs import ChatJobs
from functions.common.conversations import Conversation, Message
from functions.common.models import User
from tests.support.llm_server import LLMServer
from tests.support.servers import Served, serve_function, serve_wsgi
from tests.support.sink import EventSink

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
IMAGE = "http://127.0.0.1:9/chat/abc.jpg"
ANSWER = [
    "안녕하세요! ",
    "이코예요. ",
    "우유팩은 ",
    "헹궈서 ",
    "말린 ",
    "뒤 ",
    "종이팩 ",
    "수거함에 ",
    "넣어 ",
    "주세요.",
]


class LocationStandIn:
    """GET /api/v1/locations/centers -> a bare array of items (API.md "location"); records queries."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.server, self.thread = serve_wsgi(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.path != "/api/v1/locations/centers":
            return Response("[]", 404, content_type="application/json")(environ, start_response)
        self.queries.append(dict(request.args))
        items = [
            {
                "id": 7,
                "name": "초록상점 망원점",
                "source": "zerowaste",
                "road_address": "서울 마포구 포은로 1",
                "latitude": 37.556,
                "longitude": 126.905,
                "distance_km": 0.35,
                "distance_text": "350m",
                "store_category": "refill_zero",
                "pickup_categories": ["paper"],
            }
        ]
        return Response(json.dumps(items, ensure_ascii=False), 200, content_type="application/json")(
            environ, start_response
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def location() -> Iterator[LocationStandIn]:
    server = LocationStandIn()
    yield server
    server.close()


@pytest.fixture
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


@pytest.fixture
def chat(function_client: Callable[..., FunctionClient], sink: EventSink) -> FunctionClient:
    return function_client("chat", K_SINK=sink.url, CHAT_IMAGE_HOSTS="127.0.0.1:9")


def worker_env(llm: LLMServer, location: LocationStandIn) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": llm.base_url,
        "LLM_TIMEOUT": "2",
        "LLM_MAX_ATTEMPTS": "3",
        "LLM_BACKOFF": "0.05",
        "LOCATION_URL": location.url,
    }


@pytest.fixture
def worker(function_client: Callable[..., FunctionClient], llm: LLMServer, location: LocationStandIn) -> FunctionClient:
    llm.reset(chat_tokens=list(ANSWER))
    return function_client("chat-worker", **worker_env(llm, location))


def new_user(client: FunctionClient) -> tuple[str, dict[str, str]]:
    with client.runtime.clients.db.session() as s:
        user = User(nickname="이코친구", last_login_provider="kakao")
        s.add(user)
        s.commit()
        user_id = str(user.id)
    token = client.runtime.clients.tokens.issue(user_id, "access", "kakao").token
    return user_id, {"Authorization": f"Bearer {token}"}


def new_chat(chat: FunctionClient, headers: dict[str, str], **body: Any) -> str:
    response = (
        chat.post("/api/v1/chat", json=body, headers=headers) if body else chat.post("/api/v1/chat", headers=headers)
    )
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def send(chat: FunctionClient, headers: dict[str, str], chat_id: str, **body: Any) -> dict[str, Any]:
    response = chat.post(f"/api/v1/chat/{chat_id}/messages", json=body, headers=headers)
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def requested(sink: EventSink, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # the outbox relay sends after the request's commit
    while time.monotonic() < deadline:
        found = [e for e in sink.of_type(CHAT_REQUESTED) if e["data"]["job_id"] == job_id]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {CHAT_REQUESTED} for {job_id}")


def deliver(worker: FunctionClient, sink: EventSink, job_id: str, event_id: str | None = None) -> Any:
    event = requested(sink, job_id)
    a = event["attributes"]
    return worker.cloudevent(a["type"], event["data"], source=a["source"], event_id=event_id or a["id"])


def parse_sse(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields:
            out.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return out


def sse(chat: FunctionClient, job_id: str, headers: dict[str, str], last_id: str | None = None) -> list[dict[str, Any]]:
    h = dict(headers)
    if last_id:
        h["Last-Event-ID"] = last_id
    response = chat.get(f"/api/v1/chat/{job_id}/events", headers=h, buffered=True)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    return parse_sse(response.get_data(as_text=True))


def read_http(url: str, headers: dict[str, str], stop_after_tokens: int | None = None) -> list[dict[str, Any]]:
    """Read a stream over real HTTP; hang up after `stop_after_tokens` token events (a dropped connection)."""
    events: list[dict[str, Any]] = []
    tokens = 0
    with requests.get(url, headers=headers, stream=True, timeout=30) as response:
        assert response.status_code == 200
        frame: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if line:
                key, _, value = line.partition(": ")
                frame[key] = value
                continue
            if "event" in frame:
                events.append({"id": frame.get("id"), "event": frame["event"], "data": json.loads(frame["data"])})
                tokens += frame["event"] == "token"
                if frame["event"] in ("done", "error") or (
                    stop_after_tokens is not None and tokens >= stop_after_tokens
                ):
                    break
            frame = {}
    return events


def tokens_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["content"] for e in events if e["event"] == "token")


# -- conversations -----------------------------------------------------------------------------------


def test_create_with_and_without_a_body(chat: FunctionClient) -> None:
    _, headers = new_user(chat)
    bare = chat.post("/api/v1/chat", headers=headers)
    assert bare.status_code == 201 and set(bare.json) == {"id", "title", "created_at"}
    assert bare.json["title"] is None and datetime.fromisoformat(bare.json["created_at"]).tzinfo is not None
    titled = chat.post("/api/v1/chat", json={"title": "페트병 질문"}, headers=headers)
    assert titled.status_code == 201 and titled.json["title"] == "페트병 질문"
    assert chat.post("/api/v1/chat", json={"title": "x" * 201}, headers=headers).status_code == 422
    assert chat.post("/api/v1/chat").status_code == 401


def test_list_is_newest_first_with_a_cursor(chat: FunctionClient) -> None:
    _, headers = new_user(chat)
    ids = [new_chat(chat, headers, title=f"대화 {i}") for i in range(5)]
    first = chat.get("/api/v1/chat?limit=2", headers=headers).json
    assert [c["id"] for c in first["chats"]] == ids[::-1][:2] and first["next_cursor"]
    assert set(first["chats"][0]) == {"id", "title", "preview", "message_count", "last_message_at", "created_at"}
    second = chat.get(f"/api/v1/chat?limit=2&cursor={first['next_cursor']}", headers=headers).json
    third = chat.get(f"/api/v1/chat?limit=2&cursor={second['next_cursor']}", headers=headers).json
    assert [c["id"] for c in second["chats"] + third["chats"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    assert chat.get("/api/v1/chat?limit=0", headers=headers).status_code == 422
    assert chat.get("/api/v1/chat?limit=101", headers=headers).status_code == 422
    bad = chat.get("/api/v1/chat?cursor=not-a-cursor", headers=headers)
    assert bad.status_code == 400 and bad.json["code"] == "INVALID_CURSOR"


def test_soft_delete_and_another_users_chat(chat: FunctionClient, sink: EventSink, clean_db: str) -> None:
    _, mine = new_user(chat)
    _, theirs = new_user(chat)
    chat_id = new_chat(chat, mine)
    for method, path, body in (
        ("GET", f"/api/v1/chat/{chat_id}", None),
        ("DELETE", f"/api/v1/chat/{chat_id}", None),
        ("POST", f"/api/v1/chat/{chat_id}/messages", {"message": "안녕"}),
    ):
        response = chat.request(method, path, json=body, headers=theirs)
        assert response.status_code == 404 and response.json["code"] == "CHAT_NOT_FOUND", (method, path)
    assert chat.get("/api/v1/chat", headers=theirs).json["chats"] == []
    job = send(chat, mine, chat_id, message="안녕")["job_id"]
    other_stream = chat.get(f"/api/v1/chat/{job}/events", headers=theirs)
    assert other_stream.status_code == 404
    assert chat.delete(f"/api/v1/chat/{chat_id}", headers=mine).status_code == 204
    assert chat.get(f"/api/v1/chat/{chat_id}", headers=mine).status_code == 404
    assert chat.get("/api/v1/chat", headers=mine).json["chats"] == []
    assert chat.delete(f"/api/v1/chat/{chat_id}", headers=mine).status_code == 404
    with chat.runtime.clients.db.session() as s:  # soft: the row is kept, marked deleted
        row = s.get(Conversation, uuid.UUID(chat_id))
        assert row is not None and row.deleted_at is not None
    assert chat.get("/api/v1/chat/not-a-uuid", headers=mine).status_code == 404


def test_the_page_is_the_newest_messages_oldest_first(chat: FunctionClient) -> None:
    """The app polls `limit=5` and reads the last element as the newest message."""
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with chat.runtime.clients.db.session() as s:
        for i in range(12):
            role = "user" if i % 2 == 0 else "assistant"
            s.add(
                Message(
                    conversation_id=uuid.UUID(chat_id),
                    role=role,
                    content=f"메시지 {i}",
                    created_at=start + timedelta(minutes=i),
                )
            )
        s.commit()
    page = chat.get(f"/api/v1/chat/{chat_id}?limit=5", headers=headers).json
    assert [m["content"] for m in page["messages"]] == [f"메시지 {i}" for i in range(7, 12)]
    assert page["has_more"] is True and page["next_cursor"] and page["id"] == chat_id
    assert set(page["messages"][-1]) == {"id", "role", "content", "image_url", "created_at"}
    older = chat.get(f"/api/v1/chat/{chat_id}?limit=5&cursor={page['next_cursor']}", headers=headers).json
    assert [m["content"] for m in older["messages"]] == [f"메시지 {i}" for i in range(2, 7)]
    oldest = chat.get(f"/api/v1/chat/{chat_id}?limit=5&cursor={older['next_cursor']}", headers=headers).json
    assert [m["content"] for m in oldest["messages"]] == ["메시지 0", "메시지 1"]
    assert oldest["has_more"] is False and oldest["next_cursor"] is None
    assert chat.get(f"/api/v1/chat/{chat_id}?limit=201", headers=headers).status_code == 422


# -- submitting ----------------------------------------------------------------------------------


def test_submit_answers_at_once_and_publishes(chat: FunctionClient, sink: EventSink) -> None:
    user_id, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    body = send(
        chat, headers, chat_id, message="페트병 어떻게 버려?", user_location={"latitude": 37.5, "longitude": 127.0}
    )
    job = body["job_id"]
    assert body == {"job_id": job, "stream_url": f"/api/v1/chat/{job}/events", "status": "submitted"}
    event = requested(sink, job)
    assert event["attributes"]["source"] == "/eco2/chat" and event["attributes"]["subject"] == job
    data = event["data"]
    assert (data["user_id"], data["chat_id"], data["message"]) == (user_id, chat_id, "페트병 어떻게 버려?")
    assert data["user_location"] == {"latitude": 37.5, "longitude": 127.0} and data["model"] is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": ""}, 422, "VALIDATION_ERROR"),
        ({"message": "   "}, 422, "VALIDATION_ERROR"),
        ({"message": "가" * 2001}, 422, "VALIDATION_ERROR"),
        ({"message": "안녕", "model": "gpt-5-ultra"}, 422, "MODEL_NOT_ALLOWED"),
        ({"message": "안녕", "image_url": "https://evil.example/x.jpg"}, 400, "IMAGE_HOST_NOT_ALLOWED"),
        ({"message": "안녕", "user_location": {"latitude": 123, "longitude": 0}}, 422, "VALIDATION_ERROR"),
    ],
)
def test_submit_refuses(chat: FunctionClient, sink: EventSink, body: dict[str, Any], status: int, code: str) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    response = chat.post(f"/api/v1/chat/{chat_id}/messages", json=body, headers=headers)
    assert response.status_code == status and response.json["code"] == code, response.json
    time.sleep(0.1)
    assert sink.of_type(CHAT_REQUESTED) == []


def test_route_declares_a_rate_limit_and_body_bound(chat: FunctionClient) -> None:
    route = next(r for r in chat.runtime.function.routes if r.path == "/api/v1/chat/{chat_id}/messages")
    assert route.rate == "20/minute" and route.max_body == 16 * 1024


# -- answering -----------------------------------------------------------------------------------


def test_the_whole_exchange(chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    assert chat.get("/api/v1/chat?limit=1", headers=headers).json["chats"][0]["id"] == chat_id
    job = send(chat, headers, chat_id, message="우유팩은 어떻게 버려?", model="gpt-4o")["job_id"]
    reply = deliver(worker, sink, job)
    assert reply.status_code == 200 and reply.headers["ce-type"] == CHAT_COMPLETED
    assert reply.headers["ce-id"] == f"{job}-completed"
    assert llm.calls("chat") == 1 and llm.requests[-1]["body"]["model"] == "gpt-4o"
    assert llm.requests[-1]["body"]["stream"] is True

    events = sse(chat, job, headers, last_id=None)
    assert [e["event"] for e in events] == ["token_recovery", "done"]  # a finished job replays its end
    assert events[0]["data"] == {"accumulated": "".join(ANSWER), "last_seq": len(ANSWER), "completed": True}
    done = events[1]["data"]
    assert done["status"] == "completed" and done["result"]["answer"] == "".join(ANSWER).strip()
    persistence = done["result"]["persistence"]
    assert set(persistence) == {"conversation_id", "user_message", "assistant_message", "assistant_message_created_at"}
    assert persistence["conversation_id"] == chat_id
    assert json.loads(reply.data)["assistant_message_id"] == persistence["assistant_message"]

    # from the first event on: stages, every token in order with seq 1..n, done; an id on every event
    first = chat.get(f"/api/v1/chat/{job}/events", headers=headers, buffered=True).get_data(as_text=True)
    queued_id = parse_sse(first)[0]["id"]
    assert queued_id and all(e["id"] for e in events)
    import redis

    r = redis.Redis.from_url(chat.runtime.settings.redis_url.get(), decode_responses=True)
    entries = r.xrange(f"chat:events:{job}")
    assert entries[0][1]["event"] == "queued"
    everything = sse(chat, job, headers, last_id=entries[0][0])
    names = [e["event"] for e in everything]
    assert names[:3] == ["context", "context", "answer"] and names[-2:] == ["answer", "done"]
    tokens = [e for e in everything if e["event"] == "token"]
    assert [t["data"]["seq"] for t in tokens] == list(range(1, len(ANSWER) + 1))
    assert [e["id"] for e in everything] == [i for i, _ in entries[1:]]
    assert r.hgetall(f"chat:job:{job}")["status"] == "completed"
    assert 3500 < r.ttl(f"chat:events:{job}") <= 3600 and 3500 < r.ttl(f"chat:job:{job}") <= 3600

    # stored, and the conversation is current; the newest message is the last element
    page = chat.get(f"/api/v1/chat/{chat_id}?limit=5", headers=headers).json
    assert [(m["role"], m["content"]) for m in page["messages"]] == [
        ("user", "우유팩은 어떻게 버려?"),
        ("assistant", "".join(ANSWER).strip()),
    ]
    assert page["messages"][-1]["id"] == persistence["assistant_message"]
    assert page["messages"][0]["id"] == persistence["user_message"]
    assert page["title"] == "우유팩 분리배출"
    summary = chat.get("/api/v1/chat?limit=1", headers=headers).json["chats"][0]
    assert summary["message_count"] == 2 and summary["last_message_at"]
    assert summary["preview"] == ("우유팩은 어떻게 버려? " + "".join(ANSWER).strip())[:100]


def test_redelivery_never_answers_twice(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="캔은 어떻게 버려?")["job_id"]
    first = deliver(worker, sink, job)
    again = deliver(worker, sink, job)  # the same event (at-least-once)
    republished = deliver(worker, sink, job, event_id=uuid.uuid4().hex)  # the same job, another event id
    assert first.headers["ce-id"] == again.headers["ce-id"] == republished.headers["ce-id"] == f"{job}-completed"
    assert json.loads(first.data) == json.loads(republished.data)
    assert llm.calls("chat") == 1
    page = chat.get(f"/api/v1/chat/{chat_id}?limit=50", headers=headers).json
    assert len(page["messages"]) == 2
    events = sse(chat, job, headers)
    assert [e["event"] for e in events].count("done") == 1


def test_a_delivery_while_another_answers_is_refused(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.token_interval = 0.05
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="유리병 버리는 법")["job_id"]
    running = threading.Thread(target=deliver, args=(worker, sink, job))
    running.start()
    deadline = time.monotonic() + 5
    while llm.calls("chat") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    twin = deliver(worker, sink, job, event_id=uuid.uuid4().hex)
    running.join()
    assert twin.status_code == 409  # the broker retries it; by then it replays the stored answer
    assert llm.calls("chat") == 1
    assert deliver(worker, sink, job, event_id=uuid.uuid4().hex).headers["ce-type"] == CHAT_COMPLETED


@pytest.fixture
def served_chat(base_env: dict[str, str], sink: EventSink) -> Iterator[Served]:
    served = serve_function("chat", {**base_env, "K_SINK": sink.url}, ROOT)
    yield served
    served.close()


def test_reconnect_in_the_middle_of_the_tokens(
    served_chat: Served, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    """Over real HTTP, while the worker streams: a reconnect with Last-Event-ID resumes exactly after
    it; one without an id gets the accumulated text first; neither loses nor repeats a token."""
    llm.script.token_interval = 0.1
    chat = served_chat.client
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="우유팩은 어떻게 버려?")["job_id"]
    thread = threading.Thread(target=deliver, args=(worker, sink, job))
    thread.start()
    url = served_chat.url.rstrip("/") + f"/api/v1/chat/{job}/events"
    try:
        before = read_http(url, headers, stop_after_tokens=3)  # the connection drops after 3 tokens
        assert before[0]["event"] == "token_recovery" and before[0]["data"]["accumulated"] == ""
        after = read_http(url, {**headers, "Last-Event-ID": before[-1]["id"]})
        lost_id = read_http(url, headers, stop_after_tokens=None)  # a reconnect without an id
    finally:
        thread.join()
    full = "".join(ANSWER)
    assert tokens_text(before) + tokens_text(after) == full
    seqs = [e["data"]["seq"] for e in before + after if e["event"] == "token"]
    assert seqs == list(range(1, len(ANSWER) + 1))
    assert after[-1]["event"] == "done" and after[0]["id"] > before[-1]["id"]
    assert lost_id[0]["event"] == "token_recovery"
    assert lost_id[0]["data"]["accumulated"] + tokens_text(lost_id) == full
    assert lost_id[-1]["event"] == "done"


def test_mid_stream_reconnect_without_id_while_streaming(
    served_chat: Served, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.token_interval = 0.1
    chat = served_chat.client
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="안녕 이코")["job_id"]
    thread = threading.Thread(target=deliver, args=(worker, sink, job))
    thread.start()
    url = served_chat.url.rstrip("/") + f"/api/v1/chat/{job}/events"
    try:
        read_http(url, headers, stop_after_tokens=4)
        resumed = read_http(url, headers)  # no Last-Event-ID: recovery carries what was already sent
    finally:
        thread.join()
    recovery = resumed[0]
    assert recovery["event"] == "token_recovery" and recovery["id"]
    assert 4 <= recovery["data"]["last_seq"] < len(ANSWER) and recovery["data"]["completed"] is False
    assert recovery["data"]["accumulated"] == "".join(ANSWER[: recovery["data"]["last_seq"]])
    later = [e["data"]["seq"] for e in resumed if e["event"] == "token"]
    assert later == list(range(recovery["data"]["last_seq"] + 1, len(ANSWER) + 1))
    assert resumed[-1]["event"] == "done"


# -- grounding ----------------------------------------------------------------------------------


def test_the_prompt_carries_the_rules_of_the_item_asked_about(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    from functions.common import recycling

    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="다 마신 우유팩은 어떻게 버려요?")["job_id"]
    deliver(worker, sink, job)
    [prompt] = llm.prompts("chat")
    rules = recycling.rules_for("재활용폐기물", "종이팩")
    assert rules is not None
    assert all(step in prompt for step in rules.common_steps)
    assert "이코" in prompt and "다 마신 우유팩은 어떻게 버려요?" in prompt
    other = recycling.rules_for("재활용폐기물", "유리병")
    assert other is not None and not any(step in prompt for step in other.common_steps)


def test_conversation_history_is_context(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    deliver(worker, sink, send(chat, headers, chat_id, message="첫 질문: 스티로폼")["job_id"])
    deliver(worker, sink, send(chat, headers, chat_id, message="두 번째 질문")["job_id"])
    roles = [m["role"] for m in llm.requests[-1]["body"]["messages"]]
    contents = [m["content"] for m in llm.requests[-1]["body"]["messages"]]
    assert roles[-3:] == ["user", "assistant", "user"] and contents[-3] == "첫 질문: 스티로폼"
    assert contents[-1] == "두 번째 질문"
    assert chat.get(f"/api/v1/chat/{chat_id}", headers=headers).json["title"] == "스티로폼 분리배출"


def test_where_to_drop_off_uses_the_location_function(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer, location: LocationStandIn
) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    here = {"latitude": 37.5563, "longitude": 126.9086}
    job = send(chat, headers, chat_id, message="종이팩 근처 어디에 버릴 수 있어?", user_location=here)["job_id"]
    deliver(worker, sink, job)
    query = location.queries[-1]
    assert float(query["lat"]) == pytest.approx(37.5563) and float(query["lon"]) == pytest.approx(126.9086)
    assert int(query["radius"]) > 0
    [prompt] = llm.prompts("chat")
    assert "초록상점 망원점" in prompt and "350m" in prompt
    # without a location the prompt says so instead of guessing
    count = len(location.queries)
    deliver(worker, sink, send(chat, headers, chat_id, message="근처 수거함 어디야?")["job_id"])
    assert len(location.queries) == count and "위치를 모름" in llm.prompts("chat")[-1]


def test_an_attached_photo_goes_to_the_vision_model(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="이거 어떻게 버려?", image_url=IMAGE)["job_id"]
    deliver(worker, sink, job)
    vision = next(r for r in llm.requests if r["kind"] == "vision")
    assert vision["body"]["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": IMAGE, "detail": "low"},
    }
    assert vision["body"]["response_format"]["json_schema"]["strict"] is True
    [prompt] = llm.prompts("chat")
    assert "[사진 분류] 재활용폐기물 > 무색페트병" in prompt  # the stand-in's classification
    from functions.common import recycling

    rules = recycling.rules_for("재활용폐기물", "무색페트병")
    assert rules is not None and rules.common_steps[0] in prompt
    stored = chat.get(f"/api/v1/chat/{chat_id}", headers=headers).json["messages"]
    assert stored[0]["image_url"] == IMAGE
    assert [e["event"] for e in sse(chat, job, headers, last_id=None)][-1] == "done"


# -- failures ------------------------------------------------------------------------------------


def test_rate_limited_model_is_retried_with_backoff(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.chat_failures = 2
    llm.script.chat_failure_status = 429
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="건전지 버리는 곳")["job_id"]
    assert deliver(worker, sink, job).headers["ce-type"] == CHAT_COMPLETED
    assert llm.calls("chat") == 3
    events = sse(chat, job, headers)
    assert events[-1]["event"] == "done" and events[0]["data"]["accumulated"] == "".join(ANSWER)


def test_a_model_that_keeps_failing_ends_in_a_readable_error(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.chat_failures = 10
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="형광등은?")["job_id"]
    reply = deliver(worker, sink, job)
    assert reply.status_code == 200 and "ce-type" not in reply.headers
    assert llm.calls("chat") == 3
    events = sse(chat, job, headers)
    assert events[-1]["event"] == "error"
    assert events[-1]["data"]["error"] == "LLM_UNAVAILABLE" and "다시 시도" in events[-1]["data"]["message"]
    assert chat.get(f"/api/v1/chat/{chat_id}", headers=headers).json["messages"] == []  # nothing half-stored
    assert deliver(worker, sink, job, event_id=uuid.uuid4().hex).status_code == 200
    assert llm.calls("chat") == 3  # a failed job is not answered again


def test_a_try_still_answering_when_its_job_fails_stops_and_stores_nothing(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    """The dead-letter sink (chat) fails a job while a try that outlived its delivery still streams
    the answer: that try stops at its next token, stores no messages and sends no reply event; the
    stream ends with the sink's `error` and nothing after it."""
    llm.script.token_interval = 0.1
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="우유팩은 어떻게 버려?")["job_id"]
    replies: list[Any] = []
    running = threading.Thread(target=lambda: replies.append(deliver(worker, sink, job)))
    running.start()
    jobs = ChatJobs(worker.runtime.clients.redis)
    deadline = time.monotonic() + 10
    while sum(e.event == "token" for e in jobs.entries(job)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    event = requested(sink, job)
    worker_url = "http://chat-worker.eco2.svc.cluster.local"  # where the Trigger had delivered it
    dead_letter = chat.cloudevent(
        CHAT_REQUESTED,
        event["data"],
        source=event["attributes"]["source"],
        extensions={"knativeerrordest": worker_url, "knativeerrorcode": "504"},
    )
    running.join(10)
    assert dead_letter.status_code in (200, 202, 204)
    [reply] = replies
    assert reply.status_code == 200 and "ce-type" not in reply.headers  # no chat.message.completed
    entries = jobs.entries(job)
    assert entries[-1].event == "error" and entries[-1].json()["error"] == "ANSWER_UNAVAILABLE"
    assert [e.event for e in entries].count("error") == 1 and "done" not in [e.event for e in entries]
    assert 2 <= sum(e.event == "token" for e in entries) < len(ANSWER)  # it stopped listening to the model
    job_state = jobs.get(job)
    assert job_state is not None and job_state.status == "failed"
    assert chat.get(f"/api/v1/chat/{chat_id}", headers=headers).json["messages"] == []  # nothing stored
    assert sse(chat, job, headers)[-1]["event"] == "error"


def test_a_stream_cut_in_the_middle_ends_in_an_error(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    llm.script.chat_cut_after = 3
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="비닐은?")["job_id"]
    deliver(worker, sink, job)
    events = sse(chat, job, headers)
    assert events[0]["data"]["accumulated"] == "".join(ANSWER[:3]) and events[0]["data"]["completed"] is False
    assert events[-1]["event"] == "error" and events[-1]["data"]["error"] == "LLM_INTERRUPTED"
    assert llm.calls("chat") == 1  # tokens were already shown: not retried (it would repeat them)


def test_offline_answer_is_marked_streamed_and_stored(
    chat: FunctionClient, function_client: Callable[..., FunctionClient], sink: EventSink
) -> None:
    offline = function_client("chat-worker", CHAT_OFFLINE_TOKEN_DELAY="0")  # no OPENAI_API_KEY
    _, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    job = send(chat, headers, chat_id, message="우유팩은 어떻게 버려?")["job_id"]
    assert deliver(offline, sink, job).headers["ce-type"] == CHAT_COMPLETED
    import redis

    r = redis.Redis.from_url(chat.runtime.settings.redis_url.get(), decode_responses=True)
    tokens = [f for _, f in r.xrange(f"chat:events:{job}") if f["event"] == "token"]
    assert len(tokens) > 5  # still streamed, a word at a time
    events = sse(chat, job, headers)
    answer = events[-1]["data"]["result"]["answer"]
    assert answer.startswith("(오프라인 답변)") and "종이팩" in answer
    from functions.common import recycling

    rules = recycling.rules_for("재활용폐기물", "종이팩")
    assert rules is not None and rules.common_steps[0] in answer
    stored = chat.get(f"/api/v1/chat/{chat_id}", headers=headers).json["messages"]
    assert stored[-1]["role"] == "assistant" and stored[-1]["content"] == answer


def test_stream_sends_keepalives_with_an_id_and_stops_at_its_limit(chat: FunctionClient, sink: EventSink) -> None:
    """Nothing new within the keepalive interval: a `keepalive` carrying the last id (so a reconnect
    after it still resumes exactly); the time limit (a fake clock here) ends the stream instead of hanging."""
    import redis

    from functions.common import chatjobs

    _, headers = new_user(chat)
    job = send(chat, headers, new_chat(chat, headers), message="안녕")["job_id"]
    jobs = chatjobs.ChatJobs(redis.Redis.from_url(chat.runtime.settings.redis_url.get(), decode_responses=True))
    ticks = iter([0.0, 0.0, chatjobs.STREAM_LIMIT_SECONDS + 1])
    original = chatjobs.KEEPALIVE_SECONDS
    chatjobs.KEEPALIVE_SECONDS = 1
    try:
        frames = list(chatjobs.sse_frames(jobs, job, None, lambda: next(ticks)))
    finally:
        chatjobs.KEEPALIVE_SECONDS = original
    assert frames[0].startswith("retry:")
    assert "event: token_recovery" in frames[1]
    recovery_id = frames[1].split("\n")[0].removeprefix("id: ")
    assert frames[2] == f"id: {recovery_id}\nevent: keepalive\ndata: {json.dumps({'job_id': job})}\n\n"
    assert len(frames) == 3
    assert chatjobs.KEEPALIVE_SECONDS < 60


def test_messages_are_rate_limited_per_user(chat: FunctionClient, sink: EventSink) -> None:
    _, headers = new_user(chat)
    _, other = new_user(chat)
    chat_id = new_chat(chat, headers)
    statuses = [
        chat.post(f"/api/v1/chat/{chat_id}/messages", json={"message": f"질문 {i}"}, headers=headers).status_code
        for i in range(21)
    ]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    assert send(chat, other, new_chat(chat, other), message="저도 질문")["status"] == "submitted"


def test_deleting_the_account_takes_the_conversations(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, clean_db: str
) -> None:
    import psycopg

    user_id, headers = new_user(chat)
    chat_id = new_chat(chat, headers)
    deliver(worker, sink, send(chat, headers, chat_id, message="종이컵은?")["job_id"])
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE id = %s", (uuid.UUID(user_id),))
        left = conn.execute("SELECT count(*) FROM chat_messages").fetchone()
        chats = conn.execute("SELECT count(*) FROM chat_conversations").fetchone()
    assert left == (0,) and chats == (0,)


def test_the_worker_never_writes_into_another_users_chat(
    chat: FunctionClient, worker: FunctionClient, sink: EventSink, llm: LLMServer
) -> None:
    _, mine = new_user(chat)
    _, theirs = new_user(chat)
    my_chat = new_chat(chat, mine)
    job = send(chat, theirs, new_chat(chat, theirs), message="종이컵은?")["job_id"]
    event = requested(sink, job)
    forged = {**event["data"], "chat_id": my_chat}  # their job aimed at my conversation
    reply = worker.cloudevent(CHAT_REQUESTED, forged, source=event["attributes"]["source"])
    assert reply.status_code == 200 and "ce-type" not in reply.headers
    assert llm.calls("chat") == 0
    assert chat.get(f"/api/v1/chat/{my_chat}", headers=mine).json["messages"] == []
    assert sse(chat, job, theirs)[-1]["data"]["error"] == "CHAT_NOT_FOUND"
