"""Sessions on real PostgreSQL and Redis: refresh rotation with its reuse grace window under truly
parallel requests (two auth "pods" on real ports), reuse after the window, logout from either
token, and the JWT attacks refused by another function (`users` GET /api/v1/users/me)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
import pytest
import redis as redis_lib
import requests

from eco2.serving.testing import FunctionClient
from tests.conftest import ROOT
from tests.integration.test_auth import (
    CALLBACK_ENV,
    assert_error,
    b64,
    me,
    post,
    session_of,
    sign_in,
)
from tests.support.oauth_server import OAuthServer, oauth_server
from tests.support.servers import Served, serve_function

pytestmark = pytest.mark.integration

REFRESH = "/api/v1/auth/refresh"
PARALLEL = 8
ROUNDS = 4


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider_server() -> Iterator[OAuthServer]:
    with oauth_server(CALLBACK_ENV) as server:
        yield server


@pytest.fixture
def auth_env(base_env: dict[str, str], provider_server: OAuthServer) -> dict[str, str]:
    provider_server.reset()
    return {**base_env, "OAUTH_HTTP_TIMEOUT": "1", **CALLBACK_ENV, **provider_server.env()}


@pytest.fixture
def make_auth(
    function_client: Callable[..., FunctionClient], auth_env: dict[str, str]
) -> Callable[..., FunctionClient]:
    def make(**extra: str) -> FunctionClient:
        return function_client("auth", **{**auth_env, **extra})

    return make


@pytest.fixture
def auth(make_auth: Callable[..., FunctionClient]) -> FunctionClient:
    return make_auth()


@pytest.fixture
def users(function_client: Callable[..., FunctionClient]) -> FunctionClient:
    return function_client("users")


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def pods(auth_env: dict[str, str]) -> Iterator[Callable[..., list[Served]]]:
    """pods(REFRESH_REUSE_GRACE_SECONDS="30") -> two auth functions on real ports, one Redis."""
    started: list[Served] = []

    def make(**extra: str) -> list[Served]:
        for _ in range(2):
            started.append(serve_function("auth", {**auth_env, **extra}, ROOT))
        return started[-2:]

    yield make
    for served in started:
        served.close()


# -- helpers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None
    pair: tuple[str, str] | None
    began: float
    ended: float


def parallel_refresh(pods: list[Served], refresh: str, n: int = PARALLEL) -> list[Answer]:
    """`n` refreshes with one token, released together by a barrier, spread over the pods."""
    barrier = threading.Barrier(n)

    def one(index: int) -> Answer:
        url = pods[index % len(pods)].url.rstrip("/") + REFRESH
        with requests.Session() as browser:
            barrier.wait()
            began = time.monotonic()
            response = browser.post(url, cookies={"s_refresh": refresh}, timeout=10)
            ended = time.monotonic()
        pair = None
        if "s_access" in response.cookies and "s_refresh" in response.cookies:
            pair = (response.cookies["s_access"], response.cookies["s_refresh"])
        code = None if response.status_code == 200 else response.json()["code"]
        return Answer(response.status_code, code, pair, began, ended)

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    # truly parallel: every request was sent before the first answer came back
    assert max(a.began for a in answers) < min(a.ended for a in answers), "the requests did not overlap"
    return answers


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def refresh_with(auth: FunctionClient, refresh: str) -> Any:
    return post(auth, REFRESH, {"s_refresh": refresh})


# -- rotation and its grace window ------------------------------------------------------------------
def test_parallel_refreshes_all_get_the_same_pair(
    auth: FunctionClient, users: FunctionClient, pods: Callable[..., list[Served]], rds: redis_lib.Redis
) -> None:
    """Issue 9: the app refreshes from several requests at once with one refresh token. Within the
    grace window every one of them succeeds, with the same new pair, on any pod."""
    two = pods()
    access, refresh = session_of(sign_in(auth))
    sid = claims_of(refresh)["sid"]
    for _ in range(ROUNDS):
        answers = parallel_refresh(two, refresh)
        assert [a.status for a in answers] == [200] * PARALLEL, [(a.status, a.code) for a in answers]
        pairs = {a.pair for a in answers}
        assert len(pairs) == 1, "parallel callers got different pairs: the rotation was not atomic"
        pair = pairs.pop()
        assert pair is not None and pair != (access, refresh)
        new_access, new_refresh = pair
        assert claims_of(new_refresh)["sid"] == claims_of(new_access)["sid"] == sid  # the same session
        assert me(users, new_access).status_code == 200
        access, refresh = new_access, new_refresh
    assert len(rds.keys("refresh:rotated:*")) == ROUNDS  # one rotation per round, however many callers


def test_without_grace_one_parallel_refresh_wins_and_the_session_is_revoked(
    auth: FunctionClient, users: FunctionClient, pods: Callable[..., list[Served]]
) -> None:
    """REFRESH_REUSE_GRACE_SECONDS=0: strict rotation, any reuse revokes the whole session."""
    two = pods(REFRESH_REUSE_GRACE_SECONDS="0")
    _, refresh = session_of(sign_in(auth))
    answers = parallel_refresh(two, refresh)
    assert sorted(a.status for a in answers) == [200] + [401] * (PARALLEL - 1)
    codes = [a.code for a in answers if a.status == 401]
    # the first reuse revokes the session; later ones find it revoked
    assert "REFRESH_TOKEN_REUSED" in codes and set(codes) <= {"REFRESH_TOKEN_REUSED", "REFRESH_TOKEN_REVOKED"}
    winner = next(a.pair for a in answers if a.pair is not None)
    assert_error(me(users, winner[0]), 403, "TOKEN_REVOKED")
    assert_error(refresh_with(auth, winner[1]), 401, "REFRESH_TOKEN_REVOKED")


def test_reuse_after_the_window_revokes_the_family(
    make_auth: Callable[..., FunctionClient], users: FunctionClient
) -> None:
    auth = make_auth(REFRESH_REUSE_GRACE_SECONDS="1")
    access0, refresh0 = session_of(sign_in(auth, nickname="가족"))
    other_access, other_refresh = session_of(sign_in(auth, nickname="가족"))  # the same user elsewhere
    access1, refresh1 = session_of(refresh_with(auth, refresh0))
    again = refresh_with(auth, refresh0)  # within the window
    assert again.status_code == 200 and session_of(again) == (access1, refresh1)
    access2, refresh2 = session_of(refresh_with(auth, refresh1))
    assert me(users, access2).status_code == 200

    time.sleep(1.2)  # past the window
    assert_error(refresh_with(auth, refresh0), 401, "REFRESH_TOKEN_REUSED")
    # every token of that session is refused now, the newest included
    for token in (access0, access1, access2):
        assert_error(me(users, token), 403, "TOKEN_REVOKED")
    assert_error(refresh_with(auth, refresh2), 401, "REFRESH_TOKEN_REVOKED")
    assert_error(refresh_with(auth, refresh1), 401, "REFRESH_TOKEN_REVOKED")
    # the user's other session is untouched
    assert me(users, other_access).status_code == 200
    assert refresh_with(auth, other_refresh).status_code == 200


def test_reuse_within_the_window_after_logout_is_refused(auth: FunctionClient, users: FunctionClient) -> None:
    _, refresh0 = session_of(sign_in(auth))
    access1, _ = session_of(refresh_with(auth, refresh0))
    assert post(auth, "/api/v1/auth/logout", {"s_access": access1}).status_code == 200
    assert_error(refresh_with(auth, refresh0), 401, "REFRESH_TOKEN_REVOKED")


def test_a_token_from_before_sessions_starts_one(auth: FunctionClient, users: FunctionClient) -> None:
    """Refresh tokens issued before the `sid` claim existed still rotate (into a session)."""
    user_access, _ = session_of(sign_in(auth))
    user_id = claims_of(user_access)["sub"]
    legacy = auth.runtime.clients.tokens.issue(user_id, "refresh", "kakao").token
    assert "sid" not in claims_of(legacy)
    access, refresh = session_of(refresh_with(auth, legacy))
    assert claims_of(access)["sid"] and claims_of(access)["sid"] == claims_of(refresh)["sid"]
    assert session_of(refresh_with(auth, legacy)) == (access, refresh)  # the grace window applies too


# -- logout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shown", ["access cookie", "refresh cookie", "bearer access", "refresh header"])
def test_logout_with_either_token_revokes_the_session(auth: FunctionClient, users: FunctionClient, shown: str) -> None:
    """Issue 19 #6: logout with only the access token left the refresh token valid for 14 days."""
    access, refresh = session_of(sign_in(auth))
    other_access, other_refresh = session_of(sign_in(auth))  # the same user in another browser
    cookies, headers = {}, {}
    if shown == "access cookie":
        cookies = {"s_access": access}
    elif shown == "refresh cookie":
        cookies = {"s_refresh": refresh}
    elif shown == "bearer access":
        headers = {"Authorization": f"Bearer {access}"}
    else:
        headers = {"X-Refresh-Token": f"Bearer {refresh}"}
    out = post(auth, "/api/v1/auth/logout", cookies, headers=headers)
    assert out.status_code == 200 and out.json["success"] is True
    assert_error(me(users, access), 403, "TOKEN_REVOKED")
    assert_error(refresh_with(auth, refresh), 401, "REFRESH_TOKEN_REVOKED")
    assert me(users, other_access).status_code == 200
    assert refresh_with(auth, other_refresh).status_code == 200


