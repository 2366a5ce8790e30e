"""chat function: thin handlers (decode → service → encode)."""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

from werkzeug.wrappers import Response

from eco2 import Context, Event, Function
from eventing.catalogue import CHAT_REQUESTED, ChatRequested
from functions.chat import service
from functions.chat.schemas import (
    ChatConfig,
    ChatCreate,
    ChatCreated,
    ChatDetail,
    ChatList,
    ListQuery,
    MessageAccepted,
    MessageRequest,
    MessagesQuery,
)
from functions.common.chatjobs import ChatJobs, sse_frames

fn = Function(
    "chat",
    uses=("db", "redis", "jwt", "events"),
    config=ChatConfig,
    description="Conversations with 이코, message submission and the answer's token stream.",
)
log = logging.getLogger("eco2.chat")


@cache
def _hosts(configured: tuple[str, ...], cdn: str, s3: str) -> frozenset[str]:
    return service.allowed_hosts(configured, cdn, s3)


@fn.get("/api/v1/chat", auth=True, query=ListQuery, response=ChatList)
def list_chats(ctx: Context, query: ListQuery) -> ChatList:
    """The user's conversations, newest first."""
    return service.list_chats(ctx.db, ctx.user_id, query.limit, query.cursor)


@fn.post("/api/v1/chat", auth=True, body=ChatCreate, response=ChatCreated, status=201)
def create_chat(ctx: Context, body: ChatCreate) -> ChatCreated:
    """Start a conversation (the body and its title are optional)."""
    return service.create_chat(ctx.db, ctx.user_id, body.title)


@fn.get("/api/v1/chat/{chat_id}", auth=True, query=MessagesQuery, response=ChatDetail)
def read_chat(ctx: Context, chat_id: str, query: MessagesQuery) -> ChatDetail:
    """A page of messages: the newest `limit` before the cursor, oldest first."""
    return service.read_chat(ctx.db, ctx.user_id, chat_id, query.limit, query.cursor)


@fn.delete("/api/v1/chat/{chat_id}", auth=True, status=204)
def delete_chat(ctx: Context, chat_id: str) -> None:
    """Delete a conversation (soft)."""
    service.delete_chat(ctx.db, ctx.user_id, chat_id)


@fn.post(
    "/api/v1/chat/{chat_id}/messages",
    auth=True,
    body=MessageRequest,
    response=MessageAccepted,
    rate="20/minute",
    max_body=16 * 1024,
)
def send_message(ctx: Context, chat_id: str, body: MessageRequest) -> MessageAccepted:
    """Ask 이코: answers at once with the job; the answer streams from `stream_url`."""
    config: ChatConfig = ctx.config
    service.check_model(body.model, config.models)
    if body.image_url is not None:
        s = ctx.settings
        service.check_image_url(body.image_url, _hosts(config.image_hosts, s.cdn_base_url, s.s3_endpoint_url))

    def publish(job_id: str, data: dict[str, Any]) -> None:
        ctx.publish(CHAT_REQUESTED, data, subject=job_id)

    return service.submit_message(ctx.db, ChatJobs(ctx.redis), ctx.user_id, chat_id, body, publish)


# deduplicated in Redis: the handler touches only the job (Redis), not the database
@fn.event(CHAT_REQUESTED, data=ChatRequested, dedupe="redis", dead_letters=True)
def on_undelivered(ctx: Context, event: Event[ChatRequested]) -> None:
    """A message chat-worker failed on every retry (this function is its Trigger's dead-letter
    sink, func.yaml): the job ends with `error`, so the open stream closes and the app can resend."""
    service.fail_undelivered(ChatJobs(ctx.redis), event.data.job_id, event.extensions.get("knativeerrorcode"))


@fn.get("/api/v1/chat/{job_id}/events", auth=True)
def events(ctx: Context, job_id: str) -> Response:
    """The answer as Server-Sent Events; resumes after Last-Event-ID; ends after `done` or `error`."""
    jobs = ChatJobs(ctx.redis)
    service.owned_job(jobs, job_id, ctx.user_id)
    assert ctx.request is not None
    last = ctx.request.headers.get("Last-Event-ID")

    def interrupted(_exc: Exception) -> None:
        log.warning("chat stream interrupted by Redis", extra={"job_id": job_id})

    frames = (f.encode() for f in sse_frames(jobs, job_id, last, time.monotonic, interrupted))
    return Response(
        frames,
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )
