"""Database: one SQLAlchemy engine per process, one session (unit of work) per request or event.

`postgresql://...` URLs use psycopg 3. `sqlite:///path` is the embedded default of `eco2 dev`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def insert_new(session: Session | Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite): True when the row was added,
    False when a row with the same key or unique columns was already there.

    One statement, in the caller's transaction. A concurrent insert of the same key waits for
    the other transaction and then does nothing, so it is the idempotent insert of an
    at-least-once handler without a SAVEPOINT (two more round trips) or an IntegrityError."""
    from sqlalchemy.dialects import postgresql, sqlite

    bind = session.get_bind() if hasattr(session, "get_bind") else session
    dialect = postgresql if bind.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    # RETURNING, not rowcount: psycopg 3 through SQLAlchemy reports -1 for either outcome
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(key)
    return session.execute(statement).first() is not None


class Database:
    def __init__(self, url: str, *, pool_size: int = 5, echo: bool = False) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.orm import sessionmaker

        url = normalise_url(url)
        # No pool_pre_ping: it costs a round trip on every checkout (a third of a small request's
        # database time). After a disconnect SQLAlchemy invalidates the whole pool on the first
        # error, so a database restart fails at most the requests already in flight; pool_recycle
        # retires connections before server-side idle timeouts do.
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": False}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_recycle=300, pool_timeout=10)
            kwargs["connect_args"] = {"connect_timeout": 3}  # an unreachable server: 503 in seconds, not a hang
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        # the same pool; a checkout only flips the driver's client-side autocommit flag
        self._reads: Engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def session(self) -> Session:
        return self.sessions()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A Core connection in autocommit, for reads of one statement outside any unit of work:
        one round trip, where a transaction costs three (BEGIN, the statement, COMMIT). Nothing
        written through it is rolled back; writes belong in a session (`Context.db`)."""
        with self._reads.connect() as connection:
            yield connection

    def ping(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
