"""JWT (RFC 7519) with HMAC algorithms: issue and verify access/refresh tokens.

A small codec instead of PyJWT: PyJWT imports `cryptography` (~120 ms) on every cold start, and
this project only ever needs HMAC. Verification is strict: the header's `alg` must equal the
configured algorithm (so `none` and algorithm confusion are refused), the signature is compared in
constant time, and `exp`/`nbf`/`iss`/`aud`/`type` are all required and checked. The test suite
cross-checks tokens both ways against PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast

from eco2.core.errors import Unauthorized
from eco2.core.settings import Settings

TokenType = Literal["access", "refresh"]
_CACHE_SIZE = 4096  # verified tokens' claims kept per process; type, exp and nbf are re-checked every time
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class InvalidToken(Unauthorized):
    default_code = "INVALID_TOKEN"
    default_detail = "The session token is invalid; sign in again."


class ExpiredToken(Unauthorized):
    default_code = "TOKEN_EXPIRED"
    default_detail = "The session expired; refresh it or sign in again."


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    jti: str
    type: TokenType
    iat: int
    nbf: int
    exp: int
    provider: str
    sid: str = ""  # the session (refresh family) the token belongs to; "" for tokens issued before families

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, int(self.exp - (time.time() if now is None else now)))


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: TokenClaims


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise InvalidToken()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken() from None


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.jwt_secret.get().encode()
        self._alg = settings.jwt_algorithm
        self._hash = _HASHES[self._alg]
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._verified: dict[str, TokenClaims] = {}  # insertion-ordered; oldest evicted first
        self._ttl: dict[TokenType, int] = {
            "access": settings.access_token_ttl,
            "refresh": settings.refresh_token_ttl,
        }

    def ttl(self, token_type: TokenType) -> int:
        return self._ttl[token_type]

    def issue(
        self,
        user_id: str,
        token_type: TokenType,
        provider: str,
        now: float | None = None,
        *,
        session_id: str = "",
        jti: str | None = None,
    ) -> IssuedToken:
        """A signed token. The same (claims, `now`, `jti`) always give the same bytes, so a token
        can be re-issued from its recorded claims (refresh rotation's grace window)."""
        issued_at = int(time.time() if now is None else now)
        claims = TokenClaims(
            sub=user_id,
            jti=jti or uuid.uuid4().hex,
            type=token_type,
            iat=issued_at,
            nbf=issued_at,
            exp=issued_at + self._ttl[token_type],
            provider=provider,
            sid=session_id,
        )
        payload: dict[str, Any] = {
            "sub": claims.sub,
            "jti": claims.jti,
            "type": claims.type,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "exp": claims.exp,
            "iss": self._issuer,
            "aud": self._audience,
            "provider": provider,
        }
        if session_id:
            payload["sid"] = session_id
        return IssuedToken(self._encode(payload), claims)

    def _encode(self, payload: dict[str, Any]) -> str:
        header = _b64encode(json.dumps({"alg": self._alg, "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode("ascii")
        signature = hmac.new(self._key, signing_input, self._hash).digest()
        return f"{header}.{body}.{_b64encode(signature)}"

    def verify(
        self, token: str, expected_type: TokenType, now: float | None = None, *, allow_expired: bool = False
    ) -> TokenClaims:
        """Decode and check everything; raises InvalidToken / ExpiredToken (both 401).
        `allow_expired` skips only the `exp` check (logout revokes the session of an expired token)."""
        now = time.time() if now is None else now
        claims = self._verified.get(token)
        if claims is None:
            claims = self._claims(self._decode(token))
            self._verified[token] = claims
            if len(self._verified) > _CACHE_SIZE:
                with contextlib.suppress(StopIteration, RuntimeError):  # another thread changed it meanwhile
                    self._verified.pop(next(iter(self._verified)), None)
        if claims.type != expected_type:
            raise InvalidToken(f"A {expected_type} token is required here.", "INVALID_TOKEN_TYPE")
        if claims.exp + self._leeway <= now and not allow_expired:
            raise ExpiredToken()
        if claims.nbf - self._leeway > now:
            raise InvalidToken("The session token is not valid yet.", "TOKEN_NOT_YET_VALID")
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        """Signature and structure."""
        if not token or len(token) > 4096 or token.count(".") != 2:
            raise InvalidToken()
        header_b64, body_b64, signature_b64 = token.split(".")
        try:
            header = json.loads(_b64decode(header_b64))
        except ValueError:
            raise InvalidToken() from None
        if not isinstance(header, dict) or header.get("alg") != self._alg:
            raise InvalidToken()
        expected = hmac.new(self._key, f"{header_b64}.{body_b64}".encode("ascii"), self._hash).digest()
        if not hmac.compare_digest(expected, _b64decode(signature_b64)):
            raise InvalidToken()
        try:
            payload = json.loads(_b64decode(body_b64))
        except ValueError:
            raise InvalidToken() from None
        if not isinstance(payload, dict):
            raise InvalidToken()
        return payload

    def _claims(self, payload: dict[str, Any]) -> TokenClaims:
        """The claims of a signed payload, checked for what depends only on the token (types,
        issuer, audience): the result is cached with the signature. What depends on the call
        (the expected type, `exp` and `nbf` against now) is checked on every `verify`."""
        for name in ("sub", "jti", "type", "iss", "aud"):
            if not isinstance(payload.get(name), str | list) or not payload.get(name):
                raise InvalidToken()
        for name in ("exp", "nbf", "iat"):
            if not isinstance(payload.get(name), int | float) or isinstance(payload.get(name), bool):
                raise InvalidToken()
        audience = payload["aud"]
        audiences = audience if isinstance(audience, list) else [audience]
        if payload["iss"] != self._issuer or self._audience not in audiences:
            raise InvalidToken()
        return TokenClaims(
            sub=str(payload["sub"]),
            jti=str(payload["jti"]),
            type=cast("TokenType", payload["type"]),  # compared with the expected type on every verify
            iat=int(payload["iat"]),
            nbf=int(payload["nbf"]),
            exp=int(payload["exp"]),
            provider=str(payload.get("provider", "")),
            sid=str(payload.get("sid") or ""),
        )


def blacklist_key(jti: str) -> str:
    return f"blacklist:{jti}"


def revoked_before_key(user_id: str) -> str:
    """Tokens of this user issued at or before the stored epoch second are revoked (account deletion)."""
    return f"revoked_before:{user_id}"


def session_revoked_key(session_id: str) -> str:
    """Every token of this session (refresh family) is revoked: logout, or a refresh token reused."""
    return f"revoked_session:{session_id}"
