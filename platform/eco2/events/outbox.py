"""Transactional outbox: events caused by a database change are written in the same transaction
as the change, and a relay publishes them afterwards and marks them published.

A crash between commit and publish loses nothing (the row stays unpublished and the relay sends
it on its next sweep, in this process or the next one); a rollback publishes nothing (the row is
gone with the transaction). The event id is the row id, so a re-sent event is deduplicated by the
consumer like any redelivery.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, Uuid, select

from eco2.events.message import Message

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from eco2.core.db import Database
    from eco2.events.publisher import Publisher

log = logging.getLogger("eco2.outbox")
metadata = MetaData()

outbox = Table(
    "event_outbox",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("type", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("subject", String(200)),
    Column("data", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), index=True),
    Column("attempts", Integer, nullable=False, default=0),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(100), nullable=False),
    Column("source", String(200), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("consumer", "source", "event_id", name="pk_processed_events"),
)


def add(session: Session, message: Message) -> None:
    """Stage an event in the caller's transaction."""
    session.execute(
        outbox.insert().values(
            id=uuid.UUID(hex=message.attributes["id"]) if _is_hex_uuid(message.attributes["id"]) else uuid.uuid4(),
            type=message.attributes["type"],
            source=message.attributes["source"],
            subject=message.attributes.get("subject"),
            data=message.data.decode(),
            created_at=datetime.now(UTC),
            attempts=0,
        )
    )


def _is_hex_uuid(value: str) -> bool:
    try:
        uuid.UUID(hex=value)
    except ValueError:
        return False
    return True


def _message(row: Any) -> Message:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    attributes = {
        "specversion": "1.0",
        "id": row.id.hex,
        "source": row.source,
        "type": row.type,
        "time": created.isoformat().replace("+00:00", "Z"),
    }
    if row.subject:
        attributes["subject"] = row.subject
    return Message(attributes, row.data.encode())


def relay_once(database: Database, publisher: Publisher, batch: int = 100) -> int:
    """Publish up to `batch` pending events; returns how many were published."""
    sent = 0
    with database.session() as session:
        query = select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.created_at).limit(batch)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        try:
            for row in rows:
                publisher.publish(_message(row))
                session.execute(outbox.update().where(outbox.c.id == row.id).values(published_at=datetime.now(UTC)))
                sent += 1
        finally:
            session.commit()  # keep what was published marked, even if a later one failed
    return sent


def pending(database: Database) -> int:
    from sqlalchemy import func

    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) or 0)


class Relay(threading.Thread):
    """Publishes the outbox after every commit that staged events (kick) and sweeps every second."""

    def __init__(self, database: Database, publisher: Publisher, interval: float = 1.0) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.database = database
        self.publisher = publisher
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def kick(self) -> None:
        self._wake.set()

    def run(self) -> None:
        backoff = self.interval
        while not self._stopping.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                while relay_once(self.database, self.publisher) > 0:
                    pass
                backoff = self.interval
            except Exception as exc:
                log.warning("outbox relay failed; will retry", extra={"error": type(exc).__name__})
                backoff = min(backoff * 2, 5.0)  # at most 5 s late once the database and broker are back

    def stop(self, flush: bool = True) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(5)
        if flush:
            try:
                relay_once(self.database, self.publisher)
            except Exception:
                log.warning("outbox not flushed on stop; the next process sends it")
