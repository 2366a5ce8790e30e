"""The users function's HTTP shapes (API.md "users")."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Profile(BaseModel):
    username: str = Field(min_length=1, description="The display name; never empty (the app checks it).")
    nickname: str
    phone_number: str | None
    provider: str | None
    last_login_at: datetime | None


class ProfilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nickname: str | None = Field(default=None, min_length=1, max_length=120)
    phone_number: str | None = Field(default=None, max_length=32)


class OwnedCharacter(BaseModel):
    id: str
    code: str
    name: str
    type: str
    dialog: str
    acquired_at: datetime
