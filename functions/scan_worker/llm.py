"""The two LLM calls of a scan (vision classification, answer) through the openai client, with
retries on timeouts, connection errors, 429 and 5xx, and strict JSON parsing. The offline
stand-ins used when no OpenAI key is configured live here too, and say what they are."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from functions.common.vision import VISION_SYSTEM, vision_schema

if TYPE_CHECKING:
    from functions.common.llmmodels import ScanModels, Use

log = logging.getLogger("eco2.scan.llm")

ANSWER_SYSTEM = (
    "너는 분리배출 도우미 '이코'야. 친근한 존댓말로, 주어진 배출 규칙에서 벗어나지 말고 답해. "
    "disposal_steps는 규칙을 바탕으로 실제로 해야 할 순서대로 쓰고, user_answer는 세 문장 이내로 "
    "분리배출에 관한 이야기만 해."
)


class LLMError(RuntimeError):
    """The model did not give a usable answer after every try; the message is shown to the user."""


@dataclass(frozen=True)
class Vision:
    major: str
    middle: str
    minor: str
    tags: list[str] = field(default_factory=list)
    note: str | None = None  # set when the answer had to be corrected or replaced


ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["disposal_steps", "user_answer"],
    "properties": {
        "disposal_steps": {"type": "array", "items": {"type": "string"}},
        "user_answer": {"type": "string"},
    },
}


class LLM:
    def __init__(self, client: Any, *, models: ScanModels, timeout: float, attempts: int) -> None:
        self.client = client
        self.models = models  # the allow-lists: a model outside them is never sent
        self.timeout = timeout
        self.attempts = attempts

    @property
    def offline(self) -> bool:
        return self.client is None

    def model_for(self, use: Use, requested: str | None) -> str:
        """The requested model when it is allowed for `use`, else that use's default (a job
        requested before the allow-list changed, or an event that did not come from `scan`)."""
        model = self.models.pick(use, requested)
        if requested is not None and model != requested:
            log.warning("requested model is not allowed; using the default", extra={"call": use, "model": model})
        return model

    def _complete(self, what: str, model: str, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
        """One call; the openai client itself retries timeouts, connection errors, 408/409/429 and
        5xx with exponential backoff and honours Retry-After (`attempts` tries in all).

        The body goes through the client's own `post` (its documented way to send a request it
        has no method for), not `chat.completions.create`: the same request, retries, timeouts,
        errors and typed `ChatCompletion`, without `create`'s walk of every message and schema
        node against its TypedDicts, which only re-checks what is already plain JSON here. That
        walk was 1.2-1.6 ms of the 3.4-3.6 ms of CPU each call took in the worker
        (tests/benchmarks/README.md, "fourth pass")."""
        import openai
        from openai.types.chat import ChatCompletion

        client = self.client.with_options(timeout=self.timeout, max_retries=self.attempts - 1)
        body = {
            "model": model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": what, "strict": True, "schema": schema},
            },
            "temperature": 0,
        }
        try:
            response = client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            log.warning("LLM call failed", extra={"call": what, "error": type(exc).__name__})
            reason = (
                "응답 시간이 초과됐어요" if isinstance(exc, openai.APITimeoutError) else "서비스에 연결하지 못했어요"
            )
            raise LLMError(self._gave_up(reason)) from exc
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            log.warning("LLM call failed", extra={"call": what, "error": type(exc).__name__})
            raise LLMError(self._gave_up("서비스가 바빠요")) from exc
        except openai.APIStatusError as exc:  # other 4xx: retrying will not help
            raise LLMError(f"분류 모델이 요청을 거절했어요 ({exc.status_code}).") from exc
        return str(response.choices[0].message.content or "")

    def _gave_up(self, reason: str) -> str:
        return f"AI 모델이 {self.attempts}번 시도에도 답하지 않았어요: {reason}. 잠시 후 다시 시도해 주세요."

    def classify(
        self,
        image_url: str,
        user_input: str | None,
        model: str | None,
        *,
        majors: list[str],
        middles: list[str],
        tags: list[str],
    ) -> dict[str, Any] | None:
        """The model's raw classification, or None when it answered something that is not JSON."""
        text = user_input or "사진 속 물건을 분류해 줘."
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": VISION_SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": image_url, "detail": "low"}},
                ],
            },
        ]
        content = self._complete(
            "classification", self.model_for("vision", model), messages, vision_schema(majors, middles, tags)
        )
        return _json_object(content)

    def answer(self, context: dict[str, Any], model: str | None) -> dict[str, Any] | None:
        messages = [
            {"role": "system", "content": ANSWER_SYSTEM},
            {"role": "user", "content": json.dumps(context, ensure_ascii=False)},
        ]
        content = self._complete("answer", self.model_for("answer", model), messages, ANSWER_SCHEMA)
        return _json_object(content)


def _json_object(content: str) -> dict[str, Any] | None:
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
