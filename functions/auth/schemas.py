"""The auth function's HTTP shapes (API.md "auth")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer


class AuthorizeQuery(BaseModel):
    # optional here so that a missing value is the same 400 INVALID_REDIRECT_URI as a bad one
    redirect_uri: str | None = Field(default=None, description="The callback URL: /api/v1/auth/{provider}/callback")


class CallbackQuery(BaseModel):
    """Everything optional: a callback never answers a validation error, only a redirect."""

    code: str | None = None
    state: str | None = None
    error: str | None = None
    error_description: str | None = None


class Authorization(BaseModel):
    provider: str
    state: str
    authorization_url: str
    expires_at: datetime


class AuthorizeResponse(BaseModel):
    success: Literal[True] = True
    data: Authorization


class Session(BaseModel):
    user_id: str
    provider: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    # only for callers that sent the refresh token in X-Refresh-Token (not browsers: cookies stay HttpOnly)
    access_token: str | None = None
    refresh_token: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_tokens(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("access_token", "refresh_token"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class RefreshResponse(BaseModel):
    success: Literal[True] = True
    data: Session


class Message(BaseModel):
    message: str


class LogoutResponse(BaseModel):
    success: Literal[True] = True
    data: Message