def test_logout_revokes_the_rotated_successors(auth: FunctionClient, users: FunctionClient) -> None:
    access0, refresh0 = session_of(sign_in(auth))
    access1, refresh1 = session_of(refresh_with(auth, refresh0))
    assert post(auth, "/api/v1/auth/logout", {"s_access": access0}).status_code == 200  # the older access
    assert_error(me(users, access1), 403, "TOKEN_REVOKED")
    assert_error(refresh_with(auth, refresh1), 401, "REFRESH_TOKEN_REVOKED")


def test_logout_with_an_expired_access_token_revokes_its_session(auth: FunctionClient, rds: redis_lib.Redis) -> None:
    """The app's access cookie is often expired when the user signs out; its session still goes."""
    access, refresh = session_of(sign_in(auth))
    claims = claims_of(access)
    codec = auth.runtime.clients.tokens
    expired = codec.issue(claims["sub"], "access", "kakao", now=time.time() - 7200, session_id=claims["sid"]).token
    out = post(auth, "/api/v1/auth/logout", {"s_access": expired})
    assert out.status_code == 200
    assert rds.exists(f"revoked_session:{claims['sid']}") == 1
    assert_error(refresh_with(auth, refresh), 401, "REFRESH_TOKEN_REVOKED")


# -- JWT attacks, refused by another function --------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    access: str
    refresh: str
    claims: dict[str, Any]
    secret: str
    auth: FunctionClient


