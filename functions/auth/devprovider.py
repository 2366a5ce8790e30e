"""A local OAuth 2.0 provider for development and tests: Kakao, Google and Naver without accounts.

A plain WSGI app (werkzeug, no Flask) serving, for each provider name `p` in kakao, google, naver:

    GET      /dev/oauth/{p}/authorize  a sign-in page (nickname + "Sign in"); never issues a code
    POST     /dev/oauth/{p}/authorize  the page's form (`nickname`, `action=signin`): redirects to
                                       redirect_uri with `code` and `state`; "Cancel"
                                       (`action=deny`, or `deny=1`) redirects with
                                       `error=access_denied`. Scripts post the same form.
    POST     /dev/oauth/{p}/token      authorization_code grant: client_id/secret, single-use code,
                                       redirect_uri match, PKCE S256 verifier when a challenge was
                                       sent, `state` for naver → {"access_token", "token_type", "expires_in"}
    GET      /dev/oauth/{p}/profile    Bearer token → the provider's own profile JSON shape, with a
                                       stable id per (provider, nickname)

The paths also work with the `/dev/oauth` prefix stripped (mounted under it by a dispatcher).
`dev_provider_env(base_url)` gives the KAKAO_/GOOGLE_/NAVER_ settings that point the auth function
at it. It redirects only to the callback URLs the auth function is configured with
(`AuthConfig.callback_urls`: `<P>_REDIRECT_URIS`, else `ECO2_PUBLIC_URL` + the callback path), so
a sign-in link cannot send a code anywhere else. It holds everything in memory, accepts any
nickname and must only ever be mounted in development (`dev_provider_allowed(settings)`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from functions.auth.providers import pkce_challenge

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from eco2.core.settings import Settings

PROVIDER_NAMES = ("kakao", "google", "naver")
MOUNT_PATH = "/dev/oauth"
CODE_TTL = 120
TOKEN_TTL = 3600
DEFAULT_NICKNAME = "개발자"
_PASSED_ON = ("client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method")
_ROUTE = re.compile(r"^(?:/dev/oauth)?/(?P<provider>kakao|google|naver)/(?P<endpoint>authorize|token|profile)/?$")


def dev_client_id(provider: str) -> str:
    return f"dev-{provider}-client"


def dev_client_secret(provider: str) -> str:
    return f"dev-{provider}-secret"


def dev_provider_env(base_url: str) -> dict[str, str]:
    """Settings that send the auth function to the development provider served at `base_url`."""
    base = base_url.rstrip("/")
    env: dict[str, str] = {}
    for name in PROVIDER_NAMES:
        prefix = name.upper()
        env[f"{prefix}_CLIENT_ID"] = dev_client_id(name)
        env[f"{prefix}_CLIENT_SECRET"] = dev_client_secret(name)
        env[f"{prefix}_AUTHORIZE_URL"] = f"{base}{MOUNT_PATH}/{name}/authorize"
        env[f"{prefix}_TOKEN_URL"] = f"{base}{MOUNT_PATH}/{name}/token"
        env[f"{prefix}_PROFILE_URL"] = f"{base}{MOUNT_PATH}/{name}/profile"
    return env


def dev_provider_allowed(settings: Settings) -> bool:
    """Only `ECO2_ENV=development` with `DEV_LOGIN_ENABLED=true` may mount the development provider."""
    return settings.environment == "development" and settings.dev_login_enabled


@dataclass(frozen=True)
class _Grant:
    provider: str
    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str | None
    nickname: str
    expires: float


@dataclass(frozen=True)
class _Token:
    provider: str
    nickname: str
    expires: float


def _json(body: Any, status: int = 200) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status)


def _append_query(url: str, params: Mapping[str, str]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


class DevOAuthProvider:
    """The WSGI app. `clients` maps provider name → (client_id, client_secret)."""

    def __init__(
        self,
        clients: Mapping[str, tuple[str, str]] | None = None,
        redirect_uris: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """`redirect_uris`: provider name → the only callback URLs it redirects to (exact match)."""
        self.clients = dict(clients or {p: (dev_client_id(p), dev_client_secret(p)) for p in PROVIDER_NAMES})
        self.redirect_uris = {name: tuple(uris) for name, uris in (redirect_uris or {}).items()}
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        found = _ROUTE.match(request.path)
        if found is None or found["provider"] not in self.clients:
            return _json({"error": "not_found"}, 404)
        provider, endpoint = found["provider"], found["endpoint"]
        if endpoint == "authorize" and request.method in ("GET", "POST"):
            return self.authorize(request, provider)
        if endpoint == "token" and request.method == "POST":
            return self.token(request, provider)
        if endpoint == "profile" and request.method in ("GET", "POST"):
            return self.profile(request, provider)
        return _json({"error": "method_not_allowed"}, 405)

    # -- authorize ------------------------------------------------------------------------------
    def authorize(self, request: Request, provider: str) -> Response:
        values = request.values
        client_id = values.get("client_id", "")
        redirect_uri = values.get("redirect_uri", "")
        problem = None
        if client_id != self.clients[provider][0]:
            problem = "unknown client_id"
        elif redirect_uri not in self.redirect_uris.get(provider, ()):
            problem = "redirect_uri is not the callback URL configured for this server"
        elif values.get("response_type", "code") != "code":
            problem = "only response_type=code is supported"
        elif values.get("code_challenge") and values.get("code_challenge_method", "plain") != "S256":
            problem = "only code_challenge_method=S256 is supported"
        if problem is not None:  # never redirect to an unverified redirect_uri (RFC 6749 §4.1.2.1)
            return self._page(provider, values, error=problem, status=400)
        state = values.get("state", "")
        if values.get("action") == "deny" or values.get("deny") == "1":
            return Response(status=302, headers={"Location": _append_query(redirect_uri, self._deny(state))})
        if request.method != "POST" or values.get("action") != "signin":  # a GET never issues a code
            return self._page(provider, values)
        nickname = (values.get("nickname") or "").strip()[:60] or DEFAULT_NICKNAME
        code = secrets.token_urlsafe(24)
        grant = _Grant(
            provider=provider,
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=values.get("code_challenge") or None,
            nickname=nickname,
            expires=time.time() + CODE_TTL,
        )
        with self._lock:
            self._prune()
            self._grants[code] = grant
        params = {"code": code}
        if state:
            params["state"] = state
        return Response(status=302, headers={"Location": _append_query(redirect_uri, params)})

    @staticmethod
    def _deny(state: str) -> dict[str, str]:
        params = {"error": "access_denied", "error_description": "The user cancelled the sign-in."}
        if state:
            params["state"] = state
        return params

    def _page(self, provider: str, values: Mapping[str, str], error: str | None = None, status: int = 200) -> Response:
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(values[name], quote=True)}">'
            for name in _PASSED_ON
            if values.get(name)
        )
        title = f"{provider.capitalize()} (development sign-in)"
        if error is not None:
            body = f'<p class="error">This sign-in request is invalid: {html.escape(error)}</p>'
        else:
            body = f"""<form method="post" action="authorize">
{hidden}
<label for="nickname">Nickname / 닉네임</label>
<input id="nickname" name="nickname" value="{html.escape(DEFAULT_NICKNAME)}" maxlength="60" autofocus required>
<div class="buttons">
<button type="submit" name="action" value="signin">Sign in</button>
<button type="submit" name="action" value="deny" formnovalidate>Cancel</button>
</div>
</form>
<p class="note">A local stand-in for {html.escape(provider)}: no account or password; the same nickname is
the same user.</p>"""
        page = f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0 1rem;box-sizing:border-box}}
button{{padding:.5rem 1rem;margin-right:.5rem}}.error{{color:#b00}}.note{{color:#666;font-size:.85rem}}</style>
</head><body><h1>{html.escape(title)}</h1>
{body}
</body></html>"""
        response = Response(page, status=status, content_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- token ----------------------------------------------------------------------------------
    def token(self, request: Request, provider: str) -> Response:
        form = request.form
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if request.authorization is not None and request.authorization.type == "basic":
            client_id = request.authorization.username or client_id
            client_secret = request.authorization.password or client_secret
        expected_id, expected_secret = self.clients[provider]
        if client_id != expected_id or (expected_secret and client_secret != expected_secret):
            return _oauth_error("invalid_client", "unknown client or wrong secret", 401)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type", "only authorization_code is supported")
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # single use, even when the rest fails
        if grant is None or grant.expires < time.time():
            return _oauth_error("invalid_grant", "unknown, expired or already used code")
        if grant.provider != provider or grant.client_id != client_id:
            return _oauth_error("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri", "") != grant.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier or pkce_challenge(verifier) != grant.code_challenge:
                return _oauth_error("invalid_grant", "PKCE verification failed")
        if provider == "naver" and grant.state and form.get("state") != grant.state:
            return _oauth_error("invalid_request", "state does not match")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access_token] = _Token(provider, grant.nickname, time.time() + TOKEN_TTL)
        return _json({"access_token": access_token, "token_type": "bearer", "expires_in": TOKEN_TTL})

    # -- profile --------------------------------------------------------------------------------
    def profile(self, request: Request, provider: str) -> Response:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        with self._lock:
            token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires < time.time() or token.provider != provider:
            if provider == "naver":
                return _json({"resultcode": "024", "message": "Authentication failed"}, 401)
            return _json({"error": "invalid_token"}, 401)
        return _json(profile_payload(provider, token.nickname))

    def _prune(self) -> None:
        now = time.time()
        for code in [c for c, g in self._grants.items() if g.expires < now]:
            del self._grants[code]
        for key in [t for t, v in self._tokens.items() if v.expires < now]:
            del self._tokens[key]


