"""auth providers without a network: profile parsing, PKCE, redirect_uri rules, request shapes,
and the token codec cross-checked against PyJWT."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest

from eco2.core.errors import BadRequest
from eco2.core.settings import Settings, read_section
from eco2.core.tokens import ExpiredToken, InvalidToken, TokenCodec
from functions.auth.config import AuthConfig
from functions.auth.devprovider import dev_provider_env, profile_payload
from functions.auth.providers import (
    ProviderError,
    ProviderProfile,
    make_provider,
    new_code_verifier,
    pkce_challenge,
    validate_redirect_uri,
)

SECRET = "unit-secret-0123456789-0123456789-0123"


def provider(name: str, **env: str):  # type: ignore[no-untyped-def]
    config = read_section(AuthConfig, {f"{name.upper()}_CLIENT_ID": f"{name}-id", **env}).provider(name)
    assert config is not None
    return make_provider(config, timeout=3)


# -- profiles -------------------------------------------------------------------------------------
def test_kakao_profile() -> None:
    payload = {
        "id": 4242424242,
        "connected_at": "2024-01-01T00:00:00Z",
        "kakao_account": {
            "email": "eco@kakao.example",
            "profile": {"nickname": "분리수거왕", "profile_image_url": "https://k.example/p.jpg"},
        },
    }
    assert provider("kakao").parse_profile(payload) == ProviderProfile(
        provider="kakao",
        provider_user_id="4242424242",
        email="eco@kakao.example",
        nickname="분리수거왕",
        name=None,
        profile_image_url="https://k.example/p.jpg",
    )


def test_kakao_profile_minimal_and_legacy_properties() -> None:
    minimal = provider("kakao").parse_profile({"id": 7})
    assert (minimal.provider_user_id, minimal.email, minimal.nickname) == ("7", None, None)
    legacy = provider("kakao").parse_profile({"id": 8, "properties": {"nickname": "옛날", "profile_image": "u"}})
    assert (legacy.nickname, legacy.profile_image_url) == ("옛날", "u")
    odd = provider("kakao").parse_profile({"id": 9, "kakao_account": "nope", "properties": [1]})
    assert odd.nickname is None


def test_google_profile() -> None:
    payload = {"sub": "1122334455", "email": "eco@gmail.example", "name": "Eco Kim", "picture": "https://g/p.png"}
    profile = provider("google").parse_profile(payload)
    assert profile == ProviderProfile("google", "1122334455", "eco@gmail.example", None, "Eco Kim", "https://g/p.png")


def test_naver_profile() -> None:
    payload = {
        "resultcode": "00",
        "message": "success",
        "response": {
            "id": "32742776",
            "email": "eco@naver.example",
            "nickname": "초록이",
            "name": "김초록",
            "profile_image": "https://n/p.png",
        },
    }
    profile = provider("naver").parse_profile(payload)
    assert profile == ProviderProfile("naver", "32742776", "eco@naver.example", "초록이", "김초록", "https://n/p.png")


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("kakao", {}),
        ("kakao", {"id": None}),
        ("kakao", {"id": True}),
        ("kakao", {"id": "   "}),
        ("google", {"email": "a@b.c"}),
        ("google", {"sub": {"x": 1}}),
        ("naver", {"resultcode": "024", "message": "Authentication failed"}),
        ("naver", {"resultcode": "00"}),
        ("naver", {"resultcode": "00", "response": {"email": "x@y.z"}}),
    ],
)
def test_profile_without_id_is_a_provider_error(name: str, payload: dict[str, object]) -> None:
    with pytest.raises(ProviderError):
        provider(name).parse_profile(payload)


def test_profile_fields_are_trimmed_and_bounded() -> None:
    profile = provider("google").parse_profile({"sub": " 1 ", "name": "  " + "x" * 500, "email": 5})
    assert profile.provider_user_id == "1"
    assert profile.name == "x" * 120
    assert profile.email == "5"


def test_profile_names_lose_control_and_format_characters() -> None:
    profile = provider("naver").parse_profile(
        {
            "resultcode": "00",
            "response": {"id": "n1", "nickname": "\u202eevil\u200b\x00", "name": "👩\u200d🌾 농부\u2066"},
        }
    )
    assert profile.nickname == "evil" and profile.name == "👩\u200d🌾 농부"
    blank = provider("google").parse_profile({"sub": "g1", "name": "\u200b\u200e"})
    assert blank.name is None


def test_dev_provider_profiles_parse_with_the_real_parsers() -> None:
    for name in ("kakao", "google", "naver"):
        first = provider(name).parse_profile(profile_payload(name, "이코"))
        again = provider(name).parse_profile(profile_payload(name, "이코"))
        other = provider(name).parse_profile(profile_payload(name, "페티"))
        assert first == again and first.provider_user_id != other.provider_user_id
        assert first.email and (first.nickname or first.name) == "이코"


# -- PKCE -----------------------------------------------------------------------------------------
def test_pkce_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifier_shape() -> None:
    verifiers = {new_code_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


# -- redirect_uri ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8080/api/v1/auth/kakao/callback",
        "https://api.example.com/api/v1/auth/kakao/callback",
        "http://localhost/api/v1/auth/kakao/callback",
    ],
)
def test_valid_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(f"  {uri} ", "kakao") == uri


@pytest.mark.parametrize(
    "uri",
    [
        None,
        "",
        "   ",
        "/api/v1/auth/kakao/callback",
        "api.example.com/api/v1/auth/kakao/callback",
        "ftp://api.example.com/api/v1/auth/kakao/callback",
        "javascript://api.example.com/api/v1/auth/kakao/callback",
        "https:///api/v1/auth/kakao/callback",
        "https://api.example.com/api/v1/auth/google/callback",
        "https://api.example.com/api/v1/auth/kakao/callback/",
        "https://api.example.com/api/v1/auth/kakao/callback/../callback",
        "https://api.example.com/API/v1/auth/kakao/callback",
        "https://api.example.com/api/v1/auth/kakao/callback?next=https://evil.example",
        "https://api.example.com/api/v1/auth/kakao/callback?",
        "https://api.example.com/api/v1/auth/kakao/callback#x",
        "https://user:pw@api.example.com/api/v1/auth/kakao/callback",
        "https://api.example.com:99999/api/v1/auth/kakao/callback",
        "https://api.example.com/api/v1/auth/kakao/call\nback",
        "https://api.exa mple.com/api/v1/auth/kakao/callback",
        "https://" + "a" * 3000 + ".com/api/v1/auth/kakao/callback",
    ],
)
def test_invalid_redirect_uris(uri: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        validate_redirect_uri(uri, "kakao")
    assert caught.value.code == "INVALID_REDIRECT_URI" and "redirect_uri" in caught.value.detail


# -- request shapes -------------------------------------------------------------------------------
def test_authorization_url_with_pkce() -> None:
    url = provider("kakao").authorization_url(state="s" * 20, redirect_uri="http://h/cb", code_challenge="CH")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://kauth.kakao.com/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "kakao-id",
        "redirect_uri": "http://h/cb",
        "state": "s" * 20,
        "scope": "profile_nickname profile_image",
        "code_challenge": "CH",
        "code_challenge_method": "S256",
    }


def test_authorization_url_keeps_an_existing_query_and_omits_empty_scope() -> None:
    url = provider("naver", NAVER_AUTHORIZE_URL="https://n.example/auth?x=1").authorization_url(
        state="st", redirect_uri="http://h/cb", code_challenge=None
    )
    assert url.startswith("https://n.example/auth?x=1&")
    query = parse_qs(urlsplit(url).query)
    assert "scope" not in query and "code_challenge" not in query


def test_token_params() -> None:
    kakao = provider("kakao", KAKAO_CLIENT_SECRET="shh").token_params(
        code="c", redirect_uri="http://h/cb", code_verifier="v", state="st"
    )
    assert kakao == {
        "grant_type": "authorization_code",
        "client_id": "kakao-id",
        "client_secret": "shh",
        "code": "c",
        "redirect_uri": "http://h/cb",
        "code_verifier": "v",
    }
    naver = provider("naver").token_params(code="c", redirect_uri="http://h/cb", code_verifier=None, state="st")
    assert naver["state"] == "st" and "code_verifier" not in naver and "client_secret" not in naver


def test_pkce_defaults_per_provider() -> None:
    assert provider("kakao").pkce and provider("google").pkce and not provider("naver").pkce
    assert not provider("kakao", KAKAO_PKCE="false").pkce


def test_dev_provider_env_configures_all_three() -> None:
    env = dev_provider_env("http://127.0.0.1:8000/")
    section = read_section(AuthConfig, env)
    for name in ("kakao", "google", "naver"):
        config = section.provider(name)
        assert config is not None and config.configured
        assert config.token_url == f"http://127.0.0.1:8000/dev/oauth/{name}/token"
        assert config.client_secret.get_secret_value() == f"dev-{name}-secret"


# -- eco2.core.tokens against PyJWT ------------------------------------------------------------------
def _codec() -> TokenCodec:
    return TokenCodec(Settings.from_env({"JWT_SECRET": SECRET, "JWT_ISSUER": "eco2-test", "JWT_AUDIENCE": "app"}))


@pytest.mark.parametrize("token_type", ["access", "refresh"])
def test_our_tokens_decode_with_pyjwt(token_type: str) -> None:
    issued = _codec().issue("3f1c0e4e-0000-4000-8000-000000000001", token_type, "naver")  # type: ignore[arg-type]
    decoded = pyjwt.decode(issued.token, SECRET, algorithms=["HS256"], audience="app", issuer="eco2-test")
    assert decoded == {
        "sub": issued.claims.sub,
        "jti": issued.claims.jti,
        "type": token_type,
        "iat": issued.claims.iat,
        "nbf": issued.claims.nbf,
        "exp": issued.claims.exp,
        "iss": "eco2-test",
        "aud": "app",
        "provider": "naver",
    }
    assert pyjwt.get_unverified_header(issued.token) == {"alg": "HS256", "typ": "JWT"}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_pyjwt_tokens_verify_with_our_codec() -> None:
    now = int(time.time())
    claims = {
        "sub": "u-1",
        "jti": "jti-1",
        "type": "refresh",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "iss": "eco2-test",
        "aud": "app",
        "provider": "google",
    }
    verified = _codec().verify(pyjwt.encode(claims, SECRET, algorithm="HS256"), "refresh")
    assert (verified.sub, verified.jti, verified.type, verified.provider) == ("u-1", "jti-1", "refresh", "google")
    assert _codec().verify(pyjwt.encode({**claims, "aud": ["other", "app"]}, SECRET, algorithm="HS256"), "refresh")
    with pytest.raises(InvalidToken):  # signed with another key
        _codec().verify(pyjwt.encode(claims, SECRET + "x", algorithm="HS256"), "refresh")
    with pytest.raises(InvalidToken):  # another algorithm, even with the right key
        _codec().verify(pyjwt.encode(claims, SECRET, algorithm="HS512"), "refresh")
    with pytest.raises(InvalidToken):
        _codec().verify(pyjwt.encode({**claims, "iss": "someone"}, SECRET, algorithm="HS256"), "refresh")
    with pytest.raises(InvalidToken):
        _codec().verify(pyjwt.encode(claims, SECRET, algorithm="HS256"), "access")
    with pytest.raises(ExpiredToken):
        _codec().verify(pyjwt.encode({**claims, "exp": now - 60}, SECRET, algorithm="HS256"), "refresh")


# -- the development provider mounted under /dev/oauth (as `eco2 dev`'s gateway does) --------------
def test_dev_provider_works_mounted_under_a_prefix() -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from functions.auth.devprovider import make_dev_provider

    provider_app = make_dev_provider(env={"ECO2_PUBLIC_URL": "http://127.0.0.1:8000"})
    gateway = DispatcherMiddleware(Response("api", status=200), {"/dev/oauth": provider_app})
    client = Client(gateway)
    callback = "http://127.0.0.1:8000/api/v1/auth/google/callback"
    verifier = new_code_verifier()
    params = {
        "client_id": "dev-google-client",
        "redirect_uri": callback,
        "response_type": "code",
        "state": "st-1",
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    page = client.get("/dev/oauth/google/authorize", query_string=params)
    assert page.status_code == 200 and 'action="authorize"' in page.get_data(as_text=True)
    signed_in = client.post("/dev/oauth/google/authorize", data={**params, "nickname": "글래시", "action": "signin"})
    assert signed_in.status_code == 302
    location = urlsplit(signed_in.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == callback
    code = parse_qs(location.query)["code"][0]
    token = client.post(
        "/dev/oauth/google/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "code_verifier": verifier,
            "client_id": "dev-google-client",
            "client_secret": "dev-google-secret",
        },
    )
    assert token.status_code == 200, token.json
    assert token.json is not None and token.json["expires_in"] > 0
    access = token.json["access_token"]
    profile = client.get("/dev/oauth/google/profile", headers={"Authorization": f"Bearer {access}"})
    assert profile.json is not None and profile.json["name"] == "글래시"
    assert client.get("/dev/oauth/kakao/profile", headers={"Authorization": f"Bearer {access}"}).status_code == 401
    assert client.get("/dev/oauth/github/authorize").status_code == 404
    assert client.get("/dev/oauth/google/token").status_code == 405


# -- the auth function's own settings: callback URLs and the refresh grace window -------------------
def auth_config(**env: str):  # type: ignore[no-untyped-def]
    from eco2.core.settings import read_section
    from functions.auth.config import AuthConfig

    return read_section(AuthConfig, env)


def test_auth_config_defaults() -> None:
    config = auth_config()
    assert config.refresh_reuse_grace_seconds == 30
    assert config.callback_urls("kakao") == ()  # nothing configured: no sign-in can start
    assert auth_config(REFRESH_REUSE_GRACE_SECONDS="0").refresh_reuse_grace_seconds == 0


def test_callback_urls_from_the_public_url_and_per_provider() -> None:
    config = auth_config(
        ECO2_PUBLIC_URL="http://127.0.0.1:8000/",
        NAVER_REDIRECT_URIS=" https://a.example/api/v1/auth/naver/callback ,https://b.example/api/v1/auth/naver/callback",
    )
    assert config.callback_urls("kakao") == ("http://127.0.0.1:8000/api/v1/auth/kakao/callback",)
    assert config.callback_urls("google") == ("http://127.0.0.1:8000/api/v1/auth/google/callback",)
    assert config.callback_urls("naver") == (
        "https://a.example/api/v1/auth/naver/callback",
        "https://b.example/api/v1/auth/naver/callback",
    )
    assert config.callback_urls("github") == ()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAKAO_REDIRECT_URIS", "https://a.example/api/v1/auth/naver/callback"),
        ("KAKAO_REDIRECT_URIS", "https://a.example/api/v1/auth/kakao/callback?next=/"),
        ("GOOGLE_REDIRECT_URIS", "/api/v1/auth/google/callback"),
        ("ECO2_PUBLIC_URL", "127.0.0.1:8000"),
        ("ECO2_PUBLIC_URL", "https://api.example.com/v1"),
        ("REFRESH_REUSE_GRACE_SECONDS", "-5"),
        ("REFRESH_REUSE_GRACE_SECONDS", "3600"),
    ],
)
def test_bad_auth_config_is_named(variable: str, value: str) -> None:
    from eco2.core.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        auth_config(**{variable: value})
    assert variable in str(caught.value)


def test_dev_provider_without_a_configured_callback_redirects_nowhere() -> None:
    from werkzeug.test import Client

    from functions.auth.devprovider import make_dev_provider

    client = Client(make_dev_provider(env={}))
    params = {
        "client_id": "dev-kakao-client",
        "redirect_uri": "http://127.0.0.1:8000/api/v1/auth/kakao/callback",
        "response_type": "code",
        "state": "st",
    }
    for response in (
        client.get("/kakao/authorize", query_string=params),
        client.post("/kakao/authorize", data={**params, "action": "signin"}),
        client.post("/kakao/authorize", data={**params, "action": "deny"}),
    ):
        assert response.status_code == 400 and "Location" not in response.headers


# -- refresh rotation on the embedded Redis of `eco2 dev` (fakeredis: WATCH/MULTI, no Lua) ----------
def test_rotation_on_the_embedded_redis() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from eco2.core.embedded import redis_client
    from eco2.core.errors import Unauthorized
    from functions.auth.service import issue_pair, rotate

    store = redis_client(f"memory://rotation-{time.time_ns()}")
    codec = _codec()
    first = issue_pair(codec, "u1", "kakao")
    claims = codec.verify(first.refresh.token, "refresh")
    barrier = threading.Barrier(6)

    def one(_: int) -> tuple[str, str]:
        barrier.wait()
        pair = rotate(store, codec, claims, grace_seconds=30)
        return pair.access.token, pair.refresh.token

    with ThreadPoolExecutor(6) as pool:
        pairs = set(pool.map(one, range(6)))
    assert len(pairs) == 1
    (access, refresh), now = pairs.pop(), time.time()
    assert codec.verify(refresh, "refresh").sid == claims.sid == codec.verify(access, "access").sid
    with pytest.raises(Unauthorized) as reused:  # the same token after the window
        rotate(store, codec, claims, grace_seconds=30, now=now + 31)
    assert reused.value.code == "REFRESH_TOKEN_REUSED"
    with pytest.raises(Unauthorized) as revoked:  # its successor belongs to the revoked session
        rotate(store, codec, codec.verify(refresh, "refresh"), grace_seconds=30)
    assert revoked.value.code == "REFRESH_TOKEN_REVOKED"
