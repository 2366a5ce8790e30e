"""A local OpenAI-compatible server for tests and benchmarks: POST /v1/chat/completions over real HTTP.

It answers the scan pipeline's two calls — the vision classification (a message carrying an
`image_url` part) and the answer — with scripted content, and can be told to be slow, fail with
5xx, return garbage, or return an off-taxonomy category. A request with `"stream": true` (the
chat's answer) is answered as real SSE `chat.completion.chunk`s, one scripted token every
`token_interval` seconds, or with 429/500 first (`chat_failures`, `chat_failure_status`), or cut
off after `chat_cut_after` tokens. Requests are recorded for assertions (`prompts()`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.servers import serve_wsgi


@dataclass
class Script:
    classification: dict[str, Any] = field(
        default_factory=lambda: {
            "major_category": "재활용폐기물",
            "middle_category": "무색페트병",
            "minor_category": "생수병",
            "situation_tags": ["내용물_없음", "비닐_라벨_완전_제거됨"],
        }
    )
    answer: dict[str, Any] = field(
        default_factory=lambda: {
            "disposal_steps": [
                "라벨을 떼어 주세요.",
                "내용물을 비우고 헹궈 주세요.",
                "찌그러뜨린 뒤 뚜껑을 닫아 투명 페트 수거함에 넣어 주세요.",
            ],
            "user_answer": "투명 페트병이네요! 라벨을 떼고 헹군 뒤 전용 수거함에 넣어 주세요.",
        }
    )
    vision_delay: float = 0.0
    answer_delay: float = 0.0
    vision_failures: int = 0  # answer 500 this many times first
    answer_failures: int = 0
    vision_raw: str | None = None  # send this text as the content instead of JSON (garbage)
    answer_raw: str | None = None
    # streamed chat answers
    chat_tokens: list[str] = field(
        default_factory=lambda: [
            "안녕하세요! ",
            "이코예요. ",
            "페트병은 ",
            "라벨을 ",
            "떼고 ",
            "헹군 ",
            "뒤 ",
            "버려 주세요.",
        ]
    )
    token_interval: float = 0.0  # seconds between two chunks (the token rate)
    chat_failures: int = 0  # answer chat_failure_status this many times first
    chat_failure_status: int = 500
    chat_cut_after: int | None = None  # drop the connection after this many tokens


class LLMServer:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server, self.thread = serve_wsgi(self)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def reset(self, **changes: Any) -> None:
        with self._lock:
            self.script = Script(**changes)
            self.requests.clear()

    def calls(self, kind: str) -> int:
        return sum(1 for r in self.requests if r["kind"] == kind)

    def prompts(self, kind: str = "chat") -> list[str]:
        """The text of every message of each request of `kind`, one string per request."""
        out = []
        for r in self.requests:
            if r["kind"] == kind:
                parts = []
                for message in r["body"].get("messages", []):
                    content = message.get("content")
                    if isinstance(content, list):
                        parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
                    else:
                        parts.append(str(content or ""))
                out.append("\n".join(parts))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.path != "/v1/chat/completions" or request.method != "POST":
            return Response(json.dumps({"error": {"message": "not found"}}), 404)(environ, start_response)
        body = json.loads(request.get_data())
        kind = "chat" if body.get("stream") else "vision" if _has_image(body) else "answer"
        failing = False
        with self._lock:
            self.requests.append({"kind": kind, "body": body, "auth": request.headers.get("Authorization")})
            script = self.script
            if kind == "chat":
                failing = script.chat_failures > 0
                script.chat_failures -= 1 if failing else 0
        if kind == "chat":
            return self._stream(body, script, failing)(environ, start_response)
        with self._lock:
            failures_left = script.vision_failures if kind == "vision" else script.answer_failures
            if failures_left:
                if kind == "vision":
                    script.vision_failures -= 1
                else:
                    script.answer_failures -= 1
        time.sleep(script.vision_delay if kind == "vision" else script.answer_delay)
        if failures_left:
            error = {"error": {"message": "the stand-in is failing on purpose", "type": "server_error"}}
            return Response(json.dumps(error), 500, content_type="application/json")(environ, start_response)
        raw = script.vision_raw if kind == "vision" else script.answer_raw
        content = (
            raw
            if raw is not None
            else json.dumps(script.classification if kind == "vision" else script.answer, ensure_ascii=False)
        )
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stand-in"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        return Response(json.dumps(completion, ensure_ascii=False), 200, content_type="application/json")(
            environ, start_response
        )

    def _stream(self, body: dict[str, Any], script: Script, failing: bool) -> Response:
        if failing:
            status = script.chat_failure_status
            error = {"error": {"message": "the stand-in is failing on purpose", "type": "server_error", "code": None}}
            headers = {"Retry-After": "0"} if status == 429 else None
            return Response(json.dumps(error), status, headers=headers, content_type="application/json")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        model = body.get("model", "stand-in")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

        def events() -> Any:
            yield chunk({"role": "assistant", "content": ""})
            for i, token in enumerate(script.chat_tokens):
                if script.chat_cut_after is not None and i >= script.chat_cut_after:
                    raise ConnectionAbortedError("the stand-in cuts the stream on purpose")
                if script.token_interval:
                    time.sleep(script.token_interval)
                yield chunk({"content": token})
            yield chunk({}, "stop")
            yield b"data: [DONE]\n\n"

        return Response(events(), 200, content_type="text/event-stream", direct_passthrough=True)


def _has_image(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            return True
    return False
