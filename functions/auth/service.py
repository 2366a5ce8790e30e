"""Sign-in, refresh and logout rules, free of HTTP.

- `start_authorization`: a single-use `state` in Redis (`oauth:state:{state}`, TTL
  OAUTH_STATE_TTL) holding the provider, the callback URL, the app origin to return to and the
  PKCE verifier; the provider's authorization URL for the app to navigate to.
- `complete_sign_in`: consume the state atomically (GETDEL), exchange the code, read the profile,
  create or update the user, issue the token pair. Every failure becomes a redirect to the app's
  login page; the reason is logged (never a code, token or secret).
- `refresh_session` / `rotate`: rotation with a reuse grace window. Each sign-in starts a session
  (the refresh family, claim `sid` in both tokens). The first use of a refresh token records its
  successor pair; a use within REFRESH_REUSE_GRACE_SECONDS of that gets the same pair (the app
  refreshes from several requests at once); a use after it revokes the whole session.
- `logout`: revoke the session of whatever verifies (either token is enough), never fail.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eco2.core.errors import AppError, BadRequest, NotFound, ServiceUnavailable, Unauthorized
from eco2.core.security import revoke, revoke_session
from eco2.core.settings import Settings
from eco2.core.tokens import (
    IssuedToken,
    TokenClaims,
    TokenCodec,
    TokenType,
    blacklist_key,
    revoked_before_key,
    session_revoked_key,
)
from functions.auth.config import AuthConfig
from functions.auth.providers import (
    OAuthProviderSettings,
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
def provider_config(settings: AuthConfig, name: str) -> OAuthProviderSettings:
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
    config_section: AuthConfig,
    provider_name: str,
    redirect_uri: str | None,
    origin_header: str | None,
    callbacks: tuple[str, ...],
    now: datetime | None = None,
) -> Authorization:
    """`callbacks`: the callback URLs configured for this provider; `redirect_uri` must be one of them."""
    config = provider_config(config_section, provider_name)
    callback = validate_redirect_uri(redirect_uri, provider_name)
    if not callbacks:
        prefix = provider_name.upper()
        raise ServiceUnavailable(
            f"Sign-in with {provider_name} has no callback URL configured on this server "
            f"({prefix}_REDIRECT_URIS, or ECO2_PUBLIC_URL).",
            "PROVIDER_NOT_CONFIGURED",
        )
    if callback not in callbacks:  # exact match only (RFC 9700 §4.1.3): the code must come back here
        raise BadRequest("redirect_uri: not a callback URL configured for this server", "INVALID_REDIRECT_URI")
    origin = resolve_origin(settings, origin_header)
    provider = make_provider(config, config_section.oauth_http_timeout)
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
    ttl = config_section.oauth_state_ttl
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
    config_section: AuthConfig,
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
        config = config_section.provider(provider_name)
        if config is None or not config.configured:
            raise SignInFailed("provider not configured")
        provider = make_provider(config, config_section.oauth_http_timeout)
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


def issue_pair(codec: TokenCodec, user_id: str, provider: str, session_id: str | None = None) -> TokenPair:
    """A new pair; a sign-in starts a new session (refresh family), a rotation continues its own."""
    sid = session_id or uuid.uuid4().hex
    return TokenPair(
        codec.issue(user_id, "access", provider, session_id=sid),
        codec.issue(user_id, "refresh", provider, session_id=sid),
    )


# -- refresh and logout ---------------------------------------------------------------------------
ROTATED_PREFIX = "refresh:rotated:"
_MAX_ATTEMPTS = 50  # optimistic transaction retries; each retry means another caller just wrote


def rotated_key(jti: str) -> str:
    """The pair a refresh token was rotated into, and when (JSON claims only, never a token)."""
    return f"{ROTATED_PREFIX}{jti}"


def _successor(codec: TokenCodec, claims: TokenClaims, record: dict[str, Any]) -> TokenPair:
    """The pair recorded at rotation, signed again: the same bytes every caller of the window gets."""
    sid, iat = str(record["sid"]), int(record["iat"])
    return TokenPair(
        codec.issue(claims.sub, "access", claims.provider, now=iat, session_id=sid, jti=str(record["access"])),
        codec.issue(claims.sub, "refresh", claims.provider, now=iat, session_id=sid, jti=str(record["refresh"])),
    )


def rotate(
    redis_client: redis.Redis, codec: TokenCodec, claims: TokenClaims, grace_seconds: int, now: float | None = None
) -> TokenPair:
    """Refresh rotation with a reuse grace window, atomic across callers and pods.

    The first use of a refresh token records its successor under `refresh:rotated:{jti}` (and
    blacklists it) in one WATCH/MULTI transaction, so of any number of parallel callers exactly
    one writes and the rest retry and read the record. A use within `grace_seconds` of the
    rotation gets that same successor pair; a use after it revokes the whole session (refresh
    family): its access and refresh tokens, including the successor. `grace_seconds=0`: every
    reuse revokes."""
    from redis.exceptions import WatchError

    moment = time.time() if now is None else now
    ttl = max(1, claims.seconds_left(moment))
    family_ttl = codec.ttl("refresh") + 60
    keys = [rotated_key(claims.jti), blacklist_key(claims.jti), revoked_before_key(claims.sub)]
    if claims.sid:
        keys.append(session_revoked_key(claims.sid))
    with redis_client.pipeline(transaction=True) as pipe:
        for _ in range(_MAX_ATTEMPTS):
            try:
                pipe.watch(*keys)  # type: ignore[no-untyped-call]
                raw, blacklisted, revoked_before, *family = pipe.mget(keys)
                if revoked_before is not None and claims.iat <= int(float(revoked_before)):
                    raise Unauthorized("This session was revoked; sign in again.", "REFRESH_TOKEN_REVOKED")
                if family and family[0] is not None:
                    raise Unauthorized(
                        "This session was signed out or revoked; sign in again.", "REFRESH_TOKEN_REVOKED"
                    )
                if raw is None:
                    if blacklisted is not None:  # revoked one by one (logout of a token without a session)
                        raise Unauthorized(
                            "This refresh token was already used or revoked; sign in again.", "REFRESH_TOKEN_REUSED"
                        )
                    record = {
                        "sid": claims.sid or uuid.uuid4().hex,  # a token from before sessions starts one now
                        "at": moment,  # when it was rotated (the grace window's start)
                        "iat": int(moment),  # the successor's issue time
                        "access": uuid.uuid4().hex,
                        "refresh": uuid.uuid4().hex,
                    }
                    pipe.multi()
                    pipe.set(rotated_key(claims.jti), json.dumps(record), ex=ttl)
                    pipe.set(blacklist_key(claims.jti), "1", ex=ttl)
                    pipe.execute()
                    return _successor(codec, claims, record)
                record = json.loads(raw)
                if grace_seconds > 0 and moment - float(record["at"]) <= grace_seconds:
                    pipe.unwatch()
                    log.info("refresh token reused within the grace window", extra={"user_id": claims.sub})
                    return _successor(codec, claims, record)
                pipe.multi()
                pipe.set(session_revoked_key(str(record["sid"])), str(int(moment)), ex=family_ttl)
                pipe.execute()
                log.warning("refresh token reused: session revoked", extra={"user_id": claims.sub})
                raise Unauthorized(
                    "This refresh token was already used; the session is revoked, sign in again.",
                    "REFRESH_TOKEN_REUSED",
                )
            except WatchError:
                continue
    raise ServiceUnavailable("Could not refresh the session; try again.", "REFRESH_CONTENDED")


def refresh_session(
    session: Session,
    redis_client: redis.Redis,
    codec: TokenCodec,
    token: str | None,
    grace_seconds: int,
    now: float | None = None,
) -> TokenPair:
    """Verify the refresh token, rotate it (`rotate`), and check the user still exists."""
    if not token:
        raise Unauthorized("No refresh token; sign in again.", "REFRESH_TOKEN_MISSING")
    claims = codec.verify(token, "refresh")  # 401 INVALID_TOKEN / TOKEN_EXPIRED / INVALID_TOKEN_TYPE
    try:
        key = uuid.UUID(claims.sub)
    except ValueError:
        raise Unauthorized() from None
    tokens = rotate(redis_client, codec, claims, grace_seconds, now)
    user = session.get(User, key)
    if user is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    return tokens


def logout(redis_client: redis.Redis, codec: TokenCodec, tokens: dict[TokenType, list[str]]) -> int:
    """Revoke the session (refresh family) of every presented token that verifies — expired ones
    included, their session may still be alive — and the token itself. Invalid or absent ones are
    ignored and nothing here raises (logout must never answer 401). Returns how many sessions or
    tokens were revoked."""
    revoked = 0
    sessions: set[str] = set()
    for token_type, candidates in tokens.items():
        for token in candidates:
            if not token:
                continue
            try:
                claims = codec.verify(token, token_type, allow_expired=True)
            except AppError:
                continue
            except Exception:  # a malformed token must not fail a logout
                continue
            try:
                if claims.sid and claims.sid not in sessions:
                    revoke_session(redis_client, claims.sid, codec.ttl("refresh") + 60)
                    sessions.add(claims.sid)
                    revoked += 1
                if revoke(redis_client, claims):
                    revoked += 1
            except Exception as exc:
                log.warning("logout could not revoke a token", extra={"reason": type(exc).__name__})
    return revoked
