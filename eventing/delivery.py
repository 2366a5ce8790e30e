"""Knative Trigger delivery semantics, independent of the transport.

One delivery = POST the event in binary mode to the subscriber, retried per the Trigger's delivery
spec. 2xx is done (a CloudEvent in the reply goes back to the broker); 4xx other than 404, 409 and
429 is not retried (Knative's data-plane contract); everything else is retried with linear or
exponential backoff; after the last try the event is dead-lettered with the `knativeerrordest`,
`knativeerrorcode` and `knativeerrordata` extensions: to the Trigger's dead-letter sink when it has
one, else (or when the sink refuses it too) to the broker's dead-letter queue (`give_up`).
"""

from __future__ import annotations

import base64
import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from eco2.events.message import InvalidMessage, Message

log = logging.getLogger("eco2.broker")
RETRYABLE_4XX = frozenset({404, 409, 429})


def parse_duration(value: str | None, default: float) -> float:
    """ISO-8601 durations as Knative writes them (PT0.2S, PT1M, PT1H30M) -> seconds."""
    if not value:
        return default
    found = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", value)
    if not found:
        raise ValueError(f"{value!r} is not an ISO-8601 duration such as PT0.2S")
    hours, minutes, seconds = found.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


@dataclass(frozen=True)
class DeliverySpec:
    retry: int = 3
    backoff_policy: Literal["linear", "exponential"] = "exponential"
    backoff_delay: float = 0.2
    timeout: float = 30.0
    dead_letter: bool = True
    dead_letter_sink: str | None = None  # the URL that receives what this Trigger gave up on
    sink_attempts: int = 3  # tries to hand a dead letter to the sink before the queue takes it

    def backoff(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based), as Knative computes it."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * attempt
        return float(self.backoff_delay * (2 ** (attempt - 1)))


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    subscriber: str
    filters: Mapping[str, str]
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    parallelism: int = 1

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        return all(str(attributes.get(k, "")) == v for k, v in self.filters.items())


@dataclass
class Outcome:
    status: Literal["delivered", "dead-lettered", "dropped"]
    attempts: int
    code: int | None
    reply: Message | None = None
    dead_letter: Message | None = None


def _reply(headers: Mapping[str, str], content: bytes) -> Message | None:
    """The CloudEvent a subscriber answered with, if any (a plain 2xx body is not one)."""
    if not any(k.lower() == "ce-specversion" for k in headers) and not any(
        k.lower() == "content-type" and v.startswith("application/cloudevents") for k, v in headers.items()
    ):
        return None
    try:
        return Message.from_http(headers, content)
    except InvalidMessage:
        log.warning("reply is not a valid CloudEvent; dropped")
        return None


class _Connections:
    """Keep-alive HTTP connections, one per thread and subscriber (http.client: far less CPU per
    delivery than a requests.Session, which matters when a dispatcher runs hundreds per second)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        pool: dict[tuple[str, str, int | None], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {}
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            conn = pool.get(key)
            if conn is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = cls(parts.hostname or "", parts.port, timeout=timeout)
                pool[key] = conn
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
                    pool.pop(key, None)
                return response.status, {k: v for k, v in response.getheaders()}, data
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
                conn.close()
                pool.pop(key, None)
                if attempt == 2 or not _reusable_failure(exc):
                    raise
            except BaseException:
                conn.close()
                pool.pop(key, None)
                raise
        raise AssertionError("unreachable")


def _reusable_failure(exc: BaseException) -> bool:
    """A kept-alive connection the server had closed: retry once on a fresh one."""
    return isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)


class Deliverer:
    """Delivers one message to one Trigger's subscriber; thread-safe (connections per thread)."""

    def __init__(self, trigger: TriggerSpec) -> None:
        self.trigger = trigger
        self._http = _Connections()

    def deliver(self, message: Message) -> Outcome:
        spec = self.trigger.delivery
        code: int | None = None
        body = b""
        attempts = 0
        for attempt in range(spec.retry + 1):
            if attempt:
                time.sleep(spec.backoff(attempt))
            attempts += 1
            try:
                code, headers, content = self._http.post(
                    self.trigger.subscriber, message.data, message.http_headers(), spec.timeout
                )
            except (OSError, http.client.HTTPException) as exc:
                code, body = None, f"{type(exc).__name__}: {exc}".encode()[:1024]
                log.warning(
                    "delivery failed",
                    extra={"trigger": self.trigger.name, "attempt": attempts, "error": type(exc).__name__},
                )
                continue
            body = content[:1024]
            if 200 <= code < 300:
                return Outcome("delivered", attempts, code, reply=_reply(headers, content))
            if 400 <= code < 500 and code not in RETRYABLE_4XX:
                break
            log.warning("delivery refused", extra={"trigger": self.trigger.name, "attempt": attempts, "code": code})
        if not spec.dead_letter:
            return Outcome("dropped", attempts, code)
        extensions = {"knativeerrordest": self.trigger.subscriber}
        if code is not None:
            extensions["knativeerrorcode"] = str(code)
        if body:
            extensions["knativeerrordata"] = base64.b64encode(body).decode()
        dead = Message({**message.attributes, **extensions}, message.data, message.content_type)
        return Outcome("dead-lettered", attempts, code, dead_letter=dead)

    def give_up(self, message: Message, outcome: Outcome, keep: Callable[[Message], None]) -> None:
        """Settle what this Trigger gave up on (`outcome.dead_letter`, made from `message`): to
        its dead-letter sink, else `keep(dead)` (the broker's dead-letter queue); logged once
        either way. The broker acks `message` only after this returns."""
        dead = outcome.dead_letter
        assert dead is not None
        sunk = self._to_sink(dead)
        if not sunk:
            keep(dead)
        log.error(
            "event dead-lettered",
            extra={
                "trigger": self.trigger.name,
                "event_id": message.attributes.get("id"),
                "code": outcome.code,
                "attempts": outcome.attempts,
                "to": "sink" if sunk else "queue",
            },
        )

    def _to_sink(self, dead: Message) -> bool:
        """Hand `dead` to the Trigger's dead-letter sink (binary mode, the extensions as ce-
        headers, as Knative posts to a deadLetterSink). True once the sink answered 2xx; False
        when there is no sink or it refused every try."""
        spec = self.trigger.delivery
        sink = spec.dead_letter_sink
        if not sink:
            return False
        for attempt in range(1, spec.sink_attempts + 1):
            if attempt > 1:
                time.sleep(spec.backoff(attempt - 1))
            try:
                code, _headers, _content = self._http.post(sink, dead.data, dead.http_headers(), spec.timeout)
            except (OSError, http.client.HTTPException) as exc:
                log.warning(
                    "dead-letter sink unreachable",
                    extra={"trigger": self.trigger.name, "attempt": attempt, "error": type(exc).__name__},
                )
                continue
            if 200 <= code < 300:
                return True
            log.warning(
                "dead-letter sink refused the event",
                extra={"trigger": self.trigger.name, "attempt": attempt, "code": code},
            )
            if 400 <= code < 500 and code not in RETRYABLE_4XX:
                break
        return False
