"""Sign-in, refresh and logout rules, free of HTTP.

- `start_authorization`: a single-use `state` in Redis (`oauth:state:{state}`, TTL
  OAUTH_STATE_TTL) holding the provider, the callback URL, the app origin to return to and the
  PKCE verifier; the provider's authorization URL for the app to navigate to.
- `complete_sign_in`: consume the state atomically (GETDEL), exchange the code, read the profile,
  create or update the user, issue the token pair. Every failure becomes a redirect to the app's
  login page; the reason is logged (never a code, token or secret).
- `refresh_session`: rotation — the presented refresh token is revoked before a new pair is
  issued; a token that was already revoked (rotated or logged out) is refused as reused.
- `logout`: revoke whatever verifies, never fail.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eco2.errors import AppError, BadRequest, NotFound, ServiceUnavailable, Unauthorized
from eco2.security import revoke
from eco2.settings import OAuthProviderSettings, Settings
from eco2.tokens import IssuedToken, TokenCodec, TokenType, blacklist_key, revoked_before_key
from functions.auth.providers import (
    ProviderError,
    ProviderProfile,
    is_known,
    make_provider,
    new_code_verifier,
    pkce_challenge,
    validate_redirect_uri,
)
from functions.auth.schemas import Authorization
from functions.common.models import SocialAccount, User

if TYPE_CHECKING:
    import redis

log = logging.getLogger("eco2.auth")

STATE_PREFIX = "oauth:state:"
HOME_FRAGMENT = "/#/home"
FAILURE_FRAGMENT = "/#/login?error=oauth_failed"
_STATE_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_ERROR_CODE_RE = re.compile(r"[^A-Za-z0-9_.-]")


def state_key(state: str) -> str:
    return f"{STATE_PREFIX}{state}"


@dataclass(frozen=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken


@dataclass(frozen=True)
class SignInOutcome:
    """Where to send the browser, and the new session when the sign-in succeeded."""

    location: str
    tokens: TokenPair | None = None
    user_id: str | None = None


class SignInFailed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# -- configuration --------------------------------------------------------------------------------
def provider_config(settings: Settings, name: str) -> OAuthProviderSettings:
    if not is_known(name):
        raise NotFound(f"Unknown sign-in provider {name[:32]!r}; use kakao, google or naver.", "UNKNOWN_PROVIDER")
    config = settings.provider(name)
    if config is None or not config.configured:
        prefix = name.upper()
        raise ServiceUnavailable(
            f"Sign-in with {name} is not configured on this server ({prefix}_CLIENT_ID and the provider URLs).",
            "PROVIDER_NOT_CONFIGURED",
        )
    return config


def resolve_origin(settings: Settings, header: str | None) -> str:
    """The app origin to return to: X-Frontend-Origin when allowed, else the first allowed origin."""
    if header is None or not header.strip():
        if not settings.allowed_origins:
            raise BadRequest("X-Frontend-Origin is required: no ALLOWED_ORIGINS are configured.", "ORIGIN_NOT_ALLOWED")
        return settings.allowed_origins[0]
    origin = header.strip().rstrip("/")
    if origin not in settings.allowed_origins:
        raise BadRequest("X-Frontend-Origin: this origin is not allowed.", "ORIGIN_NOT_ALLOWED")
    return origin


def default_origin(settings: Settings) -> str | None:
    return settings.allowed_origins[0] if settings.allowed_origins else None


# -- step 1: the authorization URL ----------------------------------------------------------------
def start_authorization(
    redis_client: redis.Redis,
    settings: Settings,
    provider_name: str,
    redirect_uri: str | None,
    origin_header: str | None,
    now: datetime | None = None,
) -> Authorization:
    config = provider_config(settings, provider_name)
    callback = validate_redirect_uri(redirect_uri, provider_name)
    origin = resolve_origin(settings, origin_header)
    provider = make_provider(config, settings.oauth_http_timeout)
    now = now or datetime.now(UTC)
    state = secrets.token_urlsafe(32)
    verifier = new_code_verifier() if provider.pkce else None
    record = {
        "provider": provider_name,
        "redirect_uri": callback,
        "origin": origin,
        "code_verifier": verifier,
        "created_at": now.isoformat(),
    }
    ttl = settings.oauth_state_ttl
    if not redis_client.set(state_key(state), json.dumps(record), ex=ttl, nx=True):
        raise ServiceUnavailable("Could not start the sign-in; try again.", "STATE_COLLISION")  # 2^-256
    url = provider.authorization_url(
        state=state,
        redirect_uri=callback,
        code_challenge=pkce_challenge(verifier) if verifier is not None else None,
    )
    return Authorization(
        provider=provider_name, state=state, authorization_url=url, expires_at=now + timedelta(seconds=ttl)
    )


# -- step 2: the callback -------------------------------------------------------------------------
@dataclass(frozen=True)
class _State:
    provider: str
    redirect_uri: str
    origin: str
    code_verifier: str | None


def consume_state(redis_client: redis.Redis, state: str | None) -> _State:
    """Single use: GETDEL, so two callbacks with one state cannot both succeed."""
    if not state or not _STATE_RE.fullmatch(state):
        raise SignInFailed("missing or malformed state")
    raw = redis_client.getdel(state_key(state))
    if raw is None:
        raise SignInFailed("unknown, expired or already used state")
    try:
        record: Any = json.loads(raw)
        return _State(
            provider=str(record["provider"]),
            redirect_uri=str(record["redirect_uri"]),
            origin=str(record["origin"]),
            code_verifier=record.get("code_verifier"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignInFailed("unreadable state record") from None


def complete_sign_in(
    session: Session,
    redis_client: redis.Redis,
    codec: TokenCodec,
    settings: Settings,
    provider_name: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None = None,
    browser_bound: bool = True,
    now: datetime | None = None,
) -> SignInOutcome:
    """Never raises: success and every failure are a place to send the browser.

    `browser_bound` says the callback came from the browser that started the sign-in (its
    state cookie matches): without it a forged callback link could sign a victim into the
    attacker's account (RFC 6749 §10.12)."""
    origin = default_origin(settings)
    try:
        if not is_known(provider_name):
            raise SignInFailed("unknown provider")
        record = consume_state(redis_client, state)
        if record.origin in settings.allowed_origins:
            origin = record.origin
        if record.provider != provider_name:
            raise SignInFailed(f"state was issued for {record.provider}")
        if not browser_bound:
            raise SignInFailed("the state was started in another browser")
        if error:
            raise SignInFailed(f"provider redirected with error={_ERROR_CODE_RE.sub('', error)[:64]}")
        if not code:
            raise SignInFailed("no authorization code")
        config = settings.provider(provider_name)
        if config is None or not config.configured:
            raise SignInFailed("provider not configured")
        provider = make_provider(config, settings.oauth_http_timeout)
        access_token = provider.exchange_code(
            code=code, redirect_uri=record.redirect_uri, code_verifier=record.code_verifier, state=state or ""
        )
        profile = provider.fetch_profile(access_token)
        user = upsert_user(session, profile, now or datetime.now(UTC))
        tokens = issue_pair(codec, str(user.id), provider_name)
    except (SignInFailed, ProviderError) as failure:
        log.warning("oauth sign-in failed", extra={"provider": provider_name[:16], "reason": failure.reason})
        return _failed(session, origin)
    except Exception as exc:  # the browser is mid-redirect: it gets the login page, never a 500
        log.error(
            "oauth sign-in failed unexpectedly",
            extra={"provider": provider_name[:16], "reason": type(exc).__name__},
            exc_info=True,
        )
        return _failed(session, origin)
    log.info("oauth sign-in", extra={"provider": provider_name, "user_id": str(user.id)})
    return SignInOutcome(location=f"{origin}{HOME_FRAGMENT}", tokens=tokens, user_id=str(user.id))


