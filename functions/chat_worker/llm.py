"""The chat's model calls through the openai client: the answer, streamed chunk by chunk, and the
vision classification of an attached photo (the scan's strict JSON against the taxonomy).

Retries: timeouts, connection errors, 429 and 5xx are retried with exponential backoff while no
token has been sent yet; once tokens went out, a retry would repeat them, so a broken stream ends
the job with a readable error instead. Other 4xx are not retried."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from functions.common import recycling
from functions.common.vision import VISION_SYSTEM, vision_schema

log = logging.getLogger("eco2.chat.llm")

PERSONA = (
    "너는 분리배출 도우미 '이코'야. 친근한 존댓말로, 짧고 분명하게(다섯 문장 이내) 답해. "
    "재활용과 분리배출, 환경 이야기만 하고, 다른 주제에는 정중하게 분리배출 이야기로 돌아와. "
    "아래에 [배출 규칙]이 주어지면 그 규칙에서 벗어나지 말고, 규칙에 없는 내용은 지어내지 마. "
    "[가까운 배출 장소]가 주어지면 이름과 거리를 알려 줘. 지역마다 다를 수 있는 부분은 지자체 안내를 "
    "확인하라고 덧붙여."
)


class ChatLLMError(RuntimeError):
    """The model gave no usable answer; the message is shown to the user."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ChatLLM:
    def __init__(self, client: Any, *, vision_model: str, timeout: float, attempts: int, backoff: float) -> None:
        self.client = client
        self.vision_model = vision_model
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    @property
    def offline(self) -> bool:
        return self.client is None

    def _retryable(self) -> tuple[type[Exception], ...]:
        import openai

        return (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)

    def _wait(self, attempt: int) -> None:
        if attempt < self.attempts:
            time.sleep(self.backoff * (2 ** (attempt - 1)))

    def stream(self, model: str, messages: list[dict[str, Any]], max_tokens: int) -> Iterator[str]:
        """The answer's text pieces as the model sends them."""
        import openai

        last = ""
        for attempt in range(1, self.attempts + 1):
            sent = False
            try:
                chunks = self.client.with_options(timeout=self.timeout).chat.completions.create(
                    model=model, messages=messages, stream=True, temperature=0.3, max_tokens=max_tokens
                )
                with chunks:  # closed (the HTTP response too) when the caller stops early
                    for chunk in chunks:
                        delta = chunk.choices[0].delta.content if chunk.choices else None
                        if delta:
                            sent = True
                            yield delta
                return
            except self._retryable() as exc:
                if sent:
                    raise ChatLLMError(
                        "답변을 받는 도중 AI 모델과의 연결이 끊겼어요. 같은 질문을 다시 보내 주세요.", "LLM_INTERRUPTED"
                    ) from exc
                last = type(exc).__name__
                log.warning("chat LLM call failed, retrying", extra={"attempt": attempt, "error": last})
            except openai.APIStatusError as exc:
                raise ChatLLMError(f"AI 모델이 요청을 거절했어요 ({exc.status_code}).", "LLM_REJECTED") from exc
            except Exception as exc:  # a stream that breaks in the middle (the HTTP body cut short)
                if not sent:
                    raise
                raise ChatLLMError(
                    "답변을 받는 도중 AI 모델과의 연결이 끊겼어요. 같은 질문을 다시 보내 주세요.", "LLM_INTERRUPTED"
                ) from exc
            self._wait(attempt)
        reason = "응답 시간이 초과됐어요" if last == "APITimeoutError" else "서비스에 연결하지 못했어요"
        raise ChatLLMError(
            f"AI 모델이 {self.attempts}번 시도에도 답하지 않았어요: {reason}. 잠시 후 다시 시도해 주세요.",
            "LLM_UNAVAILABLE",
        )

    def classify(self, image_url: str, text: str) -> recycling.Classification | None:
        """The photo on the taxonomy (as a scan classifies it); None when the model's answer is unusable."""
        import openai

        tax = recycling.taxonomy()
        tags = list(recycling.situation_tags())
        messages = [
            {"role": "system", "content": VISION_SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": image_url, "detail": "low"}},
                ],
            },
        ]
        schema = vision_schema(tax.majors(), tax.all_middles(), tags)
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.client.with_options(timeout=self.timeout).chat.completions.create(
                    model=self.vision_model,
                    messages=messages,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "classification", "strict": True, "schema": schema},
                    },
                    temperature=0,
                )
                raw = json.loads(str(response.choices[0].message.content or ""))
                if not isinstance(raw, dict):
                    return None
                return tax.normalise(
                    str(raw.get("major_category", "")),
                    str(raw.get("middle_category", "")),
                    str(raw.get("minor_category", "")),
                )
            except ValueError:
                return None
            except self._retryable() as exc:
                log.warning("chat vision call failed", extra={"attempt": attempt, "error": type(exc).__name__})
            except openai.APIStatusError:
                return None  # the answer goes on without the photo, and says so
            self._wait(attempt)
        return None
