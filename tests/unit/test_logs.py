"""The JSON log line: one object per record, with the fields the runtime and handlers attach."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from eco2.core import logs
from eco2.core.logs import PIPE_BUF, BatchedStreamHandler, JsonFormatter


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


class Recorder:
    """A stream that keeps each write() call."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return "".join(self.writes).splitlines()


def batched(interval: float = 60.0, capacity: int = 1000) -> tuple[logging.Logger, Recorder, BatchedStreamHandler]:
    stream = Recorder()
    handler = BatchedStreamHandler(stream, interval=interval, capacity=capacity)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"eco2.test.batched.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, stream, handler


def test_lines_below_warning_wait_and_a_warning_writes_them_first_in_order() -> None:
    logger, stream, _ = batched()
    logger.info("one")
    logger.info("two")
    assert stream.writes == []  # waiting for the writer (a minute away here)
    logger.warning("three")
    assert stream.lines() == ["INFO one", "INFO two", "WARNING three"]
    assert len(stream.writes) == 1  # one write for all three


def test_the_writer_thread_writes_waiting_lines_within_the_interval() -> None:
    logger, stream, _ = batched(interval=0.02)
    logger.info("soon")
    deadline = time.monotonic() + 2
    while not stream.writes and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stream.lines() == ["INFO soon"]


def test_flush_and_capacity_write_what_waits() -> None:
    logger, stream, handler = batched(capacity=3)
    logger.info("a")
    logger.info("b")
    assert stream.writes == []
    logger.info("c")  # the third line reaches the capacity
    assert stream.lines() == ["INFO a", "INFO b", "INFO c"]
    logger.debug("d")
    handler.flush()
    assert stream.lines()[-1] == "DEBUG d"


def test_writes_are_cut_at_line_boundaries_within_pipe_buf() -> None:
    """Several worker processes share one stderr pipe: a write of at most PIPE_BUF bytes is atomic,
    so no line of one process is cut by another's."""
    logger, stream, handler = batched()
    sent = [f"line {n} " + "페" * 300 for n in range(40)]  # ~900 bytes each in UTF-8
    for text in sent:
        logger.info(text)
    handler.flush()
    assert stream.lines() == [f"INFO {text}" for text in sent]
    assert len(stream.writes) > 1
    for piece in stream.writes:
        assert len(piece.encode()) <= PIPE_BUF and piece.endswith("\n")


def test_a_forked_child_does_not_write_the_lines_its_parent_left_waiting() -> None:
    """gunicorn forks its workers from the process that configured the logs: a line still waiting
    at the fork is the parent's to write, once."""
    import os

    read, write = os.pipe()
    stream = os.fdopen(write, "w")
    handler = BatchedStreamHandler(stream, interval=60.0)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"eco2.test.fork.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.info("before the fork")
    pid = os.fork()
    if pid == 0:  # the child: its own line, written, then leave without pytest's teardown
        logger.info("from the child")
        handler.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    handler.flush()
    stream.close()
    with os.fdopen(read) as pipe:
        messages = pipe.read().splitlines()
    assert sorted(messages) == ["before the fork", "from the child"]


def test_the_http_clients_request_lines_are_kept_out_below_debug() -> None:
    """httpx (httpx2 under openai 3) logs each request at INFO; at INFO its warnings still pass."""
    from eco2.core.logs import configure

    root = logging.getLogger()
    before = root.level
    try:
        for name in ("httpx", "httpx2"):
            configure("scan-worker", "INFO")
            logger = logging.getLogger(name)
            assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
            configure("scan-worker", "DEBUG")
            assert logger.isEnabledFor(logging.DEBUG)
    finally:
        configure("scan-worker", logging.getLevelName(before))


def eco2_logger(stream: Recorder) -> tuple[logging.Logger, BatchedStreamHandler]:
    """A logger whose only handler is one as `configure` installs it (not on the root logger:
    pytest keeps handlers of its own there)."""
    handler = BatchedStreamHandler(stream, interval=60.0)
    handler._eco2 = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter("users"))
    logger = logging.getLogger(f"eco2.test.access.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture()
def eco2_records() -> Iterator[None]:
    """This module's record factory, as `configure` sets it."""
    saved = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logs._record_factory)
    yield
    logging.setLogRecordFactory(saved)


def test_the_access_line_is_the_same_built_directly_or_through_a_record(eco2_records: None) -> None:
    stream = Recorder()
    logger, handler = eco2_logger(stream)
    request_token, function_token = logs.request_id_var.set("req-7"), logs.function_var.set("users")
    try:
        assert logs._sole_handler(logger) is handler  # built directly
        logs.access(logger, "GET", "/api/v1/users/me", 200, 0.001234)
        logger.addFilter(lambda record: True)  # anything in the way: the record goes through logging
        assert logs._sole_handler(logger) is None
        logs.access(logger, "GET", "/api/v1/users/me", 200, 0.001234)
    finally:
        logs.request_id_var.reset(request_token)
        logs.function_var.reset(function_token)
    handler.flush()
    direct, through = (json.loads(line) for line in stream.lines())
    assert direct.pop("ts")[:4] == through.pop("ts")[:4]
    assert (
        direct
        == through
        == {
            "level": "INFO",
            "logger": logger.name,
            "function": "users",
            "message": "request",
            "request_id": "req-7",
            "method": "GET",
            "route": "/api/v1/users/me",
            "status": 200,
            "duration_ms": 1.23,
        }
    )


def test_another_handler_on_the_way_gets_the_access_record(eco2_records: None) -> None:
    stream = Recorder()
    logger, handler = eco2_logger(stream)
    seen: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(capture)
    logs.access(logger, "POST", "/api/v1/scan", 202, 0.01)
    assert [(r.getMessage(), r.route, r.status) for r in seen] == [("request", "/api/v1/scan", 202)]  # type: ignore[attr-defined]
    handler.flush()
    assert json.loads(stream.lines()[0])["route"] == "/api/v1/scan"  # and the eco2 handler still writes it


def test_no_access_line_below_the_loggers_level(eco2_records: None) -> None:
    stream = Recorder()
    logger, handler = eco2_logger(stream)
    logger.setLevel(logging.WARNING)
    logs.access(logger, "GET", "/api/v1/users/me", 200, 0.001)
    handler.flush()
    assert stream.lines() == []
