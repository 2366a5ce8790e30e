"""Publishing to the local broker on RabbitMQ: its topology names, connections, and the AMQP
encoding eventing-rabbitmq uses (CloudEvent attributes as unprefixed headers, data as body).

The broker itself (the Trigger queues' dispatchers) is `eventing.rabbitmq`; what a function needs
to publish is here, in the events layer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pika
from pika.exceptions import AMQPError

from eco2.events.message import Message

if TYPE_CHECKING:
    from eventing.delivery import TriggerSpec

log = logging.getLogger("eco2.broker")
DEAD_LETTER_TRIGGER_HEADER = "x-eco2-trigger"


@dataclass(frozen=True)
class Names:
    broker: str = "eco2"

    @property
    def exchange(self) -> str:
        return f"{self.broker}.broker"

    @property
    def dead_letter(self) -> str:
        return f"{self.broker}.dead-letter"

    def queue(self, trigger: str) -> str:
        return f"{self.broker}.trigger.{trigger}"


def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    return pika.BlockingConnection(params)


def declare(channel: Any, names: Names, triggers: Iterable[TriggerSpec] = ()) -> None:
    channel.exchange_declare(names.exchange, exchange_type="headers", durable=True)
    channel.queue_declare(names.dead_letter, durable=True)
    for trigger in triggers:
        queue = names.queue(trigger.name)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, names.exchange, arguments={"x-match": "all", **dict(trigger.filters)})


def to_amqp(message: Message) -> tuple[pika.BasicProperties, bytes]:
    """eventing-rabbitmq's encoding (eco2.events.message): attributes as unprefixed headers."""
    headers: dict[str, Any] = dict(message.to_amqp_headers())
    props = pika.BasicProperties(
        content_type=message.content_type, delivery_mode=2, headers=headers, message_id=message.attributes.get("id")
    )
    return props, message.data


def from_amqp(props: pika.BasicProperties, body: bytes) -> Message:
    return Message.from_amqp_headers(props.headers or {}, body, props.content_type)


class _Channel:
    def __init__(self, url: str, names: Names) -> None:
        self.connection = connect(url)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        declare(self.channel, names)

    def close(self) -> None:
        with contextlib.suppress(AMQPError, OSError):
            if self.connection.is_open:
                self.connection.close()


class AmqpPublisher:
    """Publishes to the broker exchange with publisher confirms; reconnects on failure.

    A small pool of connections (pika connections are not thread-safe): concurrent requests wait
    for their confirms in parallel, up to `size` at once, instead of queueing behind one lock.
    """

    def __init__(self, url: str, broker: str = "eco2", size: int = 8) -> None:
        self.url = url
        self.names = Names(broker)
        self._idle: queue.LifoQueue[_Channel] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def _publish(self, exchange: str, routing_key: str, message: Message, extra: dict[str, str] | None = None) -> None:
        props, body = to_amqp(message)
        if extra:
            props.headers = {**(props.headers or {}), **extra}
        with self._slots:
            for attempt in range(3):
                try:
                    entry = self._idle.get_nowait()
                except queue.Empty:
                    entry = None
                try:
                    entry = entry or _Channel(self.url, self.names)
                    entry.channel.basic_publish(exchange, routing_key, body, props, mandatory=False)
                    self._idle.put(entry)
                    return
                except (AMQPError, OSError) as exc:
                    if entry is not None:
                        entry.close()
                    if attempt == 2:
                        raise
                    log.warning("publish failed, reconnecting", extra={"error": type(exc).__name__})
                    time.sleep(0.2 * (attempt + 1))

    def publish(self, message: Message) -> None:
        self._publish(self.names.exchange, "", message)

    def publish_dead_letter(self, message: Message, trigger: str) -> None:
        self._publish("", self.names.dead_letter, message, {DEAD_LETTER_TRIGGER_HEADER: trigger})

    def publish_to_trigger(self, message: Message, trigger: str) -> None:
        self._publish("", self.names.queue(trigger), message)

    def ping(self) -> None:
        with self._slots:
            try:
                entry = self._idle.get_nowait()
            except queue.Empty:
                entry = _Channel(self.url, self.names)
            try:
                entry.connection.process_data_events(time_limit=0)  # a dead socket shows up here
            except (AMQPError, OSError):
                entry.close()
                raise
            if not entry.connection.is_open:
                entry.close()
                raise AMQPError("connection closed")
            self._idle.put(entry)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
