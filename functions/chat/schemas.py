"""The chat function's HTTP shapes (API.md "chat") and its settings section."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 2000


class ChatConfig(BaseModel):
    """CHAT_MODELS: the models a request may name (comma list; the first is the default);
    CHAT_IMAGE_HOSTS: where an attached image may live (default: the CDN and S3 endpoint hosts)."""

    chat_models: str = Field(default="gpt-4o-mini,gpt-4o", min_length=1)
    chat_image_hosts: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.chat_models.split(",") if m.strip())

    @property
    def image_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.chat_image_hosts.split(",") if h.strip())


class ListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=300)


class MessagesQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=300)


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str | None = Field(default=None, max_length=200)


class ChatSummary(BaseModel):
    id: str
    title: str | None
    preview: str | None
    message_count: int
    last_message_at: datetime | None
    created_at: datetime


class ChatList(BaseModel):
    chats: list[ChatSummary]
    next_cursor: str | None


class ChatCreated(BaseModel):
    id: str
    title: str | None
    created_at: datetime


class MessageOut(BaseModel):
    id: str
    role: str
    content: str
    image_url: str | None
    created_at: datetime


class ChatDetail(BaseModel):
    id: str
    title: str | None
    messages: list[MessageOut]
    has_more: bool
    next_cursor: str | None
    created_at: datetime


class Location(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    image_url: str | None = Field(default=None, max_length=2048)
    user_location: Location | None = None
    model: str | None = Field(default=None, max_length=100)


class MessageAccepted(BaseModel):
    job_id: str
    stream_url: str
    status: str = "submitted"
