"""What the runtime needs of the layers above it, as protocols: the clients of one function (built
by `eco2.serving.clients.Clients`) and the publishing side of events (`eco2.events.sink.Events`).
The runtime is handed objects that fit; it imports none of their implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis
    from mypy_boto3_s3 import S3Client
    from openai import OpenAI
    from sqlalchemy.orm import Session

    from eco2.core.db import Database
    from eco2.core.tokens import TokenCodec


class EventSink(Protocol):
    def publish(
        self,
        function: str,
        event_type: str,
        data: object,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        session: Session | None = None,
    ) -> str: ...

    def committed(self) -> None: ...

    def ping(self) -> None: ...


class ClientSet(Protocol):
    """The clients a function declared (`uses`); asking for another is an error."""

    @property
    def uses(self) -> frozenset[str]: ...

    @property
    def db(self) -> Database: ...

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def tokens(self) -> TokenCodec: ...

    @property
    def events(self) -> EventSink: ...

    @property
    def s3(self) -> S3Client: ...

    @property
    def openai(self) -> OpenAI | None: ...

    def start(self) -> None: ...

    def check(self) -> dict[str, str]: ...

    def close(self) -> None: ...
