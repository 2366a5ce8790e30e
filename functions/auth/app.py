"""auth function: thin handlers (decode → service → encode). API.md "auth"."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from eco2 import Context, Function
from eco2.core.security import ACCESS_COOKIE, REFRESH_COOKIE, bearer
from functions.auth import service
from functions.auth.config import AuthConfig
from functions.auth.schemas import (
    AuthorizeQuery,
    AuthorizeResponse,
    CallbackQuery,
    LogoutResponse,
    Message,
    RefreshResponse,
    Session,
)

if TYPE_CHECKING:
    from flask import Request

fn = Function(
    "auth",
    uses=("db", "redis", "jwt"),
    description="Social sign-in (Kakao, Google, Naver), token refresh and logout.",
    config=AuthConfig,
)
OAUTH_RATE = "30/minute"  # sign-in start and callback, per client address


def _dev_sign_in_allowed(env: Mapping[str, str]) -> bool:
    """The development sign-in, decided exactly as the auth function's settings decide it."""
    from eco2.core.settings import Settings, SettingsError
    from functions.auth.devprovider import dev_provider_allowed

    try:
        return dev_provider_allowed(Settings.from_env(env))
    except SettingsError:
        return False  # the functions refuse to start with these settings and say why


def _dev_sign_in_env(base_url: str, env: Mapping[str, str]) -> Mapping[str, str]:
    from functions.auth.devprovider import dev_provider_env

    return dev_provider_env(base_url) if _dev_sign_in_allowed(env) else {}


@fn.dev_mount("/dev/oauth", env=_dev_sign_in_env)
def dev_sign_in(env: Mapping[str, str]) -> object | None:
    """development sign-in for Kakao/Google/Naver (no real account needed)"""
    if not _dev_sign_in_allowed(env):
        return None
    from functions.auth.devprovider import make_dev_provider

    return make_dev_provider(env=env)


REFRESH_HEADER = "X-Refresh-Token"


def _request(ctx: Context) -> Request:
    assert ctx.request is not None  # HTTP routes always carry their request
    return ctx.request


STATE_COOKIE = "s_oauth_state"


def _set_session_cookies(ctx: Context, tokens: service.TokenPair) -> None:
    codec = ctx.clients.tokens
    ctx.set_cookie(ACCESS_COOKIE, tokens.access.token, codec.ttl("access"))
    ctx.set_cookie(REFRESH_COOKIE, tokens.refresh.token, codec.ttl("refresh"))


def _config(ctx: Context) -> AuthConfig:
    config: AuthConfig = ctx.config
    return config


@fn.get("/api/v1/auth/{provider}", query=AuthorizeQuery, response=AuthorizeResponse, rate=OAUTH_RATE)
def authorize(ctx: Context, provider: str, query: AuthorizeQuery) -> AuthorizeResponse:
    """Start a sign-in: a single-use state and the provider's authorization URL."""
    origin = _request(ctx).headers.get("X-Frontend-Origin")
    callbacks = _config(ctx).callback_urls(provider)
    config = _config(ctx)
    data = service.start_authorization(ctx.redis, ctx.settings, config, provider, query.redirect_uri, origin, callbacks)
    # binds the sign-in to this browser: the callback must come back with the same cookie
    ctx.set_cookie(STATE_COOKIE, data.state, config.oauth_state_ttl)
    ctx.headers["Cache-Control"] = "no-store"
    return AuthorizeResponse(data=data)


@fn.get("/api/v1/auth/{provider}/callback", query=CallbackQuery, rate=OAUTH_RATE)
def callback(ctx: Context, provider: str, query: CallbackQuery) -> Response:
    """The provider sends the browser here: sign in, set the cookies, redirect to the app."""
    cookie = _request(ctx).cookies.get(STATE_COOKIE, "")
    bound = bool(cookie and query.state) and hmac.compare_digest(cookie, query.state or "")
    ctx.delete_cookie(STATE_COOKIE)
    outcome = service.complete_sign_in(
        ctx.db,
        ctx.redis,
        ctx.clients.tokens,
        ctx.settings,
        _config(ctx),
        provider,
        code=query.code,
        state=query.state,
        error=query.error,
        browser_bound=bound,
    )
    if outcome.tokens is not None:
        _set_session_cookies(ctx, outcome.tokens)
    response = redirect(outcome.location, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


@fn.post("/api/v1/auth/refresh", response=RefreshResponse)
def refresh(ctx: Context) -> RefreshResponse:
    """Rotate the refresh token: a new pair of cookies (the same pair again within the reuse grace window)."""
    request = _request(ctx)
    from_header = bearer(request.headers.get(REFRESH_HEADER))
    token = request.cookies.get(REFRESH_COOKIE) or from_header
    grace = _config(ctx).refresh_reuse_grace_seconds
    tokens = service.refresh_session(ctx.db, ctx.redis, ctx.clients.tokens, token, grace)
    _set_session_cookies(ctx, tokens)
    ctx.headers["Cache-Control"] = "no-store"
    non_browser = from_header is not None and token == from_header
    return RefreshResponse(
        data=Session(
            user_id=tokens.access.claims.sub,
            provider=tokens.access.claims.provider,
            access_expires_at=_at(tokens.access.claims.exp),
            refresh_expires_at=_at(tokens.refresh.claims.exp),
            access_token=tokens.access.token if non_browser else None,
            refresh_token=tokens.refresh.token if non_browser else None,
        )
    )


@fn.post("/api/v1/auth/logout", response=LogoutResponse)
def logout(ctx: Context) -> LogoutResponse:
    """Revoke the session (from either token) and both tokens, clear the cookies; never 401."""
    request = _request(ctx)
    service.logout(
        ctx.redis,
        ctx.clients.tokens,
        {
            "access": [
                request.cookies.get(ACCESS_COOKIE, ""),
                bearer(request.headers.get("Authorization")) or "",
            ],
            "refresh": [
                request.cookies.get(REFRESH_COOKIE, ""),
                bearer(request.headers.get(REFRESH_HEADER)) or "",
            ],
        },
    )
    ctx.delete_cookie(ACCESS_COOKIE)
    ctx.delete_cookie(REFRESH_COOKIE)
    ctx.headers["Cache-Control"] = "no-store"
    return LogoutResponse(data=Message(message="Signed out."))


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
