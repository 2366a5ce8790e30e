"""The auth function's own settings (`Function(config=AuthConfig)`), read once at startup.

- `REFRESH_REUSE_GRACE_SECONDS` (default 30, 0 = off): a rotated refresh token presented again
  within this many seconds of its rotation gets the same new pair (the app refreshes from several
  requests at once); a reuse later revokes the whole session (refresh family).
- `KAKAO_REDIRECT_URIS`, `GOOGLE_REDIRECT_URIS`, `NAVER_REDIRECT_URIS`: comma lists of the exact
  callback URLs a sign-in with that provider may use (`https://<api>/api/v1/auth/<p>/callback`).
- `ECO2_PUBLIC_URL`: the API's public origin; a provider without a list above has one callback
  URL, `ECO2_PUBLIC_URL/api/v1/auth/<p>/callback` (`eco2 dev` sets it to its gateway).

A sign-in whose `redirect_uri` is not exactly one of its provider's callback URLs is refused, so
an authorization code can only ever travel back to this deployment (issue: a redirect_uri on
another host with the right path used to be accepted).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from eco2.core.errors import AppError
from functions.auth.providers import CALLBACK_PATH, PROVIDERS, OAuthProviderSettings, validate_redirect_uri

MAX_GRACE_SECONDS = 300


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _callbacks(uris: tuple[str, ...], provider: str) -> tuple[str, ...]:
    for uri in uris:
        try:
            validate_redirect_uri(uri, provider)
        except AppError:
            raise ValueError(
                f"{uri[:200]!r} is not a callback URL like https://api.example.com{CALLBACK_PATH.format(provider=provider)}"
            ) from None
    return uris


class AuthConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    oauth_state_ttl: int = Field(default=600, ge=30)  # seconds a sign-in may take
    oauth_http_timeout: float = Field(default=10, gt=0)  # seconds, per call to a provider
    # the providers: KAKAO_/GOOGLE_/NAVER_ + CLIENT_ID, CLIENT_SECRET, AUTHORIZE_URL, TOKEN_URL,
    # PROFILE_URL, SCOPE, PKCE (URLs are configuration, so a local server can stand in)
    kakao_client_id: str = ""
    kakao_client_secret: SecretStr = SecretStr("")
    kakao_authorize_url: str = "https://kauth.kakao.com/oauth/authorize"
    kakao_token_url: str = "https://kauth.kakao.com/oauth/token"
    kakao_profile_url: str = "https://kapi.kakao.com/v2/user/me"
    kakao_scope: str = "profile_nickname profile_image"
    kakao_pkce: bool = True
    google_client_id: str = ""
    google_client_secret: SecretStr = SecretStr("")
    google_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_profile_url: str = "https://openidconnect.googleapis.com/v1/userinfo"
    google_scope: str = "openid email profile"
    google_pkce: bool = True
    naver_client_id: str = ""
    naver_client_secret: SecretStr = SecretStr("")
    naver_authorize_url: str = "https://nid.naver.com/oauth2.0/authorize"
    naver_token_url: str = "https://nid.naver.com/oauth2.0/token"
    naver_profile_url: str = "https://openapi.naver.com/v1/nid/me"
    naver_scope: str = ""
    naver_pkce: bool = False
    refresh_reuse_grace_seconds: int = Field(default=30, ge=0, le=MAX_GRACE_SECONDS)
    eco2_public_url: str = ""
    kakao_redirect_uris: tuple[str, ...] = ()
    google_redirect_uris: tuple[str, ...] = ()
    naver_redirect_uris: tuple[str, ...] = ()

    @field_validator("kakao_redirect_uris", "google_redirect_uris", "naver_redirect_uris", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("kakao_redirect_uris")
    @classmethod
    def _kakao(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _callbacks(value, "kakao")

    @field_validator("google_redirect_uris")
    @classmethod
    def _google(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _callbacks(value, "google")

    @field_validator("naver_redirect_uris")
    @classmethod
    def _naver(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _callbacks(value, "naver")

    @field_validator("eco2_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ValueError("expected the API's origin, like https://api.example.com")
        return value

    def provider(self, name: str) -> OAuthProviderSettings | None:
        if name not in PROVIDERS:
            return None
        field = {key: getattr(self, f"{name}_{key}") for key in ("client_id", "authorize_url", "token_url")}
        return OAuthProviderSettings(
            name=name,
            client_secret=getattr(self, f"{name}_client_secret"),
            profile_url=getattr(self, f"{name}_profile_url"),
            scope=getattr(self, f"{name}_scope"),
            pkce=getattr(self, f"{name}_pkce"),
            **field,
        )

    def callback_urls(self, provider: str) -> tuple[str, ...]:
        """The exact redirect_uri values a sign-in with `provider` may use (empty: none configured)."""
        if provider not in PROVIDERS:
            return ()
        explicit: tuple[str, ...] = getattr(self, f"{provider}_redirect_uris")
        if explicit:
            return explicit
        if self.eco2_public_url:
            return (self.eco2_public_url + CALLBACK_PATH.format(provider=provider),)
        return ()
