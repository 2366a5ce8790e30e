from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest

from eco2.core.settings import Settings
from eco2.core.tokens import ExpiredToken, InvalidToken, TokenCodec

SECRET = "unit-secret-0123456789-0123456789-0123"


def codec(**env: str) -> TokenCodec:
    return TokenCodec(Settings.from_env({"JWT_SECRET": SECRET, **env}))


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_round_trip_and_claims() -> None:
    issued = codec().issue("u1", "access", "google")
    claims = codec().verify(issued.token, "access")
    assert (claims.sub, claims.type, claims.provider) == ("u1", "access", "google")
    assert claims.exp - claims.iat == 3600


def test_interoperates_with_pyjwt() -> None:
    token = codec().issue("u1", "refresh", "kakao").token
    decoded = pyjwt.decode(token, SECRET, algorithms=["HS256"], audience="eco2-app", issuer="eco2")
    assert decoded["type"] == "refresh" and decoded["sub"] == "u1"
    now = int(time.time())
    foreign = pyjwt.encode(
        {
            "sub": "u2",
            "jti": "j",
            "type": "access",
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "iss": "eco2",
            "aud": "eco2-app",
        },
        SECRET,
        algorithm="HS256",
    )
    assert codec().verify(foreign, "access").sub == "u2"


def test_rejections() -> None:
    c = codec()
    token = c.issue("u1", "access", "kakao").token
    header, body, sig = token.split(".")
    with pytest.raises(ExpiredToken):
        c.verify(token, "access", now=time.time() + 3600 + 11)
    c.verify(token, "access", now=time.time() + 3600 + 5)  # within leeway
    with pytest.raises(InvalidToken):
        c.verify(f"{header}.{body}.{sig[:-2]}AA", "access")
    with pytest.raises(InvalidToken):
        codec(JWT_SECRET="another-secret-0123456789-0123456789-x").verify(token, "access")
    with pytest.raises(InvalidToken):
        c.verify(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{body}.", "access")
    with pytest.raises(InvalidToken):
        c.verify(f"{header}.{b64({'sub': 'admin'})}.{sig}", "access")
    with pytest.raises(InvalidToken) as info:
        c.verify(c.issue("u1", "refresh", "kakao").token, "access")
    assert info.value.code == "INVALID_TOKEN_TYPE"
    with pytest.raises(InvalidToken):
        codec(JWT_AUDIENCE="other").verify(token, "access")
    with pytest.raises(InvalidToken):
        codec(JWT_ISSUER="other").verify(token, "access")
    for garbage in ("", "a.b", "a.b.c", "....", "x" * 5000, "eyJ.eyJ.sig!"):
        with pytest.raises(InvalidToken):
            c.verify(garbage, "access")


def test_not_before() -> None:
    c = codec()
    future = c.issue("u1", "access", "kakao", now=time.time() + 120).token
    with pytest.raises(InvalidToken) as info:
        c.verify(future, "access")
    assert info.value.code == "TOKEN_NOT_YET_VALID"


def test_session_id_claim() -> None:
    c = codec()
    issued = c.issue("u1", "refresh", "kakao", session_id="s-1")
    assert issued.claims.sid == "s-1" and c.verify(issued.token, "refresh").sid == "s-1"
    assert pyjwt.decode(issued.token, SECRET, algorithms=["HS256"], audience="eco2-app")["sid"] == "s-1"
    legacy = c.issue("u1", "refresh", "kakao")
    assert "sid" not in pyjwt.decode(legacy.token, SECRET, algorithms=["HS256"], audience="eco2-app")
    assert c.verify(legacy.token, "refresh").sid == ""


def test_reissue_from_recorded_claims_gives_the_same_token() -> None:
    """Refresh rotation's grace window re-signs the recorded successor: it must be byte-identical."""
    c = codec()
    first = c.issue("u1", "access", "naver", now=1_800_000_000, session_id="s", jti="j1")
    again = c.issue("u1", "access", "naver", now=1_800_000_000, session_id="s", jti="j1")
    assert first.token == again.token and first.claims == again.claims
    assert c.issue("u1", "access", "naver", now=1_800_000_000, session_id="s", jti="j2").token != first.token


def test_allow_expired_skips_only_exp() -> None:
    c = codec()
    expired = c.issue("u1", "access", "kakao", now=time.time() - 7200, session_id="s").token
    with pytest.raises(ExpiredToken):
        c.verify(expired, "access")
    assert c.verify(expired, "access", allow_expired=True).sid == "s"
    header, body, sig = expired.split(".")
    with pytest.raises(InvalidToken):  # the signature still counts
        c.verify(f"{header}.{body}.{sig[:-2]}AA", "access", allow_expired=True)
    with pytest.raises(InvalidToken):  # and the type
        c.verify(expired, "refresh", allow_expired=True)


def test_a_token_verified_once_is_checked_again_for_type_and_time() -> None:
    """The claims are cached with the signature; the type, `exp` and `nbf` are not."""
    c = codec()
    now = time.time()
    issued = c.issue("u1", "access", "kakao", now=now, session_id="s")
    assert c.verify(issued.token, "access", now=now) == issued.claims  # now cached
    assert c.verify(issued.token, "access", now=now) == issued.claims
    with pytest.raises(InvalidToken) as wrong_type:
        c.verify(issued.token, "refresh", now=now)
    assert wrong_type.value.code == "INVALID_TOKEN_TYPE"
    with pytest.raises(ExpiredToken):
        c.verify(issued.token, "access", now=now + 3600 + 11)
    with pytest.raises(InvalidToken) as early:
        c.verify(issued.token, "access", now=now - 60)
    assert early.value.code == "TOKEN_NOT_YET_VALID"
    assert c.verify(issued.token, "access", now=now + 3600 + 11, allow_expired=True).sid == "s"


def test_a_signed_token_with_bad_claims_is_refused_every_time() -> None:
    """A payload that fails the claims checks is never cached as verified."""
    now = int(time.time())
    claims = {"sub": "u2", "jti": "j", "type": "access", "iat": now, "nbf": now, "exp": now + 60, "aud": "eco2-app"}
    for payload in ({**claims, "iss": "someone-else"}, {**claims, "iss": "eco2", "exp": "soon"}):
        token = pyjwt.encode(payload, SECRET, algorithm="HS256")
        c = codec()
        for _ in range(2):
            with pytest.raises(InvalidToken):
                c.verify(token, "access")
