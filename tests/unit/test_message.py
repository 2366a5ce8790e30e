"""The binary-mode CloudEvent codec (eco2.events.message) against the cloudevents SDK it stands in
for: on every input here, the headers it writes are the SDK's `to_binary` headers and what it reads
is what the SDK's `from_http` reads (the SDK is kept for structured mode; binary mode was measured
on every delivery's path, issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from eco2.events.message import InvalidMessage, Message, make_message

ATTRIBUTES: list[dict[str, str]] = [
    {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/eco2/scan",
        "type": "scan.completed.v1",
        "time": "2026-12-01T00:00:00Z",
    },
    {
        "specversion": "1.0",
        "id": "2f1c",
        "source": "/eco2/character",
        "type": "character.granted.v1",
        "time": "2026-12-01T09:30:00.123456Z",
        "subject": "users/42",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "knativeerrorcode": "500",
    },
    {"specversion": "1.0", "id": "한글-id", "source": "/s p a c e", "type": "t.v1", "time": "2026-12-01T00:00:00Z"},
]
BODIES = [b'{"a":1}', '{"name":"페트병"}'.encode(), b""]


def sdk_headers(attributes: dict[str, str], data: bytes, content_type: str) -> dict[str, str]:
    event = CloudEvent({**attributes, "datacontenttype": content_type}, data)
    headers, body = to_binary(event, data_marshaller=lambda d: d or b"")
    assert body == data
    return {k.lower(): str(v) for k, v in headers.items()}


@pytest.mark.parametrize("attributes", ATTRIBUTES)
@pytest.mark.parametrize("data", BODIES)
def test_binary_headers_are_the_sdks(attributes: dict[str, str], data: bytes) -> None:
    message = Message(dict(attributes), data, "application/json")
    headers, body = message.to_http("binary")
    assert body == data
    assert {k.lower(): v for k, v in headers.items()} == sdk_headers(attributes, data, "application/json")


@pytest.mark.parametrize("attributes", ATTRIBUTES)
@pytest.mark.parametrize("data", BODIES)
def test_binary_read_is_the_sdks(attributes: dict[str, str], data: bytes) -> None:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        **{f"Ce-{k.title()}": v for k, v in attributes.items()},
    }
    ours = Message.from_http(headers, data)
    event = from_http(dict(headers), data, data_unmarshaller=lambda d: d)
    sdk = {k: str(v) for k, v in event.get_attributes().items() if k in attributes}
    assert ours.attributes == sdk == attributes
    assert ours.data == (event.data or b"")
    assert ours.content_type == "application/json; charset=utf-8"


def test_round_trip_through_binary_mode_keeps_every_attribute() -> None:
    sent = make_message("t.happened.v1", {"x": "값"}, source="/t", subject="s", extensions={"traceparent": "00-ab"})
    headers, body = sent.to_http("binary")
    received = Message.from_http(headers, body)
    assert received == sent
    assert received.json() == {"x": "값"}


def test_binary_mode_invents_no_time() -> None:
    """The SDK adds a `time` when none was given; a relayed event keeps exactly what it carried."""
    given = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t.v1"}
    headers = Message(dict(given), b"{}").http_headers()
    assert "ce-time" not in headers
    assert "ce-time" in sdk_headers(given, b"{}", "application/json")  # what the SDK would have sent


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"{}", "MISSING_ATTRIBUTES"),
        ({"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"{}", "UNSUPPORTED_SPECVERSION"),
        ({"ce-specversion": "1.0", "ce-id": "", "ce-source": "/s", "ce-type": "t"}, b"{}", "MISSING_ATTRIBUTES"),
        (
            {"content-type": "text/plain", "ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            b"hi",
            "UNSUPPORTED_DATA",
        ),
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", "UNSUPPORTED_BATCH"),
    ],
)
def test_what_binary_mode_refuses(headers: dict[str, Any], body: bytes, code: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        Message.from_http(headers, body)
    assert caught.value.code == code
