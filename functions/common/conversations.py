"""The chat tables (shared by `chat`, which reads and manages them, and `chat-worker`, which writes
each exchange). Migration: functions/common/migrations/versions/0005_chat.py."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from functions.common.models import Base, utcnow

PREVIEW_CHARS = 100
TITLE_CHARS = 40


class Conversation(Base):
    __tablename__ = "chat_conversations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(200))
    preview: Mapped[str | None] = mapped_column(String(PREVIEW_CHARS))
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column()
    activity_at: Mapped[datetime] = mapped_column(default=utcnow)  # last message, else creation: the list order
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()


class Message(Base):
    __tablename__ = "chat_messages"
    # one user and one assistant message per job: a redelivered request cannot add a second pair
    __table_args__ = (UniqueConstraint("job_id", "role", name="uq_chat_messages_job_role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(2048))
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_chat_conversations_user_activity", Conversation.user_id, Conversation.activity_at, Conversation.id)
Index("ix_chat_messages_conversation_created", Message.conversation_id, Message.created_at, Message.id)


def preview(user_message: str, answer: str) -> str:
    """The first 100 characters of the last exchange (question, then answer), on one line."""
    return " ".join(f"{user_message} {answer}".split())[:PREVIEW_CHARS]


def title(user_message: str, item: str | None = None) -> str:
    """A title from the first exchange: the item asked about, else the question itself, shortened."""
    if item:
        return f"{item} 분리배출"
    text = " ".join(user_message.split())
    if len(text) <= TITLE_CHARS:
        return text or "새 대화"
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0] or text[:TITLE_CHARS]
    return cut.rstrip(" ,.?!") + "…"