def _failed(session: Session, origin: str | None) -> SignInOutcome:
    session.rollback()
    if origin is None:
        raise BadRequest("The sign-in failed and no app origin is configured to return to.", "OAUTH_FAILED")
    return SignInOutcome(location=f"{origin}{FAILURE_FRAGMENT}")


def upsert_user(session: Session, profile: ProviderProfile, now: datetime) -> User:
    """One user per (provider, provider user id). A first sign-in creates the user and its social
    account; later ones refresh the account's profile and the user's last login. The user's own
    nickname (editable in the app) is only filled when empty."""
    account = _account(session, profile)
    if account is None:
        try:
            with session.begin_nested():
                user = User(
                    nickname=profile.nickname,
                    name=profile.name,
                    email=profile.email,
                    profile_image_url=profile.profile_image_url,
                    last_login_provider=profile.provider,
                    last_login_at=now,
                )
                session.add(user)
                session.flush()
                session.add(
                    SocialAccount(
                        user_id=user.id,
                        provider=profile.provider,
                        provider_user_id=profile.provider_user_id,
                        email=profile.email,
                        nickname=profile.nickname or profile.name,
                        profile_image_url=profile.profile_image_url,
                        last_login_at=now,
                    )
                )
                session.flush()
            return user
        except IntegrityError:  # a concurrent first sign-in of the same account won the race
            account = _account(session, profile)
            if account is None:
                raise
    existing = session.get(User, account.user_id)
    if existing is None:  # cannot happen with the ON DELETE CASCADE, but never sign into nothing
        raise SignInFailed("social account without a user")
    account.last_login_at = now
    if profile.email:
        account.email = existing.email = profile.email
    if profile.nickname or profile.name:
        account.nickname = profile.nickname or profile.name
    if profile.profile_image_url:
        account.profile_image_url = existing.profile_image_url = profile.profile_image_url
    if profile.name:
        existing.name = profile.name
    if not existing.nickname and profile.nickname:
        existing.nickname = profile.nickname
    existing.last_login_at = now
    existing.last_login_provider = profile.provider
    session.flush()
    return existing


