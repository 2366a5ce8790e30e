"""One OAuth 2.0 authorization-code client for Kakao, Google and Naver.

The three providers differ only in small ways — which extra parameters the token request takes
(Naver wants `state`), whether PKCE is used (per settings) and the shape of the profile JSON — so
one class does the HTTP and each subclass parses its own profile. Every URL comes from settings,
so the development provider (`functions.auth.devprovider`) can stand in for all three.

Nothing here knows about Flask, the database or cookies. Failures talking to a provider raise
`ProviderError` with a reason that is safe to log (never a token, code or secret).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from pydantic import SecretStr

from eco2.core.errors import BadRequest

PROVIDERS = ("kakao", "google", "naver")
CALLBACK_PATH = "/api/v1/auth/{provider}/callback"


@dataclass(frozen=True)
class OAuthProviderSettings:
    """One OAuth provider's endpoints and credentials (all configuration, so a local server can stand in)."""

    name: str
    client_id: str
    client_secret: SecretStr
    authorize_url: str
    token_url: str
    profile_url: str
    scope: str
    pkce: bool

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.authorize_url and self.token_url and self.profile_url)


MAX_REDIRECT_URI = 2048


class ProviderError(Exception):
    """The provider failed or answered something unusable; `reason` is safe to log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ProviderProfile:
    provider: str
    provider_user_id: str
    email: str | None = None
    nickname: str | None = None
    name: str | None = None
    profile_image_url: str | None = None


# -- PKCE (RFC 7636) ------------------------------------------------------------------------------
def new_code_verifier() -> str:
    """86 characters from the unreserved set (RFC 7636 §4.1 wants 43–128)."""
    return secrets.token_urlsafe(64)


def pkce_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- redirect_uri ---------------------------------------------------------------------------------
def validate_redirect_uri(uri: str | None, provider: str) -> str:
    """The callback URL the provider sends the browser back to: http(s), a host, and exactly the
    path `/api/v1/auth/{provider}/callback` (no query, fragment or credentials)."""
    expected_path = CALLBACK_PATH.format(provider=provider)
    if not uri or not uri.strip():
        raise BadRequest("redirect_uri: required (the callback URL)", "INVALID_REDIRECT_URI")
    uri = uri.strip()
    problem = f"redirect_uri: must be an http(s) URL whose path is {expected_path}"
    if len(uri) > MAX_REDIRECT_URI:
        raise BadRequest("redirect_uri: too long", "INVALID_REDIRECT_URI")
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise BadRequest(problem, "INVALID_REDIRECT_URI") from None
    del port
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path != expected_path
        or parts.query
        or parts.fragment
        or uri.endswith(("?", "#"))
        or any(ch.isspace() for ch in uri)
    ):
        raise BadRequest(problem, "INVALID_REDIRECT_URI")
    return uri


# -- helpers for parsing JSON the provider sent ------------------------------------------------------
def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def _display_text(value: Any, limit: int) -> str | None:
    """A name from the provider without control or format characters (bidi overrides, zero-width
    spaces; the emoji joiner stays), the same characters the users function refuses in a nickname."""
    text = _text(value, limit * 2)
    if text is None:
        return None
    kept = "".join(ch for ch in text if ch == "\u200d" or unicodedata.category(ch) not in ("Cc", "Cf"))
    return kept.strip()[:limit] or None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- the providers --------------------------------------------------------------------------------
class OAuthProvider:
    """Authorization-code flow against one provider's configured endpoints."""

    name: ClassVar[str] = ""

    def __init__(self, config: OAuthProviderSettings, timeout: float = 10.0) -> None:
        self.config = config
        self.timeout = timeout

    @property
    def pkce(self) -> bool:
        return self.config.pkce

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        if self.config.scope:
            params["scope"] = self.config.scope
        if code_challenge is not None:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        separator = "&" if urlsplit(self.config.authorize_url).query else "?"
        return f"{self.config.authorize_url}{separator}{urlencode(params)}"

    def token_params(self, *, code: str, redirect_uri: str, code_verifier: str | None, state: str) -> dict[str, str]:
        params = {
            "grant_type": "authorization_code",
            "client_id": self.config.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        secret = self.config.client_secret.get_secret_value()
        if secret:
            params["client_secret"] = secret
        if code_verifier is not None:
            params["code_verifier"] = code_verifier
        return params

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None, state: str) -> str:
        """The authorization code for the provider's access token."""
        import requests

        data = self.token_params(code=code, redirect_uri=redirect_uri, code_verifier=code_verifier, state=state)
        try:
            response = requests.post(
                self.config.token_url,
                data=data,
                headers={"Accept": "application/json"},
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise ProviderError("token endpoint timed out") from None
        except requests.RequestException as exc:
            raise ProviderError(f"token endpoint unreachable ({type(exc).__name__})") from None
        payload = self._json(response, "token endpoint")
        if response.status_code != 200:
            raise ProviderError(f"token endpoint answered {response.status_code}{self._oauth_error(payload)}")
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError(f"token endpoint sent no access_token{self._oauth_error(payload)}")
        return token

    def fetch_profile(self, access_token: str) -> ProviderProfile:
        import requests

        try:
            response = requests.get(
                self.config.profile_url,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except requests.Timeout:
            raise ProviderError("profile endpoint timed out") from None
        except requests.RequestException as exc:
            raise ProviderError(f"profile endpoint unreachable ({type(exc).__name__})") from None
        payload = self._json(response, "profile endpoint")
        if response.status_code != 200:
            raise ProviderError(f"profile endpoint answered {response.status_code}")
        return self.parse_profile(payload)

    def parse_profile(self, payload: dict[str, Any]) -> ProviderProfile:
        raise NotImplementedError

    def _profile(self, user_id: Any, **fields: Any) -> ProviderProfile:
        provider_user_id = _text(user_id, 255)
        if provider_user_id is None:
            raise ProviderError("profile has no user id")
        return ProviderProfile(
            provider=self.name,
            provider_user_id=provider_user_id,
            email=_text(fields.get("email"), 320),
            nickname=_display_text(fields.get("nickname"), 120),
            name=_display_text(fields.get("name"), 120),
            profile_image_url=_text(fields.get("profile_image_url"), 1024),
        )

    @staticmethod
    def _json(response: Any, what: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            raise ProviderError(f"{what} answered {response.status_code} without JSON") from None
        if not isinstance(payload, dict):
            raise ProviderError(f"{what} answered {response.status_code} with unexpected JSON")
        return payload

    @staticmethod
    def _oauth_error(payload: dict[str, Any]) -> str:
        """The standard `error` code (e.g. invalid_grant) is safe to log; descriptions are not kept."""
        error = payload.get("error")
        if isinstance(error, str) and error:
            return f" (error={error[:64]})"
        return ""


class KakaoProvider(OAuthProvider):
    """`{"id": 123, "kakao_account": {"email", "profile": {"nickname", "profile_image_url"}}}`."""

    name = "kakao"

    def parse_profile(self, payload: dict[str, Any]) -> ProviderProfile:
        account = _object(payload.get("kakao_account"))
        profile = _object(account.get("profile"))
        properties = _object(payload.get("properties"))  # older apps still get the profile here
        return self._profile(
            payload.get("id"),
            email=account.get("email"),
            nickname=profile.get("nickname") or properties.get("nickname"),
            profile_image_url=profile.get("profile_image_url") or properties.get("profile_image"),
        )


class GoogleProvider(OAuthProvider):
    """OpenID Connect userinfo: `{"sub", "email", "name", "picture"}`."""

    name = "google"

    def parse_profile(self, payload: dict[str, Any]) -> ProviderProfile:
        return self._profile(
            payload.get("sub"),
            email=payload.get("email"),
            name=payload.get("name"),
            profile_image_url=payload.get("picture"),
        )


class NaverProvider(OAuthProvider):
    """`{"resultcode": "00", "message": "success", "response": {"id", "email", "nickname", "name", "profile_image"}}`;
    the token request also carries `state`."""

    name = "naver"

    def token_params(self, *, code: str, redirect_uri: str, code_verifier: str | None, state: str) -> dict[str, str]:
        params = super().token_params(code=code, redirect_uri=redirect_uri, code_verifier=code_verifier, state=state)
        params["state"] = state
        return params

    def parse_profile(self, payload: dict[str, Any]) -> ProviderProfile:
        if payload.get("resultcode") != "00":
            raise ProviderError(f"profile resultcode {str(payload.get('resultcode'))[:16]!r}")
        response = _object(payload.get("response"))
        return self._profile(
            response.get("id"),
            email=response.get("email"),
            nickname=response.get("nickname"),
            name=response.get("name"),
            profile_image_url=response.get("profile_image"),
        )


_CLASSES: dict[str, type[OAuthProvider]] = {"kakao": KakaoProvider, "google": GoogleProvider, "naver": NaverProvider}
assert set(_CLASSES) == set(PROVIDERS)


def is_known(name: str) -> bool:
    return name in _CLASSES


def make_provider(config: OAuthProviderSettings, timeout: float = 10.0) -> OAuthProvider:
    return _CLASSES[config.name](config, timeout)
