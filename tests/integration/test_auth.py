"""auth on real PostgreSQL and Redis, against the development OAuth provider over real HTTP.

The browser's part (following authorization_url to the provider, submitting its sign-in form and
coming back) is played by `requests`; the function is driven through its functions-framework
target. Token rules are checked where they matter, on another function (`users` GET
/api/v1/users/me); sessions, refresh rotation and JWT attacks are in test_auth_sessions.py.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import psycopg
import pytest
import redis as redis_lib
import requests
from werkzeug.test import TestResponse

from eco2.serving.testing import FunctionClient
from functions.auth.providers import pkce_challenge
from tests.conftest import ORIGIN
from tests.support.oauth_server import OAuthServer, oauth_server

pytestmark = pytest.mark.integration

API = "http://127.0.0.1:8080"
OTHER_ORIGIN = "http://localhost:5173"
HOME = f"{ORIGIN}/#/home"
FAILED = f"{ORIGIN}/#/login?error=oauth_failed"
PROVIDERS = ("kakao", "google", "naver")
ERROR_KEYS = {"detail", "code"}


CALLBACK_ENV = {"ECO2_PUBLIC_URL": API}  # the deployment's callback URLs: API + /api/v1/auth/<p>/callback


def callback_url(provider: str) -> str:
    return f"{API}/api/v1/auth/{provider}/callback"


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def provider_server() -> Iterator[OAuthServer]:
    with oauth_server(CALLBACK_ENV) as server:
        yield server


@pytest.fixture
def server(provider_server: OAuthServer) -> Iterator[OAuthServer]:
    provider_server.reset()
    yield provider_server
    provider_server.reset()


@pytest.fixture
def make_auth(function_client: Callable[..., FunctionClient], server: OAuthServer) -> Callable[..., FunctionClient]:
    def make(**extra: str) -> FunctionClient:
        return function_client("auth", **{"OAUTH_HTTP_TIMEOUT": "1", **CALLBACK_ENV, **server.env(), **extra})

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
def db(base_env: dict[str, str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(base_env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


# -- helpers --------------------------------------------------------------------------------------
def start(auth: FunctionClient, provider: str = "kakao", origin: str | None = ORIGIN, **query: str) -> TestResponse:
    headers = {"X-Frontend-Origin": origin} if origin is not None else {}
    params = {"redirect_uri": callback_url(provider), **query}
    return auth.get(f"/api/v1/auth/{provider}", query_string=params, headers=headers)


def visit_provider(authorization_url: str, nickname: str = "이코", **extra: str) -> dict[str, str]:
    """The browser at the provider: submit its sign-in form and come back; the callback's query."""
    response = requests.post(
        authorization_url, data={"nickname": nickname, "action": "signin", **extra}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def come_back(auth: FunctionClient, provider: str, query: dict[str, str]) -> TestResponse:
    return auth.get(f"/api/v1/auth/{provider}/callback", query_string=query)


def sign_in(
    auth: FunctionClient, provider: str = "kakao", nickname: str = "이코", origin: str | None = ORIGIN
) -> TestResponse:
    started = start(auth, provider, origin)
    assert started.status_code == 200, started.json
    return come_back(auth, provider, visit_provider(started.json["data"]["authorization_url"], nickname))


def set_cookies(response: TestResponse) -> dict[str, Any]:
    jar: dict[str, Any] = {}
    for header in response.headers.getlist("Set-Cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            jar[name] = morsel
    return jar


def session_cookies(response: TestResponse) -> dict[str, Any]:
    """The session cookies a response sets (the sign-in state cookie is cleared on every callback)."""
    return {k: v for k, v in set_cookies(response).items() if k != "s_oauth_state"}


def session_of(response: TestResponse) -> tuple[str, str]:
    jar = set_cookies(response)
    return jar["s_access"].value, jar["s_refresh"].value


def me(users: FunctionClient, access: str | None = None, *, bearer: str | None = None) -> TestResponse:
    users.clear_cookies()
    if access is not None:
        users.set_cookie("s_access", access)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return users.get("/api/v1/users/me", headers=headers)


def post(auth: FunctionClient, path: str, cookies: dict[str, str] | None = None, **kw: Any) -> TestResponse:
    auth.clear_cookies()
    for name, value in (cookies or {}).items():
        auth.set_cookie(name, value)
    return auth.post(path, **kw)


def assert_error(response: TestResponse, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.json
    assert isinstance(body, dict) and set(body) == ERROR_KEYS, body
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body


def count(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


# -- the code flow --------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_full_code_flow(
    provider: str,
    auth: FunctionClient,
    users: FunctionClient,
    rds: redis_lib.Redis,
    db: psycopg.Connection[Any],
) -> None:
    before = datetime.now(UTC)
    started = start(auth, provider)
    assert started.status_code == 200
    body = started.json
    assert body["success"] is True and set(body["data"]) == {"provider", "state", "authorization_url", "expires_at"}
    data = body["data"]
    assert data["provider"] == provider
    expires_at = datetime.fromisoformat(data["expires_at"])
    assert expires_at.tzinfo is not None and 595 <= (expires_at - before).total_seconds() <= 605

    url = urlsplit(data["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{server_url(auth)}/dev/oauth/{provider}/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == f"dev-{provider}-client" and query["state"] == data["state"]
    assert query["redirect_uri"] == callback_url(provider) and query["response_type"] == "code"

    record = json.loads(rds.get(f"oauth:state:{data['state']}") or "{}")
    assert record["provider"] == provider and record["origin"] == ORIGIN
    assert record["redirect_uri"] == callback_url(provider)
    assert 590 <= rds.ttl(f"oauth:state:{data['state']}") <= 600
    if provider in ("kakao", "google"):  # PKCE S256: the challenge is derived from the stored verifier
        assert query["code_challenge_method"] == "S256"
        assert query["code_challenge"] == pkce_challenge(record["code_verifier"])
    else:
        assert "code_challenge" not in query and record["code_verifier"] is None

    returned = visit_provider(data["authorization_url"], nickname="분리수거왕")
    assert returned["state"] == data["state"] and returned["code"]
    done = come_back(auth, provider, returned)
    assert done.status_code == 302 and done.headers["Location"] == HOME
    assert rds.exists(f"oauth:state:{data['state']}") == 0  # consumed

    jar = set_cookies(done)
    assert set(jar) == {"s_access", "s_refresh", "s_oauth_state"}
    assert jar["s_oauth_state"].value == "" and int(jar["s_oauth_state"]["max-age"]) == 0  # used up
    for name, lifetime in (("s_access", 3600), ("s_refresh", 14 * 24 * 3600)):
        morsel = jar[name]
        assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
        assert int(morsel["max-age"]) == lifetime
        assert not morsel["domain"] and not morsel["secure"]

    profile = me(users, jar["s_access"].value)
    assert profile.status_code == 200, profile.json
    assert profile.json["username"] == "분리수거왕" and profile.json["provider"] == provider
    assert count(db, "users") == 1 and count(db, "social_accounts") == 1
    row = db.execute("SELECT provider, email, last_login_at FROM social_accounts").fetchone()
    assert row is not None and row[0] == provider and row[1].endswith("@dev.eco2.local")
    first_login = row[2]

    # a second sign-in of the same account updates, never duplicates
    again = sign_in(auth, provider, nickname="분리수거왕")
    assert again.headers["Location"] == HOME
    assert count(db, "users") == 1 and count(db, "social_accounts") == 1
    user_row = db.execute("SELECT last_login_at, last_login_provider FROM users").fetchone()
    account_row = db.execute("SELECT last_login_at FROM social_accounts").fetchone()
    assert user_row is not None and account_row is not None
    assert account_row[0] > first_login and user_row[0] == account_row[0] and user_row[1] == provider
    assert session_of(again) != session_of(done)

    # another person is another user
    assert sign_in(auth, provider, nickname="페티").headers["Location"] == HOME
    assert count(db, "users") == 2


def server_url(auth: FunctionClient) -> str:
    authorize_url = auth.runtime.config.provider("kakao").authorize_url
    parts = urlsplit(authorize_url)
    return f"{parts.scheme}://{parts.netloc}"


def test_same_nickname_at_two_providers_is_two_accounts(auth: FunctionClient, db: psycopg.Connection[Any]) -> None:
    assert sign_in(auth, "kakao").headers["Location"] == HOME
    assert sign_in(auth, "naver").headers["Location"] == HOME
    assert count(db, "users") == 2 and count(db, "social_accounts") == 2


def test_user_edited_nickname_survives_a_new_sign_in(auth: FunctionClient, users: FunctionClient) -> None:
    access, _ = session_of(sign_in(auth, "naver", nickname="초록이"))
    users.clear_cookies()
    users.set_cookie("s_access", access)
    assert users.patch("/api/v1/users/me", json={"nickname": "새이름"}).status_code == 200
    access, _ = session_of(sign_in(auth, "naver", nickname="초록이"))
    assert me(users, access).json["username"] == "새이름"


def test_concurrent_first_sign_ins_make_one_user(auth: FunctionClient, db: psycopg.Connection[Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    returns = []
    for _ in range(4):
        started = start(auth, "kakao").json["data"]
        returns.append(visit_provider(started["authorization_url"], nickname="동시에"))
    app = auth.app

    def finish(query: dict[str, str]) -> str:
        browser = app.test_client()  # each sign-in in a browser of its own, holding its state cookie
        browser.set_cookie("s_oauth_state", query["state"])
        return str(browser.get("/api/v1/auth/kakao/callback", query_string=query).headers["Location"])

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(finish, returns)) == [HOME] * 4
    assert count(db, "users") == 1 and count(db, "social_accounts") == 1


# -- PKCE -----------------------------------------------------------------------------------------
def test_dev_provider_enforces_pkce(server: OAuthServer) -> None:
    verifier = "v" * 43
    authorize = f"{server.url}/dev/oauth/kakao/authorize"
    base = {"client_id": "dev-kakao-client", "redirect_uri": callback_url("kakao"), "response_type": "code"}

    def code() -> str:
        params = {**base, "state": "s", "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
        response = requests.post(
            authorize, data={**params, "action": "signin", "nickname": "x"}, allow_redirects=False, timeout=5
        )
        return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]

    def exchange(the_code: str, **extra: str) -> requests.Response:
        form = {
            "grant_type": "authorization_code",
            "client_id": "dev-kakao-client",
            "client_secret": "dev-kakao-secret",
            "code": the_code,
            "redirect_uri": callback_url("kakao"),
            **extra,
        }
        return requests.post(f"{server.url}/dev/oauth/kakao/token", data=form, timeout=5)

    wrong = exchange(code(), code_verifier="w" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange(code()).status_code == 400  # no verifier at all
    good_code = code()
    ok = exchange(good_code, code_verifier=verifier)
    assert ok.status_code == 200 and ok.json()["token_type"] == "bearer" and ok.json()["access_token"]
    assert exchange(good_code, code_verifier=verifier).status_code == 400  # codes are single use
    other_uri = exchange(code(), code_verifier=verifier, redirect_uri=callback_url("google"))
    assert other_uri.status_code == 400
    bad_client = exchange(code(), code_verifier=verifier, client_secret="nope")
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    profile = requests.get(
        f"{server.url}/dev/oauth/kakao/profile",
        headers={"Authorization": f"Bearer {ok.json()['access_token']}"},
        timeout=5,
    )
    assert profile.status_code == 200 and profile.json()["kakao_account"]["profile"]["nickname"] == "x"
    assert requests.get(f"{server.url}/dev/oauth/kakao/profile", timeout=5).status_code == 401


def test_wrong_verifier_in_state_fails_the_sign_in(
    auth: FunctionClient, rds: redis_lib.Redis, db: psycopg.Connection[Any]
) -> None:
    started = start(auth, "google").json["data"]
    key = f"oauth:state:{started['state']}"
    record = json.loads(rds.get(key) or "{}")
    rds.set(key, json.dumps({**record, "code_verifier": "x" * 64}), keepttl=True)
    done = come_back(auth, "google", visit_provider(started["authorization_url"]))
    assert done.status_code == 302 and done.headers["Location"] == FAILED
    assert not session_cookies(done) and count(db, "users") == 0


def test_dev_provider_sign_in_page(server: OAuthServer) -> None:
    params = {
        "client_id": "dev-naver-client",
        "redirect_uri": callback_url("naver"),
        "response_type": "code",
        "state": 'st"<x>',
    }
    page = requests.get(f"{server.url}/dev/oauth/naver/authorize", params=params, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'name="nickname"' in page.text and "Sign in" in page.text
    assert 'value="st&quot;&lt;x&gt;"' in page.text  # every value is escaped
    form = {**params, "nickname": "폼", "action": "signin"}
    submitted = requests.post(f"{server.url}/dev/oauth/naver/authorize", data=form, allow_redirects=False, timeout=5)
    assert submitted.status_code == 302
    back = parse_qs(urlsplit(submitted.headers["Location"]).query)
    assert back["state"] == ['st"<x>'] and back["code"]
    bad = requests.get(
        f"{server.url}/dev/oauth/naver/authorize", params={**params, "client_id": "x"}, allow_redirects=False, timeout=5
    )
    assert bad.status_code == 400 and "Location" not in bad.headers


# -- state ----------------------------------------------------------------------------------------
def test_state_is_single_use(auth: FunctionClient, server: OAuthServer) -> None:
    started = start(auth).json["data"]
    query = visit_provider(started["authorization_url"])
    assert come_back(auth, "kakao", query).headers["Location"] == HOME
    replay = come_back(auth, "kakao", query)
    assert replay.status_code == 302 and replay.headers["Location"] == FAILED and not session_cookies(replay)
    assert server.calls("token") == 1  # the replay never reached the provider


def test_expired_state(auth: FunctionClient, rds: redis_lib.Redis, server: OAuthServer) -> None:
    started = start(auth).json["data"]
    query = visit_provider(started["authorization_url"])
    rds.pexpire(f"oauth:state:{started['state']}", 1)
    time.sleep(0.05)
    done = come_back(auth, "kakao", query)
    assert done.status_code == 302 and done.headers["Location"] == FAILED
    assert server.calls("token") == 0


def test_state_of_another_provider(auth: FunctionClient, rds: redis_lib.Redis) -> None:
    started = start(auth, "kakao").json["data"]
    query = visit_provider(started["authorization_url"])
    assert come_back(auth, "google", query).headers["Location"] == FAILED
    assert rds.exists(f"oauth:state:{started['state']}") == 0  # consumed by the failed attempt
    assert come_back(auth, "kakao", query).headers["Location"] == FAILED


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"code": "abc"},
        {"code": "abc", "state": "short"},
        {"code": "abc", "state": "x" * 40},
        {"code": "abc", "state": "../../etc/passwd-0000000000"},
        {"error": "server_error"},
    ],
)
def test_bad_callbacks_redirect_to_the_login_page(auth: FunctionClient, query: dict[str, str]) -> None:
    done = come_back(auth, "kakao", query)
    assert done.status_code == 302 and done.headers["Location"] == FAILED and not session_cookies(done)


def test_callback_of_an_unknown_provider(auth: FunctionClient) -> None:
    done = come_back(auth, "github", {"code": "a", "state": "b" * 40})
    assert done.status_code == 302 and done.headers["Location"] == FAILED


def test_denied_consent(auth: FunctionClient, rds: redis_lib.Redis, server: OAuthServer) -> None:
    started = start(auth, "naver").json["data"]
    query = visit_provider(started["authorization_url"], deny="1")
    assert query["error"] == "access_denied" and query["state"] == started["state"]
    done = come_back(auth, "naver", query)
    assert done.status_code == 302 and done.headers["Location"] == FAILED
    assert rds.exists(f"oauth:state:{started['state']}") == 0 and server.calls("token") == 0


def test_callback_returns_to_the_origin_of_the_state(make_auth: Callable[..., FunctionClient]) -> None:
    auth = make_auth(ALLOWED_ORIGINS=f"{ORIGIN},{OTHER_ORIGIN}")
    assert sign_in(auth, "kakao", origin=OTHER_ORIGIN + "/").headers["Location"] == f"{OTHER_ORIGIN}/#/home"
    assert sign_in(auth, "kakao", origin=None).headers["Location"] == HOME  # absent: the first allowed origin
    started = start(auth, "google", origin=OTHER_ORIGIN).json["data"]
    query = visit_provider(started["authorization_url"], deny="1")
    assert come_back(auth, "google", query).headers["Location"] == f"{OTHER_ORIGIN}/#/login?error=oauth_failed"


# -- authorize validation -------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:5174", "null", "*"])
def test_origin_not_allowed(auth: FunctionClient, origin: str, rds: redis_lib.Redis) -> None:
    assert_error(start(auth, "kakao", origin), 400, "ORIGIN_NOT_ALLOWED")
    assert not rds.keys("oauth:state:*")


def test_absent_origin_without_allowed_origins(make_auth: Callable[..., FunctionClient]) -> None:
    auth = make_auth(ALLOWED_ORIGINS="")
    assert_error(start(auth, "kakao", None), 400, "ORIGIN_NOT_ALLOWED")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "",
        "ftp://127.0.0.1/api/v1/auth/kakao/callback",
        "javascript:alert(1)",
        "/api/v1/auth/kakao/callback",
        f"{API}/api/v1/auth/google/callback",
        f"{API}/api/v1/auth/kakao/callback?next=https://evil.example",
        f"{API}/api/v1/auth/kakao",
        "https://evil.example/steal",
        # the right path on another host, port or scheme (a code sent there signs the attacker in)
        "http://evil.example/api/v1/auth/kakao/callback",
        "http://127.0.0.1:8081/api/v1/auth/kakao/callback",
        "https://127.0.0.1:8080/api/v1/auth/kakao/callback",
        "http://localhost:8080/api/v1/auth/kakao/callback",
        "http://127.0.0.1:8080.evil.example/api/v1/auth/kakao/callback",
        "http://user@127.0.0.1:8080/api/v1/auth/kakao/callback",
        "HTTP://127.0.0.1:8080/api/v1/auth/kakao/callback",
        f"{API}/api/v1/auth/kakao/callback/",
    ],
)
def test_bad_redirect_uri(auth: FunctionClient, redirect_uri: str) -> None:
    response = auth.get(
        "/api/v1/auth/kakao", query_string={"redirect_uri": redirect_uri}, headers={"X-Frontend-Origin": ORIGIN}
    )
    assert_error(response, 400, "INVALID_REDIRECT_URI")
    assert "redirect_uri" in response.json["detail"]


def test_redirect_uri_on_another_host_is_refused(auth: FunctionClient, rds: redis_lib.Redis) -> None:
    """Issue 19 #1: the right callback path on the attacker's host used to start a sign-in whose
    code and state went to the attacker. Now only this deployment's callback URL is accepted."""
    evil = "http://evil.example/api/v1/auth/kakao/callback"
    response = auth.get(
        "/api/v1/auth/kakao", query_string={"redirect_uri": evil}, headers={"X-Frontend-Origin": ORIGIN}
    )
    assert_error(response, 400, "INVALID_REDIRECT_URI")
    assert "configured" in response.json["detail"]
    assert not rds.keys("oauth:state:*") and "s_oauth_state" not in set_cookies(response)
    assert start(auth, "kakao").status_code == 200  # the configured callback still works


def test_callback_urls_per_provider(make_auth: Callable[..., FunctionClient]) -> None:
    prod = "https://api.eco2.example/api/v1/auth/kakao/callback"
    dev = "https://api.dev.eco2.example/api/v1/auth/kakao/callback"
    auth = make_auth(KAKAO_REDIRECT_URIS=f"{prod}, {dev}")
    for uri in (prod, dev):
        started = start(auth, "kakao", redirect_uri=uri)
        assert started.status_code == 200, started.json
        assert parse_qs(urlsplit(started.json["data"]["authorization_url"]).query)["redirect_uri"] == [uri]
    assert_error(start(auth, "kakao"), 400, "INVALID_REDIRECT_URI")  # the list replaces the default
    assert_error(start(auth, "kakao", redirect_uri=prod.replace("kakao", "google")), 400, "INVALID_REDIRECT_URI")
    assert start(auth, "google").status_code == 200  # google keeps ECO2_PUBLIC_URL's callback
    assert_error(start(auth, "google", redirect_uri=prod), 400, "INVALID_REDIRECT_URI")


def test_no_callback_url_configured(make_auth: Callable[..., FunctionClient]) -> None:
    auth = make_auth(ECO2_PUBLIC_URL="")
    response = start(auth, "naver")
    assert_error(response, 503, "PROVIDER_NOT_CONFIGURED")
    assert "NAVER_REDIRECT_URIS" in response.json["detail"] and "ECO2_PUBLIC_URL" in response.json["detail"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAKAO_REDIRECT_URIS", "https://api.eco2.example/api/v1/auth/google/callback"),
        ("GOOGLE_REDIRECT_URIS", "https://api.eco2.example/callback"),
        ("NAVER_REDIRECT_URIS", "api.eco2.example/api/v1/auth/naver/callback"),
        ("ECO2_PUBLIC_URL", "ftp://api.eco2.example"),
        ("ECO2_PUBLIC_URL", "https://api.eco2.example/prefix"),
        ("REFRESH_REUSE_GRACE_SECONDS", "-1"),
        ("REFRESH_REUSE_GRACE_SECONDS", "soon"),
    ],
)
def test_bad_auth_config_fails_at_startup(make_auth: Callable[..., FunctionClient], variable: str, value: str) -> None:
    from eco2.core.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        make_auth(**{variable: value})
    assert variable in str(caught.value)


def test_dev_provider_redirects_only_to_the_configured_callback(server: OAuthServer) -> None:
    """Issue 19 #10: the development provider sent codes to any redirect_uri."""
    authorize = f"{server.url}/dev/oauth/kakao/authorize"
    codes_before = set(server.provider._grants)
    for uri in (
        "http://evil.example/api/v1/auth/kakao/callback",
        callback_url("google"),  # another provider's callback
        callback_url("kakao") + "?x=1",
    ):
        params = {"client_id": "dev-kakao-client", "redirect_uri": uri, "response_type": "code", "state": "s" * 20}
        for sent in (
            requests.post(authorize, data={**params, "action": "signin"}, allow_redirects=False, timeout=5),
            requests.post(authorize, data={**params, "action": "deny"}, allow_redirects=False, timeout=5),
            requests.get(authorize, params=params, allow_redirects=False, timeout=5),
        ):
            assert sent.status_code == 400 and "Location" not in sent.headers, (uri, sent.status_code)
            assert "not the callback URL configured" in sent.text
    assert set(server.provider._grants) == codes_before  # no code was issued


def test_dev_provider_issues_codes_only_on_post(server: OAuthServer) -> None:
    params = {
        "client_id": "dev-google-client",
        "redirect_uri": callback_url("google"),
        "response_type": "code",
        "state": "s" * 20,
    }
    authorize = f"{server.url}/dev/oauth/google/authorize"
    codes_before = set(server.provider._grants)
    for extra in ({}, {"action": "signin", "nickname": "겟"}, {"auto": "1", "nickname": "겟"}):
        page = requests.get(authorize, params={**params, **extra}, allow_redirects=False, timeout=5)
        assert page.status_code == 200 and "Location" not in page.headers
        assert '<form method="post"' in page.text
    assert set(server.provider._grants) == codes_before  # a GET never issues a code
    submitted = requests.post(authorize, data={**params, "action": "signin"}, allow_redirects=False, timeout=5)
    assert submitted.status_code == 302 and submitted.headers["Location"].startswith(callback_url("google") + "?")
    assert len(set(server.provider._grants) - codes_before) == 1


def test_missing_redirect_uri(auth: FunctionClient) -> None:
    assert_error(auth.get("/api/v1/auth/kakao", headers={"X-Frontend-Origin": ORIGIN}), 400, "INVALID_REDIRECT_URI")


def test_unknown_provider(auth: FunctionClient) -> None:
    assert_error(start(auth, "github"), 404, "UNKNOWN_PROVIDER")


def test_provider_not_configured(make_auth: Callable[..., FunctionClient]) -> None:
    auth = make_auth(NAVER_CLIENT_ID="")
    response = start(auth, "naver")
    assert_error(response, 503, "PROVIDER_NOT_CONFIGURED")
    assert "NAVER_CLIENT_ID" in response.json["detail"]
    assert start(auth, "kakao").status_code == 200


# -- provider failures ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "status", "body"),
    [
        ("token", 500, '{"error": "server_error"}'),
        ("token", 400, '{"error": "invalid_grant"}'),
        ("token", 200, "<html>not json</html>"),
        ("token", 200, '{"token_type": "bearer"}'),
        ("profile", 500, '{"error": "server_error"}'),
        ("profile", 200, '{"resultcode": "024", "message": "Authentication failed"}'),
        ("profile", 200, "[]"),
    ],
)
def test_provider_errors_redirect_to_the_login_page(
    auth: FunctionClient,
    server: OAuthServer,
    db: psycopg.Connection[Any],
    endpoint: str,
    status: int,
    body: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = "naver" if "resultcode" in body else "kakao"
    started = start(auth, provider).json["data"]
    query = visit_provider(started["authorization_url"])
    server.fail(endpoint, status=status, body=body)
    with caplog.at_level(logging.WARNING, logger="eco2.auth"):
        done = come_back(auth, provider, query)
    assert done.status_code == 302 and done.headers["Location"] == FAILED and not session_cookies(done)
    assert server.calls(endpoint) == 1 and count(db, "users") == 0
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "oauth sign-in failed"]
    assert len(reasons) == 1 and endpoint in reasons[0], reasons
    ours = [r for r in caplog.records if r.name.startswith("eco2")]  # not the test provider's access log
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert query["code"] not in logged and f"dev-{provider}-secret" not in logged and started["state"] not in logged


@pytest.mark.parametrize("endpoint", ["token", "profile"])
def test_provider_timeouts_are_bounded(
    auth: FunctionClient, server: OAuthServer, db: psycopg.Connection[Any], endpoint: str
) -> None:
    started = start(auth, "google").json["data"]
    query = visit_provider(started["authorization_url"])
    server.delay(endpoint, 2.0)
    began = time.monotonic()
    done = come_back(auth, "google", query)
    took = time.monotonic() - began
    assert done.status_code == 302 and done.headers["Location"] == FAILED
    assert 0.9 <= took < 1.9, took  # OAUTH_HTTP_TIMEOUT=1, the provider needs 2 s
    assert count(db, "users") == 0


def test_unreachable_provider(make_auth: Callable[..., FunctionClient]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    auth = make_auth(KAKAO_TOKEN_URL=f"http://127.0.0.1:{closed_port}/token")
    started = start(auth, "kakao").json["data"]
    done = come_back(auth, "kakao", visit_provider(started["authorization_url"]))
    assert done.status_code == 302 and done.headers["Location"] == FAILED


# -- refresh --------------------------------------------------------------------------------------
def test_refresh_rotation(auth: FunctionClient, users: FunctionClient) -> None:
    access, refresh = session_of(sign_in(auth))
    rotated = post(auth, "/api/v1/auth/refresh", {"s_refresh": refresh})
    assert rotated.status_code == 200, rotated.json
    body = rotated.json
    assert body["success"] is True
    assert {"access_expires_at", "refresh_expires_at"} <= set(body["data"])
    assert "access_token" not in body["data"] and "refresh_token" not in body["data"]  # cookies stay HttpOnly
    assert datetime.fromisoformat(body["data"]["access_expires_at"]).tzinfo is not None
    jar = set_cookies(rotated)
    assert jar["s_access"]["httponly"] and int(jar["s_refresh"]["max-age"]) == 14 * 24 * 3600
    new_access, new_refresh = session_of(rotated)
    assert (new_access, new_refresh) != (access, refresh)
    assert me(users, new_access).status_code == 200

    # again within the grace window (the app refreshing from two requests at once): the same pair
    again = post(auth, "/api/v1/auth/refresh", {"s_refresh": refresh})
    assert again.status_code == 200, again.json
    assert session_of(again) == (new_access, new_refresh)

    # the chain goes on with the new one, through the header this time (a non-browser caller)
    by_header = post(auth, "/api/v1/auth/refresh", headers={"X-Refresh-Token": f"Bearer {new_refresh}"})
    assert by_header.status_code == 200
    data = by_header.json["data"]
    assert data["refresh_token"] == session_of(by_header)[1] and data["access_token"] == session_of(by_header)[0]
    assert session_of(by_header) != (new_access, new_refresh)
    assert me(users, data["access_token"]).status_code == 200


def test_refresh_failures(auth: FunctionClient, users: FunctionClient) -> None:
    access, refresh = session_of(sign_in(auth))
    codec = auth.runtime.clients.tokens
    assert me(users, access).status_code == 200
    user_id = str(pyjwt.decode(access, options={"verify_signature": False})["sub"])
    assert_error(post(auth, "/api/v1/auth/refresh"), 401, "REFRESH_TOKEN_MISSING")
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": "garbage"}), 401, "INVALID_TOKEN")
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": access}), 401, "INVALID_TOKEN_TYPE")
    assert_error(post(auth, "/api/v1/auth/refresh", headers={"X-Refresh-Token": "Basic xyz"}), 401)
    expired = codec.issue(user_id, "refresh", "kakao", now=time.time() - 15 * 24 * 3600).token
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": expired}), 401, "TOKEN_EXPIRED")
    header, payload, signature = refresh.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = f"{header}.{b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}"
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": tampered}), 401, "INVALID_TOKEN")
    # a refresh token of a user who no longer exists
    ghost = codec.issue(str(uuid.uuid4()), "refresh", "kakao").token
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": ghost}), 401, "USER_NOT_FOUND")
    # the untouched original still works
    assert post(auth, "/api/v1/auth/refresh", {"s_refresh": refresh}).status_code == 200


def test_refresh_after_account_deletion(auth: FunctionClient, users: FunctionClient) -> None:
    access, refresh = session_of(sign_in(auth))
    users.clear_cookies()
    assert users.delete("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"}).status_code == 204
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": refresh}), 401)


# -- logout ---------------------------------------------------------------------------------------
def _assert_logged_out(response: TestResponse) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["success"] is True and response.json["data"]["message"]
    jar = set_cookies(response)
    assert set(jar) == {"s_access", "s_refresh"}
    for morsel in jar.values():
        assert morsel.value == "" and int(morsel["max-age"]) == 0 and morsel["path"] == "/"


def test_logout_never_401(auth: FunctionClient) -> None:
    codec = auth.runtime.clients.tokens
    user_id = str(uuid.uuid4())
    expired_access = codec.issue(user_id, "access", "kakao", now=time.time() - 7200).token
    expired_refresh = codec.issue(user_id, "refresh", "kakao", now=time.time() - 15 * 24 * 3600).token
    swapped = (codec.issue(user_id, "refresh", "kakao").token, codec.issue(user_id, "access", "kakao").token)
    for cookies in (
        {},
        {"s_access": "garbage", "s_refresh": "also.garbage.x"},
        {"s_access": "a.b.c", "s_refresh": "%%%"},
        {"s_access": expired_access, "s_refresh": expired_refresh},
        {"s_access": swapped[0], "s_refresh": swapped[1]},
        {"s_access": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
    ):
        _assert_logged_out(post(auth, "/api/v1/auth/logout", cookies))
    _assert_logged_out(post(auth, "/api/v1/auth/logout", headers={"Authorization": "Bearer nonsense"}))
    _assert_logged_out(post(auth, "/api/v1/auth/logout", data="not json", content_type="text/plain"))


def test_logout_revokes_both_tokens(auth: FunctionClient, users: FunctionClient) -> None:
    access, refresh = session_of(sign_in(auth))
    assert me(users, access).status_code == 200
    _assert_logged_out(post(auth, "/api/v1/auth/logout", {"s_access": access, "s_refresh": refresh}))
    assert_error(me(users, access), 403, "TOKEN_REVOKED")
    assert_error(me(users, bearer=access), 403, "TOKEN_REVOKED")
    assert_error(post(auth, "/api/v1/auth/refresh", {"s_refresh": refresh}), 401)
    _assert_logged_out(post(auth, "/api/v1/auth/logout", {"s_access": access, "s_refresh": refresh}))  # twice


def test_callback_from_another_browser_is_refused(auth: FunctionClient, provider_server: OAuthServer) -> None:
    """Login CSRF: a callback link made from an attacker's own sign-in fails in the victim's browser
    (the state cookie set when the sign-in started is missing or different)."""
    started = start(auth, "kakao")
    query = visit_provider(started.json["data"]["authorization_url"], nickname="attacker")
    auth.http.delete_cookie("s_oauth_state")  # the victim's browser never started this sign-in
    victim = come_back(auth, "kakao", query)
    assert victim.status_code == 302 and victim.headers["Location"] == FAILED
    assert "s_access" not in set_cookies(victim)
    started = start(auth, "kakao")
    query = visit_provider(started.json["data"]["authorization_url"], nickname="attacker")
    auth.set_cookie("s_oauth_state", "another-sign-in")
    assert come_back(auth, "kakao", query).headers["Location"] == FAILED