def _account(session: Session, profile: ProviderProfile) -> SocialAccount | None:
    return session.scalar(
        select(SocialAccount).where(
            SocialAccount.provider == profile.provider,
            SocialAccount.provider_user_id == profile.provider_user_id,
        )
    )


def issue_pair(codec: TokenCodec, user_id: str, provider: str) -> TokenPair:
    return TokenPair(codec.issue(user_id, "access", provider), codec.issue(user_id, "refresh", provider))


# -- refresh and logout ---------------------------------------------------------------------------
def refresh_session(session: Session, redis_client: redis.Redis, codec: TokenCodec, token: str | None) -> TokenPair:
    """Rotate: the presented refresh token is revoked (SET NX), then a new pair is issued. A token
    already revoked — rotated before, or logged out — is refused with REFRESH_TOKEN_REUSED."""
    if not token:
        raise Unauthorized("No refresh token; sign in again.", "REFRESH_TOKEN_MISSING")
    claims = codec.verify(token, "refresh")  # 401 INVALID_TOKEN / TOKEN_EXPIRED / INVALID_TOKEN_TYPE
    revoked, revoked_before = redis_client.mget([blacklist_key(claims.jti), revoked_before_key(claims.sub)])
    if revoked_before is not None and claims.iat <= int(float(revoked_before)):
        raise Unauthorized("This session was revoked; sign in again.", "REFRESH_TOKEN_REVOKED")
    if revoked is not None or not revoke(redis_client, claims):
        log.warning("refresh token reused", extra={"user_id": claims.sub})
        raise Unauthorized("This refresh token was already used or revoked; sign in again.", "REFRESH_TOKEN_REUSED")
    try:
        key = uuid.UUID(claims.sub)
    except ValueError:
        raise Unauthorized() from None
    user = session.get(User, key)
    if user is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    return issue_pair(codec, str(user.id), claims.provider)


def logout(redis_client: redis.Redis, codec: TokenCodec, tokens: dict[TokenType, list[str]]) -> int:
    """Revoke every presented token that verifies; invalid, expired or absent ones are ignored and
    nothing here raises (logout must never answer 401). Returns how many were revoked."""
    revoked = 0
    for token_type, candidates in tokens.items():
        for token in candidates:
            if not token:
                continue
            try:
                claims = codec.verify(token, token_type)
            except AppError:
                continue
            except Exception:  # a malformed token must not fail a logout
                continue
            try:
                revoke(redis_client, claims)
                revoked += 1
            except Exception as exc:
                log.warning("logout could not revoke a token", extra={"reason": type(exc).__name__})
    return revoked