def _forge(signed: Signed) -> dict[str, str]:
    header, payload, signature = signed.access.split(".")
    claims, secret = signed.claims, signed.secret
    codec = signed.auth.runtime.clients.tokens
    now = int(time.time())
    return {
        "alg none, unsigned": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, old signature": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}",
        "wrong key": pyjwt.encode(claims, secret[::-1], algorithm="HS256"),
        "HS512 with the right key": pyjwt.encode(claims, secret, algorithm="HS512"),
        "expired": codec.issue(claims["sub"], "access", "google", now=now - 7200, session_id=claims["sid"]).token,
        "not yet valid": codec.issue(claims["sub"], "access", "google", now=now + 600).token,
        "refresh as access": signed.refresh,
        "tampered payload (sub)": f"{header}.{b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        "tampered payload (exp)": f"{header}.{b64({**claims, 'exp': now + 99999})}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "truncated": signed.access[:-10],
        "wrong audience": pyjwt.encode({**claims, "aud": "other"}, secret, algorithm="HS256"),
        "wrong issuer": pyjwt.encode({**claims, "iss": "other"}, secret, algorithm="HS256"),
        "no exp": pyjwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }


ATTACKS: list[tuple[str, int, str]] = [
    ("alg none, unsigned", 401, "INVALID_TOKEN"),
    ("alg none, old signature", 401, "INVALID_TOKEN"),
    ("wrong key", 401, "INVALID_TOKEN"),
    ("HS512 with the right key", 401, "INVALID_TOKEN"),
    ("expired", 401, "TOKEN_EXPIRED"),
    ("not yet valid", 401, "TOKEN_NOT_YET_VALID"),
    ("refresh as access", 401, "INVALID_TOKEN_TYPE"),
    ("tampered payload (sub)", 401, "INVALID_TOKEN"),
    ("tampered payload (exp)", 401, "INVALID_TOKEN"),
    ("tampered signature", 401, "INVALID_TOKEN"),
    ("truncated", 401, "INVALID_TOKEN"),
    ("wrong audience", 401, "INVALID_TOKEN"),
    ("wrong issuer", 401, "INVALID_TOKEN"),
    ("no exp", 401, "INVALID_TOKEN"),
    ("garbage", 401, "INVALID_TOKEN"),
]


