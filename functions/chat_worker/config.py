"""chat-worker's settings section (read once at startup; see eco2.core.settings.read_section)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WorkerConfig(BaseModel):
    """CHAT_MODELS: the allowed answer models, the first is the default (the chat function checks
    a request's `model` against the same list). LOCATION_URL: the location function's base URL
    (cluster-local in the cluster); in `eco2 dev` it defaults to ECO2_PUBLIC_URL, the gateway."""

    chat_models: str = Field(default="gpt-4o-mini,gpt-4o", min_length=1)
    chat_vision_model: str = Field(default="gpt-4o-mini", min_length=1)
    chat_history_messages: int = Field(default=10, ge=0, le=50)
    chat_max_tokens: int = Field(default=600, ge=16, le=4000)
    chat_offline_token_delay: float = Field(default=0.03, ge=0, le=1)
    chat_lease_seconds: int = Field(default=300, ge=5)
    location_url: str = ""
    eco2_public_url: str = ""
    location_radius: int = Field(default=3000, ge=100, le=50000)
    location_timeout: float = Field(default=3.0, gt=0, le=30)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.chat_models.split(",") if m.strip())

    @property
    def location_base(self) -> str:
        return (self.location_url or self.eco2_public_url).rstrip("/")
