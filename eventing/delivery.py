"""Knative Trigger delivery semantics, independent of the transport.

One delivery = POST the event in binary mode to the subscriber, retried per the Trigger's delivery
spec. 2xx is done (a CloudEvent in the reply goes back to the broker); 4xx other than 404, 409 and
429 is not retried (Knative's data-plane contract); everything else is retried with linear or
exponential backoff; after the last try the event is dead-lettered with the `knativeerrordest`,
`knativeerrorcode` and `knativeerrordata` extensions.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

log = logging.getLogger("eco2.broker")
RETRYABLE_4XX = frozenset({404, 409, 429})
CE_CORE = ("specversion", "id", "source", "type", "subject", "time", "dataschema")


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
class Message:
    """A CloudEvent as the broker carries it: attributes (incl. extensions) and the raw data."""

    attributes: dict[str, str]
    data: bytes
    content_type: str = "application/json"

    def http_headers(self) -> dict[str, str]:
        """Binary mode: attributes as ce- headers; datacontenttype is the Content-Type header."""
        headers = {f"ce-{k}": str(v) for k, v in self.attributes.items() if k != "datacontenttype"}
        headers["Content-Type"] = self.content_type
        return headers

    @classmethod
    def from_http(cls, headers: Mapping[str, str], body: bytes) -> Message | None:
        attrs = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
        attrs.pop("datacontenttype", None)
        if not all(attrs.get(k) for k in ("specversion", "id", "source", "type")):
            return None
        return cls(attrs, body, headers.get("Content-Type", "application/json"))


@dataclass
class Outcome:
    status: Literal["delivered", "dead-lettered", "dropped"]
    attempts: int
    code: int | None
    reply: Message | None = None
    dead_letter: Message | None = None


class Deliverer:
    """Delivers one message to one Trigger's subscriber; thread-safe (a session per thread)."""

    def __init__(self, trigger: TriggerSpec, stopping: threading.Event | None = None) -> None:
        self.trigger = trigger
        self.stopping = stopping or threading.Event()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def deliver(self, message: Message) -> Outcome:
        spec = self.trigger.delivery
        code: int | None = None
        body = b""
        attempts = 0
        for attempt in range(spec.retry + 1):
            if attempt:
                # while shutting down, keep retrying but never wait longer than needed
                time.sleep(spec.backoff(attempt))
            attempts += 1
            try:
                response = self._session().post(
                    self.trigger.subscriber, data=message.data, headers=message.http_headers(), timeout=spec.timeout
                )
            except requests.RequestException as exc:
                code, body = None, str(exc).encode()[:1024]
                log.warning(
                    "delivery failed",
                    extra={"trigger": self.trigger.name, "attempt": attempts, "error": type(exc).__name__},
                )
                continue
            code, body = response.status_code, response.content[:1024]
            if 200 <= code < 300:
                reply = Message.from_http(response.headers, response.content)
                return Outcome("delivered", attempts, code, reply=reply)
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
