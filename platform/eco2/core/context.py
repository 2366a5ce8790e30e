"""What a handler receives: the clients, the caller, and one unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from eco2.core.errors import Unauthorized

if TYPE_CHECKING:
    import redis
    from flask import Request
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from eco2.core.ports import ClientSet
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenClaims

T = TypeVar("T")


@dataclass(frozen=True)
class Event(Generic[T]):
    """A received CloudEvent; `data` is the validated model when the handler declared one."""

    id: str
    source: str
    type: str
    data: T
    subject: str | None = None
    time: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutEvent:
    """A CloudEvent to send: returned by an event handler it becomes the reply (binary mode)."""

    type: str
    data: Any
    source: str = ""
    subject: str | None = None
    id: str = ""
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass
class Cookie:
    name: str
    value: str
    max_age: int | None
    delete: bool = False


class Context:
    """Request- (or event-) scoped. `db` opens a session on first use; the runtime commits it when
    the handler returns and rolls it back when it raises."""

    def __init__(
        self,
        *,
        function: str,
        settings: Settings,
        clients: ClientSet,
        request_id: str,
        request: Request | None = None,
        claims: TokenClaims | None = None,
        config: Any = None,
    ) -> None:
        self.function = function
        self.config = config  # the function's own settings section (Function(config=...)), or None
        self.settings = settings
        self.clients = clients
        self.request_id = request_id
        self.request = request
        self.claims = claims
        self.cookies: list[Cookie] = []
        self.headers: dict[str, str] = {}
        self._session: Session | None = None
        self._staged_events = False

    @property
    def user_id(self) -> str:
        if self.claims is None:
            raise Unauthorized()
        return self.claims.sub

    @property
    def db(self) -> Session:
        if self._session is None:
            self._session = self.clients.db.session()
        return self._session

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for a read of one statement, in autocommit and outside the unit of work
        (`db`): one round trip instead of three. Use `db` for anything that writes, or for reads
        that must see this request's own writes."""
        with self.clients.db.read() as connection:
            yield connection

    @property
    def redis(self) -> redis.Redis:
        return self.clients.redis

    def publish(self, event_type: str, data: Any, *, subject: str | None = None, event_id: str | None = None) -> str:
        """Send a CloudEvent; returns its id. With a database the event joins this unit of work
        (transactional outbox: sent after commit, never if rolled back); without one it is sent now."""
        session = self.db if "db" in self.clients.uses else None
        sent = self.clients.events.publish(
            self.function, event_type, data, subject=subject, event_id=event_id, session=session
        )
        self._staged_events = self._staged_events or session is not None
        return sent

    def set_cookie(self, name: str, value: str, max_age: int) -> None:
        self.cookies.append(Cookie(name, value, max_age))

    def delete_cookie(self, name: str) -> None:
        self.cookies.append(Cookie(name, "", 0, delete=True))

    def finish(self, ok: bool) -> None:
        """Commit (ok) or roll back the unit of work, then release it."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if ok:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
        if ok and self._staged_events:
            self._staged_events = False
            self.clients.events.committed()
