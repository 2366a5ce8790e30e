"""Conversation rules free of HTTP: ownership, keyset pages, soft delete, message submission."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select

from eco2.core.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized, Unprocessable
from functions.chat.schemas import (
    ChatCreated,
    ChatDetail,
    ChatList,
    ChatSummary,
    MessageAccepted,
    MessageOut,
    MessageRequest,
)
from functions.common.chatjobs import ChatJobs
from functions.common.conversations import Conversation, Message
from functions.common.models import User

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("eco2.chat")
UNDELIVERED = "지금은 답을 만들 수 없었어요. 잠시 뒤에 같은 질문을 다시 보내 주세요."


def fail_undelivered(jobs: ChatJobs, job_id: str, code: str | None) -> None:
    """The job of a message that never reached an answer ends with `error` (once; a job that
    ended or expired meanwhile is left as it is)."""
    if jobs.fail_unfinished(job_id, "ANSWER_UNAVAILABLE", UNDELIVERED):
        log.warning("chat request undeliverable; job failed", extra={"job_id": job_id, "code": code})


def _user_key(user_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise Unauthorized() from None


# -- cursors: opaque, (time, id) of the last row a page showed ---------------------------------------


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.astimezone(UTC).isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor: not a cursor this API gave out.", "INVALID_CURSOR") from None


# -- conversations -----------------------------------------------------------------------------------


def owned(session: Session, user_id: str, chat_id: str) -> Conversation:
    """The user's live conversation; another user's, a deleted or an unknown one is the same 404."""
    try:
        key = uuid.UUID(chat_id)
    except ValueError:
        raise NotFound("No such chat.", "CHAT_NOT_FOUND") from None
    chat = session.get(Conversation, key)
    if chat is None or chat.user_id != _user_key(user_id) or chat.deleted_at is not None:
        raise NotFound("No such chat.", "CHAT_NOT_FOUND")
    return chat


def summary(chat: Conversation) -> ChatSummary:
    return ChatSummary(
        id=str(chat.id),
        title=chat.title,
        preview=chat.preview,
        message_count=chat.message_count,
        last_message_at=chat.last_message_at,
        created_at=chat.created_at,
    )


def list_chats(session: Session, user_id: str, limit: int, cursor: str | None) -> ChatList:
    """Newest activity first (last message, else creation), `limit` at a time."""
    query = select(Conversation).where(Conversation.user_id == _user_key(user_id), Conversation.deleted_at.is_(None))
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(Conversation.activity_at < at, and_(Conversation.activity_at == at, Conversation.id < row_id))
        )
    rows = list(
        session.scalars(query.order_by(Conversation.activity_at.desc(), Conversation.id.desc()).limit(limit + 1))
    )
    page = rows[:limit]
    more = len(rows) > limit
    return ChatList(
        chats=[summary(c) for c in page],
        next_cursor=encode_cursor(page[-1].activity_at, page[-1].id) if more else None,
    )


def create_chat(session: Session, user_id: str, title: str | None) -> ChatCreated:
    key = _user_key(user_id)
    if session.get(User, key) is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    now = datetime.now(UTC)
    chat = Conversation(
        user_id=key, title=(title or "").strip() or None, message_count=0, activity_at=now, created_at=now
    )
    session.add(chat)
    session.flush()
    return ChatCreated(id=str(chat.id), title=chat.title, created_at=chat.created_at)


def read_chat(session: Session, user_id: str, chat_id: str, limit: int, cursor: str | None) -> ChatDetail:
    """The newest `limit` messages before the cursor, oldest first; `has_more` = older ones exist."""
    chat = owned(session, user_id, chat_id)
    query = select(Message).where(Message.conversation_id == chat.id)
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(or_(Message.created_at < at, and_(Message.created_at == at, Message.id < row_id)))
    rows = list(session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    page = rows[:limit][::-1]
    return ChatDetail(
        id=str(chat.id),
        title=chat.title,
        messages=[
            MessageOut(id=str(m.id), role=m.role, content=m.content, image_url=m.image_url, created_at=m.created_at)
            for m in page
        ],
        has_more=more,
        next_cursor=encode_cursor(page[0].created_at, page[0].id) if more else None,
        created_at=chat.created_at,
    )


def delete_chat(session: Session, user_id: str, chat_id: str) -> None:
    chat = owned(session, user_id, chat_id)
    chat.deleted_at = datetime.now(UTC)
    session.flush()


# -- messages ----------------------------------------------------------------------------------------


def allowed_hosts(configured: tuple[str, ...], cdn_base_url: str, s3_endpoint_url: str) -> frozenset[str]:
    hosts = set(configured)
    if not hosts:
        for url in (cdn_base_url, s3_endpoint_url):
            if url:
                hosts.add(urlsplit(url).netloc.lower())
    return frozenset(hosts)


def check_image_url(url: str, hosts: frozenset[str]) -> None:
    """Only http(s) URLs on the image hosts: the worker hands nothing else to the vision model."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise BadRequest("image_url is not a URL.", "INVALID_IMAGE_URL") from None
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.username or parts.password:
        raise BadRequest("image_url must be an http(s) URL of an uploaded image.", "INVALID_IMAGE_URL")
    if parts.netloc.lower() not in hosts and (parts.hostname or "") not in hosts:
        raise BadRequest("image_url must point at this service's image storage.", "IMAGE_HOST_NOT_ALLOWED")


def check_model(model: str | None, allowed: tuple[str, ...]) -> None:
    if model is not None and model not in allowed:
        raise Unprocessable(f"model: must be one of {', '.join(allowed)}", "MODEL_NOT_ALLOWED")


def submit_message(
    session: Session,
    jobs: ChatJobs,
    user_id: str,
    chat_id: str,
    body: MessageRequest,
    publish: Callable[[str, dict[str, Any]], None],
) -> MessageAccepted:
    """Create the job (submitted, with its `queued` event) and request the answer. The event joins
    the caller's unit of work (outbox), so it is sent only if the request commits."""
    chat = owned(session, user_id, chat_id)
    message = body.message.strip()
    if not message:
        raise Unprocessable("body.message: must not be blank", "VALIDATION_ERROR")
    job_id = uuid.uuid4().hex
    jobs.create(job_id, user_id, str(chat.id))
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "chat_id": str(chat.id),
        "message": message,
        "image_url": body.image_url,
        "user_location": body.user_location.model_dump() if body.user_location else None,
        "model": body.model,
        "requested_at": datetime.now(UTC).isoformat(),
    }
    try:
        publish(job_id, data)
    except Exception as exc:
        jobs.delete(job_id)
        raise ServiceUnavailable("The message could not be queued; try again.", "CHAT_NOT_QUEUED") from exc
    return MessageAccepted(job_id=job_id, stream_url=f"/api/v1/chat/{job_id}/events", status="submitted")


def owned_job(jobs: ChatJobs, job_id: str, user_id: str) -> None:
    job = jobs.get(job_id)
    if job is None or job.user_id != user_id:  # another user's job is as unknown as a missing one
        raise NotFound("No such chat job.", "CHAT_JOB_NOT_FOUND")
