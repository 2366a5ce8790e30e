"""Typed settings, read once from the environment (12-factor).

Every value has one environment variable. `Settings.from_env(uses=...)` fails with one clear
message listing everything missing for the clients a function uses. Secrets are `Secret`
instances, which never show their value in `repr`, `str` or logs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from pydantic import BaseModel

ENVIRONMENTS = ("development", "test", "production")


class SettingsError(RuntimeError):
    """Configuration is missing or invalid; raised at startup, before serving."""


def read_section(section: type[BaseModel], env: Mapping[str, str] | None = None) -> Any:
    """A function's own settings section: a pydantic model whose field `foo_bar` (or its alias)
    is read from the variable `FOO_BAR` of `env` (default os.environ). Every problem is listed in
    one SettingsError; values are never echoed (use `SecretStr` for secrets)."""
    from pydantic import ValidationError

    env = os.environ if env is None else env
    variables = {info.alias or name: (info.alias or name).upper() for name, info in section.model_fields.items()}
    values = {field: env[key] for field, key in variables.items() if env.get(key, "").strip()}
    try:
        return section.model_validate(values)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            where = str(item["loc"][0]) if item["loc"] else ""
            problems.append(f"{variables.get(where, where.upper() or section.__name__)}: {item['msg']}")
        raise SettingsError("invalid configuration:\n  - " + "\n  - ".join(problems)) from None


class Secret:
    """A string that does not reveal itself in reprs or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask_url(url: str) -> str:
    """`postgresql://u:pw@h/db` -> `postgresql://u:***@h/db` (for logs and `eco2 dev`'s banner)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Settings:
    environment: str = "production"
    service_name: str = "eco2"
    # data clients
    database_url: Secret = field(default_factory=lambda: Secret(""))
    database_pool_size: int = 5
    redis_url: Secret = field(default_factory=lambda: Secret(""))
    redis_max_connections: int = 1000
    rabbitmq_url: Secret = field(default_factory=lambda: Secret(""))
    broker_url: str = ""  # K_SINK: the Knative broker ingress
    broker_name: str = "eco2"
    s3_endpoint_url: str = ""
    s3_bucket: str = "eco2-images"
    s3_region: str = "ap-northeast-2"
    aws_access_key_id: str = ""
    aws_secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    cdn_base_url: str = ""
    openai_base_url: str = ""
    openai_api_key: Secret = field(default_factory=lambda: Secret(""))
    llm_timeout: float = 30.0
    llm_max_attempts: int = 3
    llm_backoff: float = 0.5
    scan_image_hosts: tuple[str, ...] = ()
    # tokens and cookies
    jwt_secret: Secret = field(default_factory=lambda: Secret(""))
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "eco2"
    jwt_audience: str = "eco2-app"
    jwt_leeway_seconds: int = 10
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 14 * 24 * 3600
    cookie_domain: str = ""
    cookie_secure: bool = False
    allowed_origins: tuple[str, ...] = ()
    trusted_proxy_hops: int = 0  # proxies in front that append to X-Forwarded-For (rate limits)
    rate_limits: str = ""  # ECO2_RATE_LIMITS: JSON {"METHOD /path": "N/period" | "off"} overrides
    dev_login_enabled: bool = False  # the development sign-in (auth function, eco2 dev)
    # container contract
    port: int = 8080
    workers: int = 1
    threads: int = 8
    shutdown_grace_seconds: int = 25
    log_level: str = "INFO"

    def describe(self) -> dict[str, str]:
        """Every setting as printable text, secrets masked (for logs and `eco2 dev`)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                raw = value.get()
                out[f.name] = mask_url(raw) if "://" in raw else repr(value)
            else:
                out[f.name] = str(value)
        return out

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, uses: Iterable[str] = (), service_name: str = "eco2"
    ) -> Settings:
        """Read settings once. `uses` names the clients the function needs (db, redis, ...)."""
        env = os.environ if env is None else env
        problems: list[str] = []
        reader = _Reader(env, problems)
        environment = reader.choice("ECO2_ENV", ENVIRONMENTS, "production")
        is_dev = environment != "production"

        jwt_secret = reader.text("JWT_SECRET", "")  # never a constant default: `eco2 dev` makes one per data dir
        settings = cls(
            environment=environment,
            service_name=reader.text("K_SERVICE", service_name),
            database_url=Secret(reader.text("DATABASE_URL", "")),
            database_pool_size=reader.integer("DATABASE_POOL_SIZE", 5, minimum=1),
            redis_url=Secret(reader.text("REDIS_URL", "")),
            redis_max_connections=reader.integer("REDIS_MAX_CONNECTIONS", 1000, minimum=1),
            rabbitmq_url=Secret(reader.text("RABBITMQ_URL", "")),
            broker_url=reader.text("K_SINK", "") or reader.text("BROKER_URL", ""),
            broker_name=reader.text("ECO2_BROKER", "eco2"),
            s3_endpoint_url=reader.text("S3_ENDPOINT_URL", ""),
            s3_bucket=reader.text("S3_BUCKET", "eco2-images"),
            s3_region=reader.text("AWS_REGION", "ap-northeast-2"),
            aws_access_key_id=reader.text("AWS_ACCESS_KEY_ID", ""),
            aws_secret_access_key=Secret(reader.text("AWS_SECRET_ACCESS_KEY", "")),
            cdn_base_url=reader.text("CDN_BASE_URL", ""),
            openai_base_url=reader.text("OPENAI_BASE_URL", ""),
            openai_api_key=Secret(reader.text("OPENAI_API_KEY", "")),
            llm_timeout=reader.number("LLM_TIMEOUT", 30.0, minimum=0.1),
            llm_max_attempts=reader.integer("LLM_MAX_ATTEMPTS", 3, minimum=1),
            llm_backoff=reader.number("LLM_BACKOFF", 0.5, minimum=0.0),
            scan_image_hosts=reader.hosts("SCAN_IMAGE_HOSTS"),
            jwt_secret=Secret(jwt_secret),
            jwt_algorithm=reader.choice("JWT_ALGORITHM", ("HS256", "HS384", "HS512"), "HS256"),
            jwt_issuer=reader.text("JWT_ISSUER", "eco2"),
            jwt_audience=reader.text("JWT_AUDIENCE", "eco2-app"),
            jwt_leeway_seconds=reader.integer("JWT_LEEWAY_SECONDS", 10, minimum=0),
            access_token_ttl=reader.integer("ACCESS_TOKEN_TTL", 3600, minimum=60),
            refresh_token_ttl=reader.integer("REFRESH_TOKEN_TTL", 14 * 24 * 3600, minimum=60),
            cookie_domain=reader.text("COOKIE_DOMAIN", ""),
            cookie_secure=reader.boolean("COOKIE_SECURE", not is_dev),
            allowed_origins=reader.origins("ALLOWED_ORIGINS"),
            trusted_proxy_hops=reader.integer("TRUSTED_PROXY_HOPS", 0, minimum=0),
            rate_limits=reader.rate_limits("ECO2_RATE_LIMITS"),
            dev_login_enabled=reader.boolean("DEV_LOGIN_ENABLED", False),
            port=reader.integer("PORT", 8080, minimum=1),
            workers=reader.integer("WORKERS", 1, minimum=1),
            threads=reader.integer("THREADS", 8, minimum=1),
            shutdown_grace_seconds=reader.integer("SHUTDOWN_GRACE_SECONDS", 25, minimum=0),
            log_level=reader.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        )
        if settings.dev_login_enabled and not is_dev:
            problems.append("DEV_LOGIN_ENABLED: the development sign-in is refused outside ECO2_ENV=development")
        if len(settings.jwt_secret.get()) < 32 and "jwt" in uses:
            problems.append("JWT_SECRET: required, at least 32 characters")
        required = {
            "db": ("DATABASE_URL", settings.database_url.get()),
            "redis": ("REDIS_URL", settings.redis_url.get()),
            "events": ("RABBITMQ_URL or K_SINK", settings.rabbitmq_url.get() or settings.broker_url),
        }
        for use in uses:
            if use in required and not required[use][1]:
                problems.append(f"{required[use][0]}: required by this function (uses {use})")
        if problems:
            raise SettingsError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self.env = env
        self.problems = problems

    def text(self, key: str, default: str) -> str:
        return self.env.get(key, "").strip() or default

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{key}: expected an integer, got {raw!r}")
            return default
        if value < minimum:
            self.problems.append(f"{key}: must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, *, minimum: float) -> float:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{key}: expected a number, got {raw!r}")
            return default
        if value < minimum:
            self.problems.append(f"{key}: must be at least {minimum}, got {value}")
        return value

    def hosts(self, key: str) -> tuple[str, ...]:
        """A comma list of host names (optionally host:port); no schemes, paths or wildcards."""
        out = []
        for item in self.env.get(key, "").split(","):
            host = item.strip().lower()
            if not host:
                continue
            if not re.fullmatch(r"[a-z0-9.-]+(:\d+)?", host):
                self.problems.append(f"{key}: {host!r} is not a host name like images.example.com")
                continue
            out.append(host)
        return tuple(out)

    def rate_limits(self, key: str) -> str:
        raw = self.env.get(key, "").strip()
        if not raw:
            return ""
        from limits import parse

        try:
            given = json.loads(raw)
            if not isinstance(given, dict):
                raise ValueError("not an object")
            for value in given.values():
                if value != "off":
                    parse(str(value))
        except ValueError as exc:
            self.problems.append(f'{key}: expected JSON like {{"POST /api/v1/scan": "10/minute"}}: {exc}')
            return ""
        return raw

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.env.get(key, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{key}: expected true or false, got {raw!r}")
        return default

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.env.get(key, "").strip()
        if not raw:
            return default
        if raw not in allowed:
            self.problems.append(f"{key}: must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw

    def origins(self, key: str) -> tuple[str, ...]:
        out = []
        for item in self.env.get(key, "").split(","):
            origin = item.strip().rstrip("/")
            if not origin:
                continue
            parts = urlsplit(origin)
            if origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                self.problems.append(f"{key}: {origin!r} is not an origin like https://app.example.com")
                continue
            out.append(origin)
        return tuple(out)
