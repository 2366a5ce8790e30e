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

import functools
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pika
from pika.exceptions import AMQPError

from eco2.events.amqp import (
    DEAD_LETTER_TRIGGER_HEADER,
    AmqpPublisher,
    Names,
    connect,
    declare,
    from_amqp,
)
from eco2.events.message import Message
from eventing.delivery import Deliverer, TriggerSpec

log = logging.getLogger("eco2.broker")


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
                self.deliverer.give_up(
                    message, outcome, lambda dead: self.publisher.publish_dead_letter(dead, self.trigger.name)
                )
                self.dead_lettered += 1
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