@pytest.fixture
def signed(auth: FunctionClient, users: FunctionClient) -> Signed:
    access, refresh = session_of(sign_in(auth, "google"))
    secret = auth.runtime.settings.jwt_secret.get()
    claims = pyjwt.decode(access, secret, algorithms=["HS256"], audience="eco2-app", issuer="eco2")
    assert set(claims) == {"sub", "jti", "type", "iat", "nbf", "exp", "iss", "aud", "provider", "sid"}
    assert me(users, access).status_code == 200  # the genuine token works
    return Signed(access, refresh, claims, secret, auth)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(("attack", "status", "code"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_jwt_attack_is_refused(users: FunctionClient, signed: Signed, attack: str, status: int, code: str) -> None:
    token = _forge(signed)[attack]
    for response in (me(users, token), me(users, bearer=token)):
        assert_error(response, status, code)


@pytest.mark.parametrize("how", ["logged out", "session revoked by reuse", "account deleted"])
def test_revoked_token_is_403(
    make_auth: Callable[..., FunctionClient], users: FunctionClient, signed: Signed, how: str
) -> None:
    """API.md: 403 = revoked (the app signs the user out, no refresh loop)."""
    if how == "logged out":
        assert post(signed.auth, "/api/v1/auth/logout", {"s_refresh": signed.refresh}).status_code == 200
    elif how == "session revoked by reuse":
        strict = make_auth(REFRESH_REUSE_GRACE_SECONDS="0")
        assert refresh_with(strict, signed.refresh).status_code == 200
        assert_error(refresh_with(strict, signed.refresh), 401, "REFRESH_TOKEN_REUSED")
    else:
        users.clear_cookies()
        deleted = users.delete("/api/v1/users/me", headers={"Authorization": f"Bearer {signed.access}"})
        assert deleted.status_code == 204
    for response in (me(users, signed.access), me(users, bearer=signed.access)):
        assert_error(response, 403, "TOKEN_REVOKED")


def test_pyjwt_twin_is_accepted(users: FunctionClient, signed: Signed) -> None:
    """The control for the table above: a standard HS256 token with the same claims is good."""
    twin = pyjwt.encode({**signed.claims, "jti": uuid.uuid4().hex}, signed.secret, algorithm="HS256")
    assert me(users, twin).status_code == 200
    assert_error(me(users), 401, "NOT_AUTHENTICATED")
