"""Who is calling: the access token from the `s_access` cookie or `Authorization: Bearer`,
verified, then checked against the Redis revocation keys in one round trip."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from eco2.core.errors import Forbidden, Unauthorized
from eco2.core.tokens import (
    TokenClaims,
    TokenCodec,
    TokenType,
    blacklist_key,
    revoked_before_key,
    session_revoked_key,
)

if TYPE_CHECKING:
    import redis

ACCESS_COOKIE = "s_access"
REFRESH_COOKIE = "s_refresh"


class TokenRevoked(Forbidden):
    default_code = "TOKEN_REVOKED"
    default_detail = "This session was revoked; sign in again."


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def ensure_not_revoked(redis_client: redis.Redis, claims: TokenClaims) -> None:
    """The token itself, its session (refresh family) and every session of its user, in one MGET."""
    keys = [blacklist_key(claims.jti), revoked_before_key(claims.sub)]
    if claims.sid:
        keys.append(session_revoked_key(claims.sid))
    revoked, revoked_before, *session = redis_client.mget(keys)
    if revoked is not None or (session and session[0] is not None):
        raise TokenRevoked()
    if revoked_before is not None and claims.iat <= int(float(revoked_before)):
        raise TokenRevoked()


def verify(
    codec: TokenCodec, redis_client: redis.Redis, token: str | None, token_type: TokenType = "access"
) -> TokenClaims:
    if not token:
        raise Unauthorized()
    claims = codec.verify(token, token_type)
    ensure_not_revoked(redis_client, claims)
    return claims


def revoke(redis_client: redis.Redis, claims: TokenClaims, now: float | None = None) -> bool:
    """Blacklist one token for the rest of its lifetime. False when it already was (reuse)."""
    ttl = claims.seconds_left(now)
    if ttl <= 0:
        return True
    return bool(redis_client.set(blacklist_key(claims.jti), "1", ex=ttl, nx=True))


def revoke_session(redis_client: redis.Redis, session_id: str, max_lifetime: int) -> None:
    """Every token of the session (refresh family) is refused, including ones issued later from it."""
    redis_client.set(session_revoked_key(session_id), str(int(time.time())), ex=max_lifetime)


def revoke_all(redis_client: redis.Redis, user_id: str, max_lifetime: int) -> None:
    """Every token of the user issued up to now is refused (account deletion)."""
    redis_client.set(revoked_before_key(user_id), str(int(time.time())), ex=max_lifetime)
