"""The embedded broker of `eco2 dev` when no RabbitMQ is configured: the same Trigger semantics
(filters, retries, backoff, dead letters, replies) in one process, kept in memory only."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

from eco2.events.memory import MemoryPublisher, attach
from eco2.events.message import Message
from eventing.delivery import Deliverer, TriggerSpec

_lock = threading.Lock()
_brokers: dict[str, MemoryBroker] = {}


class MemoryBroker:
    def __init__(self, url: str = "memory://") -> None:
        self.publisher = MemoryPublisher(url)
        attach(url, self.publish)
        self.dead_letters: list[tuple[str, Message]] = []
        self._queues: dict[str, queue.Queue[Message | None]] = {}
        self._triggers: list[TriggerSpec] = []
        self._threads: list[threading.Thread] = []

    def start(self, triggers: Iterable[TriggerSpec]) -> None:
        for trigger in triggers:
            self._triggers.append(trigger)
            q: queue.Queue[Message | None] = queue.Queue()
            self._queues[trigger.name] = q
            deliverer = Deliverer(trigger)
            for i in range(trigger.parallelism):
                thread = threading.Thread(
                    target=self._work, args=(deliverer, q), name=f"mem-{trigger.name}-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def publish(self, message: Message) -> None:
        for trigger in self._triggers:
            if trigger.matches(message.attributes):
                self._queues[trigger.name].put(message)

    def depths(self) -> dict[str, int]:
        out = {name: q.qsize() for name, q in self._queues.items()}
        out["dead-letter"] = len(self.dead_letters)
        return out

    def _work(self, deliverer: Deliverer, q: queue.Queue[Message | None]) -> None:
        def keep(dead: Message) -> None:  # no sink, or it refused: kept here
            self.dead_letters.append((deliverer.trigger.name, dead))

        while True:
            message = q.get()
            if message is None:
                return
            outcome = deliverer.deliver(message)
            if outcome.reply is not None:
                self.publish(outcome.reply)
            if outcome.dead_letter is not None:
                deliverer.give_up(message, outcome, keep)

    def stop(self) -> None:

        for trigger in self._triggers:
            for _ in range(trigger.parallelism):
                self._queues[trigger.name].put(None)
        for thread in self._threads:
            thread.join(5)


def broker(url: str = "memory://") -> MemoryBroker:
    with _lock:
        found = _brokers.get(url)
        if found is None:
            found = _brokers[url] = MemoryBroker(url)
        return found
