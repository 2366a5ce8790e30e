"""The events client of a function (`ctx.publish`): a publisher, the outbox relay when the
function has a database, and the event catalogue handed over as data (eco2.core.ports.EventSink)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eco2.events.message import make_message
from eco2.events.outbox import add

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from eco2.events.outbox import Relay
    from eco2.events.publisher import Publisher


class Events:
    """What `ctx.publish` uses: the publisher, the outbox relay (functions with a database) and the
    event catalogue, handed over as data so that a published event is checked against its schema."""

    def __init__(self, publisher: Publisher, relay: Relay | None, catalogue: Mapping[str, Any]) -> None:
        self.publisher = publisher
        self.relay = relay
        self.catalogue = catalogue

    def ping(self) -> None:
        self.publisher.ping()

    def publish(
        self,
        function: str,
        event_type: str,
        data: Any,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        session: Session | None = None,
    ) -> str:
        """Send now, or (with `session`) add to the outbox in that unit of work; returns the id."""
        spec = self.catalogue.get(event_type)
        if spec is not None:
            data = spec.data.model_validate(data.model_dump() if hasattr(data, "model_dump") else data)
        source = spec.source if spec is not None else f"/eco2/{function}"
        message = make_message(event_type, data, source=source, subject=subject, event_id=event_id)
        if session is not None:
            add(session, message)
        else:
            self.publisher.publish(message)
        return message.attributes["id"]

    def committed(self) -> None:
        """A unit of work with staged events committed: the relay sends them now."""
        if self.relay is not None:
            self.relay.kick()
