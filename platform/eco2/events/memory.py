"""The embedded event bus of `eco2 dev` with no RabbitMQ (`RABBITMQ_URL=memory://...`).

A function's publisher hands each message to the in-process broker attached to its URL
(`eventing.memory`, which delivers with Knative's Trigger semantics). Nothing is kept: a message
published while no broker is attached matches no Trigger, as on a broker with none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eco2.events.message import Message

_lock = threading.Lock()
_sinks: dict[str, Callable[[Message], None]] = {}


def attach(url: str, sink: Callable[[Message], None]) -> None:
    with _lock:
        _sinks[url] = sink


class MemoryPublisher:
    def __init__(self, url: str) -> None:
        self.url = url

    def publish(self, message: Message) -> None:
        sink = _sinks.get(self.url)
        if sink is not None:
            sink(message)

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass
