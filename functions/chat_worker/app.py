"""chat-worker function: one CloudEvent handler (decode → answer → reply event)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from eco2 import Context, Event, Function, OutEvent
from eco2.core.settings import Settings
from eventing.catalogue import CHAT_COMPLETED, CHAT_REQUESTED, ChatCompleted, ChatRequested
from functions.chat_worker import grounding, service
from functions.chat_worker.config import WorkerConfig
from functions.chat_worker.llm import ChatLLM
from functions.common.chatjobs import ChatJobs

fn = Function(
    "chat-worker",
    uses=("db", "redis", "openai"),
    config=WorkerConfig,
    description="이코's answers: grounded in the rules, streamed token by token, stored.",
)


@fn.dev_mount("/dev/chat-worker", env=lambda base_url: {"LOCATION_URL": base_url})
def _no_standin(_env: Mapping[str, str]) -> None:
    """`eco2 dev`: nearby searches go to the real location function through the gateway (func.yaml's
    LOCATION_URL is the cluster-local address); nothing needs mounting."""
    return None


@fn.on_startup
def _check_data(_clients: Any) -> None:
    from functions.common import recycling

    problems = recycling.validate()
    if problems:
        raise RuntimeError("recycling data is inconsistent: " + "; ".join(problems))


@cache
def _llm(client: Any, settings: Settings, vision_model: str) -> ChatLLM:
    return ChatLLM(
        client,
        vision_model=vision_model,
        timeout=settings.llm_timeout,
        attempts=settings.llm_max_attempts,
        backoff=settings.llm_backoff,
    )


# deduplicated in Redis, not in the handler's transaction: an answer streams for seconds, and the
# exchange is stored (and committed) before `done` is sent, inside the handler
@fn.event(CHAT_REQUESTED, data=ChatRequested, dedupe="redis")
def on_chat_requested(ctx: Context, event: Event[ChatRequested]) -> OutEvent | None:
    """Answer once per job; the reply (chat.message.completed) goes back to the broker."""
    config: WorkerConfig = ctx.config
    request = event.data

    def locate(lat: float, lon: float) -> list[grounding.Center] | None:
        return grounding.nearby(config.location_base, lat, lon, config.location_radius, config.location_timeout)

    llm = _llm(ctx.clients.openai, ctx.settings, config.chat_vision_model)
    result = service.answer(ctx.db, ChatJobs(ctx.redis), llm, config, request, locate)
    if result is None:
        return None
    return OutEvent(
        type=CHAT_COMPLETED,
        id=f"{request.job_id}-completed",
        subject=request.job_id,
        data=ChatCompleted(
            job_id=request.job_id,
            chat_id=result.conversation_id,
            assistant_message_id=result.assistant_message,
            user_id=request.user_id,
        ),
    )
