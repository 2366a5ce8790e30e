"""The composition root: clients built once per process at startup, handed to handlers, closed on shutdown.

Each client is imported lazily, and only when the function declares it in `uses`: a function that
never touches S3 never imports boto3. Asking for an undeclared client is a programming error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from eco2.core.embedded import MEMORY_URL
from eco2.core.settings import Settings

if TYPE_CHECKING:
    import redis
    from mypy_boto3_s3 import S3Client
    from openai import OpenAI

    from eco2.core.db import Database
    from eco2.core.tokens import TokenCodec
    from eco2.events.sink import Events

log = logging.getLogger("eco2.serving.clients")


class Clients:
    def __init__(self, settings: Settings, uses: Iterable[str]) -> None:
        self.settings = settings
        self.uses = frozenset(uses)
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._closers: list[Callable[[], None]] = []

    # -- building -------------------------------------------------------------------------------
    def start(self) -> None:
        """Build every declared client now (so the first request does not pay for it)."""
        for use in sorted(self.uses):
            self._get(use)

    def _get(self, use: str) -> Any:
        if use not in self.uses:
            raise RuntimeError(f"this function does not declare uses={use!r}; add it to Function(uses=...)")
        client = self._built.get(use)
        if client is None:
            with self._lock:
                client = self._built.get(use)
                if client is None:
                    client = getattr(self, f"_build_{use}")()
                    self._built[use] = client
        return client

    def _build_db(self) -> Database:
        from eco2.core.db import Database

        database = Database(self.settings.database_url.get(), pool_size=self.settings.database_pool_size)
        self._closers.append(database.close)
        return database

    def _build_redis(self) -> redis.Redis:
        url = self.settings.redis_url.get()
        if url.startswith(MEMORY_URL):
            from eco2.core.embedded import redis_client

            client: redis.Redis = redis_client(url)
        else:
            import redis as redis_lib

            # A blocking pool: past the limit a caller waits (backpressure) instead of failing, and
            # long-lived readers (SSE streams blocking on XREAD) each hold one connection.
            pool = redis_lib.BlockingConnectionPool.from_url(
                url,
                max_connections=self.settings.redis_max_connections,
                timeout=20,
                decode_responses=True,
                socket_timeout=30,
                socket_connect_timeout=3,
                health_check_interval=30,
            )
            client = redis_lib.Redis(connection_pool=pool)
        self._closers.append(client.close)
        if "jwt" in self.uses:
            from eco2.core.security import release_view

            self._closers.append(lambda: release_view(client))  # closers run in reverse: before the client
        return client

    def _build_jwt(self) -> TokenCodec:
        from eco2.core.tokens import TokenCodec

        return TokenCodec(self.settings)

    def _build_s3(self) -> Any:
        import boto3
        from botocore.config import Config

        # a session of our own: boto3's default session keeps the first credentials it ever saw
        session = boto3.session.Session(
            aws_access_key_id=self.settings.aws_access_key_id or None,
            aws_secret_access_key=self.settings.aws_secret_access_key.get() or None,
            region_name=self.settings.s3_region,
        )
        return session.client(
            "s3",
            endpoint_url=self.settings.s3_endpoint_url or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )

    def _build_openai(self) -> Any:
        if not self.settings.openai_api_key:
            return None  # functions fall back to their offline behaviour and say so
        import openai

        client = openai.OpenAI(
            api_key=self.settings.openai_api_key.get(),
            base_url=self.settings.openai_base_url or None,
            max_retries=0,
        )
        self._closers.append(client.close)
        return client

    def _build_events(self) -> Events:
        from eco2.events.publisher import make_publisher
        from eco2.events.sink import Events
        from eventing.catalogue import CATALOGUE

        publisher = make_publisher(self.settings)
        relay = None
        if "db" in self.uses:
            from eco2.events.outbox import Relay

            relay = Relay(self.db, publisher)
            relay.start()
            self._closers.append(relay.stop)  # closers run in reverse: relay flushes before the publisher closes
        self._closers.insert(0, publisher.close)
        return Events(publisher, relay, CATALOGUE)

    # -- accessors ------------------------------------------------------------------------------
    @property
    def db(self) -> Database:
        return self._get("db")  # type: ignore[no-any-return]

    @property
    def redis(self) -> redis.Redis:
        return self._get("redis")  # type: ignore[no-any-return]

    @property
    def tokens(self) -> TokenCodec:
        return self._get("jwt")  # type: ignore[no-any-return]

    @property
    def events(self) -> Events:
        return self._get("events")  # type: ignore[no-any-return]

    @property
    def s3(self) -> S3Client:
        return self._get("s3")  # type: ignore[no-any-return]

    @property
    def openai(self) -> OpenAI | None:
        """None when no OPENAI_API_KEY is set: functions answer offline and say so."""
        return self._get("openai")  # type: ignore[no-any-return]

    # -- readiness and shutdown -----------------------------------------------------------------
    def check(self) -> dict[str, str]:
        """Ping every client the function uses: {"db": "ok", "redis": "error: ..."}."""
        results: dict[str, str] = {}
        for use in sorted(self.uses):
            try:
                self._ping(use, self._get(use))
                results[use] = "ok"
            except Exception as exc:  # readiness reports, it never raises
                results[use] = f"error: {type(exc).__name__}"
                log.warning("readiness check failed", extra={"client": use, "error": type(exc).__name__})
        return results

    def _ping(self, use: str, client: Any) -> None:
        """One cheap round trip to the backend behind a client (raises when it is unreachable).

        Only the project's own backends are reached. The model provider is not: its client is
        built (or None, with no key: the offline fallback answers) and that is its check. A probe
        every few seconds per pod would spend the provider's rate limit, and a slow or failing
        provider would take every model function's pods out of service at once, so no event
        could reach them to fail on its own terms (retries, then the dead-letter path)."""
        if use in ("db", "redis", "events"):
            client.ping()
        elif use == "s3":
            client.head_bucket(Bucket=self.settings.s3_bucket)
        # jwt: a local codec; openai: a third party's service, handled per call (see above)

    def close(self) -> None:
        with self._lock:
            closers, self._closers = self._closers[::-1], []
            self._built.clear()
        for closer in closers:
            try:
                closer()
            except Exception:
                log.exception("closing a client failed")