def profile_payload(provider: str, nickname: str) -> dict[str, Any]:
    """The provider's own profile JSON for a development user; the id is stable per nickname."""
    digest = hashlib.sha256(f"{provider}:{nickname}".encode()).digest()
    email = f"{provider}-{digest[:5].hex()}@dev.eco2.local"
    if provider == "kakao":
        return {
            "id": int.from_bytes(digest[:6], "big"),
            "kakao_account": {"email": email, "profile": {"nickname": nickname}},
            "properties": {"nickname": nickname},
        }
    if provider == "google":
        return {
            "sub": str(int.from_bytes(digest[:9], "big")),
            "email": email,
            "email_verified": True,
            "name": nickname,
        }
    return {
        "resultcode": "00",
        "message": "success",
        "response": {
            "id": base64.urlsafe_b64encode(digest[:24]).decode("ascii").rstrip("="),
            "email": email,
            "nickname": nickname,
            "name": nickname,
        },
    }


def make_dev_provider(
    clients: Mapping[str, tuple[str, str]] | None = None, env: Mapping[str, str] | None = None
) -> DevOAuthProvider:
    """The development provider as a WSGI app (mount it under /dev/oauth, or serve it at the root),
    redirecting only to the auth function's callback URLs as configured in `env` (default: the
    process environment)."""
    from eco2.core.settings import read_section
    from functions.auth.config import AuthConfig

    config: AuthConfig = read_section(AuthConfig, os.environ if env is None else env)
    return DevOAuthProvider(clients, {name: config.callback_urls(name) for name in PROVIDER_NAMES})
