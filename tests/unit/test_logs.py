"""The JSON log line: one object per record, with the fields the runtime and handlers attach."""

from __future__ import annotations

import json
import logging

from eco2.core.logs import JsonFormatter


def record(created: float, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("eco2.test", logging.INFO, __file__, 1, "hello %s", ("이코",), None)
    rec.created, rec.msecs = created, (created - int(created)) * 1000
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_timestamp_is_utc_with_milliseconds_across_seconds() -> None:
    formatter = JsonFormatter("users")
    stamps = [json.loads(formatter.format(record(t)))["ts"] for t in (0.0, 0.999, 1.0, 1.5, 86_400.25, 1.0)]
    assert stamps == [
        "1970-01-01T00:00:00.000Z",
        "1970-01-01T00:00:00.999Z",
        "1970-01-01T00:00:01.000Z",
        "1970-01-01T00:00:01.500Z",
        "1970-01-02T00:00:00.250Z",
        "1970-01-01T00:00:01.000Z",  # an older second after a newer one (another thread's record)
    ]


def test_line_carries_message_function_request_id_and_extras() -> None:
    line = json.loads(
        JsonFormatter("users").format(
            record(1.0, request_id="req-1", route="/api/v1/users/me", status=200, _private="no")
        )
    )
    assert line["message"] == "hello 이코"
    assert line["function"] == "users"
    assert line["level"] == "INFO"
    assert line["logger"] == "eco2.test"
    assert line["request_id"] == "req-1"
    assert line["route"] == "/api/v1/users/me"
    assert line["status"] == 200
    assert "_private" not in line
    assert "lineno" not in line and "threadName" not in line  # standard attributes stay out


def test_exception_is_included() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        rec = record(1.0)
        rec.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("users").format(rec))
    assert "ValueError: bad" in line["exception"]
