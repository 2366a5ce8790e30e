"""CloudEvents in and out (binary and structured mode), deduplication, and reply events.

Status codes follow Knative's data-plane contract: 2xx done; 400 for input that will never be
accepted (malformed, missing attributes, unknown type, invalid data: not retried); 409 while the
same (source, id) is being handled elsewhere (retried); 5xx for failures worth retrying.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from werkzeug.wrappers import Response

from eco2.core import errors
from eco2.core.context import Context, Event, OutEvent

if TYPE_CHECKING:
    from flask import Request

    from eco2.core.runtime import Runtime

log = logging.getLogger("eco2.events")
_CORE = {"id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject", "time", "data"}
PING_TYPE = "dev.knative.sources.ping"
PING_TYPE_EXTENSION = "eco2type"
DEDUPE_TTL = 7 * 24 * 3600
CLAIM_TTL = 300


class InvalidEvent(errors.BadRequest):
    default_code = "INVALID_CLOUDEVENT"
    default_detail = "The request is not a valid CloudEvent."


def parse(request: Request) -> dict[str, Any]:
    """Both content modes -> one dict of attributes (+ 'data'), through the one codec
    (eco2.events.message, on the cloudevents SDK); never raises anything but InvalidEvent."""
    from eco2.events.message import InvalidMessage, Message

    try:
        message = Message.from_http(dict(request.headers), request.get_data(cache=True))
        data = message.json()
    except InvalidMessage as exc:
        raise InvalidEvent(str(exc), exc.code) from None
    except ValueError:
        raise InvalidEvent("The event data is not valid JSON.") from None
    attrs: dict[str, Any] = dict(message.attributes)
    if data is not None:
        attrs["data"] = data
    return attrs


def dispatch(runtime: Runtime, request: Request, request_id: str) -> Response:
    attrs = parse(request)
    event_type = str(attrs["type"])
    if event_type == PING_TYPE and attrs.get(PING_TYPE_EXTENSION):
        # a Knative PingSource tick: its type is fixed, the catalogue type rides in an extension
        event_type = str(attrs[PING_TYPE_EXTENSION])
    metrics = runtime.metrics.events
    name = runtime.function.name
    handler = runtime.function.events.get(event_type)
    if handler is None:
        metrics.labels(name, event_type, "rejected").inc()
        raise InvalidEvent(f"{name} does not handle events of type {event_type}.", "UNKNOWN_EVENT_TYPE")
    data: Any = attrs.get("data")
    if handler.data is not None:
        try:
            data = handler.data.model_validate(data if data is not None else {})
        except ValidationError as exc:
            metrics.labels(name, event_type, "rejected").inc()
            from eco2.core.runtime import describe_validation

            raise InvalidEvent(
                f"Invalid data for {event_type}: {describe_validation(exc)}", "INVALID_EVENT_DATA"
            ) from None
    event = Event(
        id=str(attrs["id"]),
        source=str(attrs["source"]),
        type=event_type,
        data=data,
        subject=attrs.get("subject"),
        time=attrs.get("time"),
        extensions={k: v for k, v in attrs.items() if k not in _CORE},
    )
    ctx = Context(
        function=name, settings=runtime.settings, clients=runtime.clients, request_id=request_id, config=runtime.config
    )
    dedupe = Deduplicator(runtime) if handler.dedupe == "redis" else None
    if dedupe is not None:
        previous = dedupe.claim(event)
        if previous is not None:
            metrics.labels(name, event_type, "duplicate").inc()
            log.info("duplicate delivery ignored", extra={"event_id": event.id, "event_source": event.source})
            return previous
    try:
        if handler.dedupe == "db" and not _record_in_transaction(ctx, event):
            ctx.finish(ok=False)
            metrics.labels(name, event_type, "duplicate").inc()
            log.info("duplicate delivery ignored", extra={"event_id": event.id, "event_source": event.source})
            return Response(status=200)
        result = handler.handler(ctx, event)
        ctx.finish(ok=True)
    except BaseException:
        ctx.finish(ok=False)
        if dedupe is not None:
            dedupe.release(event)
        metrics.labels(name, event_type, "failed").inc()
        raise
    response = reply(result, default_source=f"/eco2/{name}") if isinstance(result, OutEvent) else Response(status=200)
    if dedupe is not None:
        dedupe.done(event, response)
    metrics.labels(name, event_type, "handled").inc()
    return response


def _record_in_transaction(ctx: Context, event: Event[Any]) -> bool:
    """Insert (consumer, source, id) in the handler's own transaction; False when already there.

    A concurrent duplicate blocks on the primary key until the first commits, then fails here.
    (A reply event of the first delivery is not re-sent: db-deduplicated handlers publish through
    the outbox instead of replying.)"""
    from sqlalchemy.exc import IntegrityError

    from eco2.events.outbox import processed_events

    try:
        with ctx.db.begin_nested():
            ctx.db.execute(
                processed_events.insert().values(
                    consumer=ctx.function, source=event.source, event_id=event.id, processed_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        return False
    return True


def reply(event: OutEvent, *, default_source: str) -> Response:
    """A 200 carrying a CloudEvent in binary mode: the broker publishes it."""
    from eco2.events.message import make_message

    message = make_message(
        event.type,
        event.data,
        source=event.source or default_source,
        event_id=event.id or None,
        subject=event.subject,
        extensions=event.extensions,
    )
    headers, body = message.to_http("binary")
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Response(body, status=200, headers=headers, content_type=message.content_type)


class Deduplicator:
    """(source, id) claimed with Redis SET NX: exactly-once effects under at-least-once delivery.

    A claim is 'processing' for CLAIM_TTL (a crashed handler's claim expires and the redelivery
    runs); a duplicate arriving meanwhile gets 409, which the broker retries. After success the key
    holds the reply (if any) for DEDUPE_TTL, so a redelivery re-sends the same reply event.
    When Redis is unreachable at the end of a delivery (the handler most likely failed for that
    very reason), releasing the claim or recording the reply is retried in the background until
    Redis is back: a claim left behind would answer every retry 409 for CLAIM_TTL, past the
    broker's retries, and the event would be dead-lettered.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.redis = runtime.clients.redis
        self.function = runtime.function.name
        self.token = f"processing:{uuid.uuid4().hex}"  # this delivery's claim

    def key(self, event: Event[Any]) -> str:
        return f"dedupe:{self.function}:{event.source}:{event.id}"

    def claim(self, event: Event[Any]) -> Response | None:
        key = self.key(event)
        if self.redis.set(key, self.token, ex=CLAIM_TTL, nx=True):
            return None
        stored = self.redis.get(key)
        if stored is None:  # expired between the two calls: claim again
            return self.claim(event)
        if (stored.decode() if isinstance(stored, bytes) else str(stored)).startswith("processing"):
            raise errors.Conflict("This event is being handled by another delivery.", "EVENT_IN_PROGRESS")
        record = json.loads(stored)
        if record.get("reply"):
            r = record["reply"]
            return Response(r["body"], status=200, headers=r["headers"], content_type="application/json")
        return Response(status=200)

    def done(self, event: Event[Any], response: Response) -> None:
        record: dict[str, Any] = {"done": True}
        if response.headers.get("ce-type"):
            headers = {k: v for k, v in response.headers.items() if k.lower().startswith("ce-")}
            record["reply"] = {"headers": headers, "body": response.get_data(as_text=True)}
        key, value = self.key(event), json.dumps(record, ensure_ascii=False)
        self._eventually(lambda: self.redis.set(key, value, ex=DEDUPE_TTL), "record")

    def release(self, event: Event[Any]) -> None:
        key = self.key(event)

        def give_back() -> None:
            if self.redis.get(key) == self.token:  # never another delivery's claim
                self.redis.delete(key)

        self._eventually(give_back, "release")

    def _eventually(self, action: Callable[[], Any], what: str, within: float = 60.0) -> None:
        """Run `action` now; when Redis fails, again in the background (backoff up to 2 s) for `within` s."""
        try:
            action()
            return
        except Exception as exc:
            log.warning("dedupe claim not settled; retrying in the background", extra={"error": type(exc).__name__})

        def retry() -> None:
            deadline, wait = time.monotonic() + within, 0.2
            while time.monotonic() < deadline:
                time.sleep(wait)
                try:
                    action()
                    return
                except Exception:
                    wait = min(wait * 2, 2.0)
            log.error("dedupe claim not settled; it expires on its own", extra={"action": what})

        threading.Thread(target=retry, name=f"dedupe-{what}", daemon=True).start()
