"""The local broker on real RabbitMQ, mirroring Knative's RabbitMQ Broker.

Topology (declared idempotently by every component):
- `<broker>.broker`: a durable headers exchange; events are published to it with their
  CloudEvent attributes as unprefixed AMQP headers (as eventing-rabbitmq does), `content_type`,
  the data as body, persistent, with publisher confirms;
- `<broker>.trigger.<name>`: one durable queue per Trigger, bound with the Trigger's exact-match
  filters and `x-match: all`;
- `<broker>.dead-letter`: a durable queue for events whose delivery failed for good.

A `Dispatcher` per Trigger consumes with manual ack and prefetch = parallelism, delivers through
`eventing.delivery.Deliverer`, publishes reply events and dead letters, and acks only after that
succeeded. It reconnects when RabbitMQ goes away and drains in-flight deliveries on stop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pika
from pika.exceptions import AMQPError

from eco2.events.message import Message
from eventing.delivery import Deliverer, TriggerSpec

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


class Dispatcher(threading.Thread):
    """Consumes one Trigger's queue and delivers to its subscriber."""

    def __init__(
        self, url: str, names: Names, trigger: TriggerSpec, publisher: AmqpPublisher, drain_seconds: float = 30.0
    ) -> None:
        super().__init__(name=f"dispatcher-{trigger.name}", daemon=True)
        self.url = url
        self.names = names
        self.trigger = trigger
        self.publisher = publisher
        self.drain_seconds = drain_seconds
        self.stopping = threading.Event()
        self.deliverer = Deliverer(trigger)
        self.delivered = 0
        self.dead_lettered = 0
        self.connected = threading.Event()
        self._in_flight = 0
        self._count_lock = threading.Lock()

    def run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                self._consume()
                backoff = 0.2
            except (AMQPError, OSError) as exc:
                self.connected.clear()
                log.warning(
                    "dispatcher lost RabbitMQ, reconnecting",
                    extra={"trigger": self.trigger.name, "error": type(exc).__name__},
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _consume(self) -> None:
        connection = connect(self.url)
        pool = ThreadPoolExecutor(self.trigger.parallelism, thread_name_prefix=f"deliver-{self.trigger.name}")
        try:
            channel = connection.channel()
            declare(channel, self.names, [self.trigger])
            channel.basic_qos(prefetch_count=self.trigger.parallelism)

            def on_message(ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
                with self._count_lock:
                    self._in_flight += 1
                pool.submit(self._work, connection, ch, method.delivery_tag, from_amqp(props, body))

            tag = channel.basic_consume(self.names.queue(self.trigger.name), on_message, auto_ack=False)
            self.connected.set()
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=0.2)
            # drain: no new deliveries, finish and ack the in-flight ones
            channel.basic_cancel(tag)
            deadline = time.monotonic() + self.drain_seconds
            while self._in_flight and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.1)
            connection.process_data_events(time_limit=0)
        finally:
            self.connected.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            try:
                if connection.is_open:
                    connection.close()
            except AMQPError:
                pass

    def _work(self, connection: pika.BlockingConnection, channel: Any, tag: int, message: Message) -> None:
        try:
            outcome = self.deliverer.deliver(message)
            if outcome.reply is not None:
                self.publisher.publish(outcome.reply)
            if outcome.dead_letter is not None:
                self.publisher.publish_dead_letter(outcome.dead_letter, self.trigger.name)
                self.dead_lettered += 1
                log.error(
                    "event dead-lettered",
                    extra={
                        "trigger": self.trigger.name,
                        "event_id": message.attributes.get("id"),
                        "code": outcome.code,
                        "attempts": outcome.attempts,
                    },
                )
            else:
                self.delivered += 1
            settle = functools.partial(channel.basic_ack, tag)
        except Exception:
            log.exception("delivery bookkeeping failed; the event goes back to the queue")
            settle = functools.partial(channel.basic_nack, tag, requeue=True)
        try:
            connection.add_callback_threadsafe(settle)
        except Exception:  # the connection is gone: RabbitMQ redelivers, the handler deduplicates
            log.warning("could not settle a delivery; it will be redelivered", extra={"trigger": self.trigger.name})
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def stop(self) -> None:
        self.stopping.set()


class RabbitBroker:
    """The whole local broker: topology, one dispatcher per Trigger, and a publisher."""

    def __init__(self, url: str, triggers: Iterable[TriggerSpec], broker: str = "eco2") -> None:
        self.url = url
        self.names = Names(broker)
        self.triggers = list(triggers)
        self.publisher = AmqpPublisher(url, broker)
        self.dispatchers: list[Dispatcher] = []

    def setup(self) -> None:
        connection = connect(self.url)
        try:
            declare(connection.channel(), self.names, self.triggers)
        finally:
            connection.close()

    def start(self) -> None:
        self.setup()
        self.dispatchers = [Dispatcher(self.url, self.names, t, self.publisher) for t in self.triggers]
        for dispatcher in self.dispatchers:
            dispatcher.start()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(d.connected.wait(max(0.0, deadline - time.monotonic())) for d in self.dispatchers)

    def stop(self, timeout: float = 30.0) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.stop()
        for dispatcher in self.dispatchers:
            dispatcher.join(timeout)
        self.publisher.close()

    # -- operations (eco2 events) -----------------------------------------------------------------
    def depths(self) -> dict[str, int]:
        connection = connect(self.url)
        try:
            channel = connection.channel()
            declare(channel, self.names, self.triggers)
            out = {}
            for trigger in self.triggers:
                queue = self.names.queue(trigger.name)
                out[queue] = channel.queue_declare(queue, passive=True).method.message_count
            out[self.names.dead_letter] = channel.queue_declare(
                self.names.dead_letter, passive=True
            ).method.message_count
            return out
        finally:
            connection.close()

    def dead_letters(self, limit: int = 100) -> list[tuple[str, Message]]:
        """Peek at dead letters (they stay in the queue)."""
        connection = connect(self.url)
        out: list[tuple[str, Message]] = []
        try:
            channel = connection.channel()
            declare(channel, self.names)
            for _ in range(limit):
                method, props, body = channel.basic_get(self.names.dead_letter, auto_ack=False)
                if method is None:
                    break
                trigger = (props.headers or {}).get(DEAD_LETTER_TRIGGER_HEADER, "")
                out.append((trigger.decode() if isinstance(trigger, bytes) else str(trigger), from_amqp(props, body)))
            # closing the channel returns every unacked message to the queue
        finally:
            connection.close()
        return out

    def replay(self, trigger: str | None = None, limit: int = 1000) -> int:
        """Re-drive dead letters to the Trigger that failed them; returns how many."""
        connection = connect(self.url)
        replayed = 0
        try:
            channel = connection.channel()
            declare(channel, self.names, self.triggers)
            skipped: list[int] = []
            for _ in range(limit):
                method, props, body = channel.basic_get(self.names.dead_letter, auto_ack=False)
                if method is None:
                    break
                target = (props.headers or {}).get(DEAD_LETTER_TRIGGER_HEADER, "")
                target = target.decode() if isinstance(target, bytes) else str(target)
                if trigger is not None and target != trigger:
                    skipped.append(method.delivery_tag)
                    continue
                message = from_amqp(props, body)
                for key in ("knativeerrordest", "knativeerrorcode", "knativeerrordata"):
                    message.attributes.pop(key, None)
                self.publisher.publish_to_trigger(message, target)
                channel.basic_ack(method.delivery_tag)
                replayed += 1
            for tag in skipped:
                channel.basic_nack(tag, requeue=True)
        finally:
            connection.close()
        return replayed
