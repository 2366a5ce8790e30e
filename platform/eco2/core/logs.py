"""JSON logs, one object per line, each carrying the function name and the current request id,
written to stderr in batches (BatchedStreamHandler)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
function_var: contextvars.ContextVar[str] = contextvars.ContextVar("function", default="")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "function",
}
_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp the current request id on every record when it is made (it outlives the request)."""
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id_var.get()
    record.function = function_var.get()
    return record


class JsonFormatter(logging.Formatter):
    def __init__(self, function: str) -> None:
        super().__init__()
        self.function = function
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._stamp, self._second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def fields(
        self, name: str, level: str, created: float, message: str, function: str, request_id: str
    ) -> dict[str, Any]:
        """The fields every line starts with, in this order (`format`, and `access` without a record)."""
        out: dict[str, Any] = {
            "ts": self._timestamp(created),
            "level": level,
            "logger": name,
            "function": function or self.function,
            "message": message,
        }
        if request_id:
            out["request_id"] = request_id
        return out

    def format(self, record: logging.LogRecord) -> str:
        out = self.fields(
            record.name,
            record.levelname,
            record.created,
            record.getMessage(),
            getattr(record, "function", ""),
            getattr(record, "request_id", ""),
        )
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:
            if not key.startswith("_"):
                out[key] = fields[key]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(out)


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
PIPE_BUF = 4096  # POSIX: a write of at most this many bytes to a pipe is never interleaved with another
_batched: weakref.WeakSet[BatchedStreamHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for handler in list(_batched):
        handler._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose lines below `flush_level` are written together, `interval` seconds
    apart at most, instead of one write (and flush) per record.

    Why: the write releases the GIL, and under concurrent requests giving it up and taking it
    back costs a thread switch per request. The no-I/O route of tests/benchmarks/bench_framework.py
    ran at 0.78x the bare hello with one write per access-log line and 1.02x without the lines
    (issue 14); batching keeps the lines and drops the per-request write.

    What it keeps: every record at `flush_level` (WARNING) or above is written at once, after the
    lines before it, so an error is never delayed and the order of lines is the order of records;
    at most `capacity` lines wait; `flush()` (logging's own at exit, the runtime's close) writes
    what waits. Writes are cut at line boundaries into pieces of at most PIPE_BUF bytes, so the
    lines of several worker processes sharing one stderr pipe never interleave mid-line (as one
    write per line did not). What a crash can lose: the lines of the last `interval` seconds
    below WARNING. The writer thread starts with the first line (after a fork, in the child,
    which leaves the lines waiting at the fork to the parent).
    """

    def __init__(
        self, stream: Any = None, interval: float = 0.05, flush_level: int = logging.WARNING, capacity: int = 1000
    ) -> None:
        super().__init__(stream)
        self.interval, self.flush_level, self.capacity = interval, flush_level, capacity
        self._lines: list[str] = []
        self._pid = 0
        _batched.add(self)

    def _forget_after_fork(self) -> None:
        """In a forked child (a gunicorn worker): the lines waiting at the fork are the parent's
        to write, not written twice; the child's own writer starts with its first line."""
        self._lines = []
        self._pid = 0

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            self._add(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)

    def _add(self, line: str, levelno: int) -> None:  # with the handler's lock held
        self._lines.append(line)
        if levelno >= self.flush_level or len(self._lines) >= self.capacity:
            self._write()
        elif not self._pid:  # no writer in this process yet (0 again in a forked child)
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        lines, self._lines = self._lines, []
        piece: list[str] = []
        size = 0
        for line in lines:
            length = len(line) + 1 if line.isascii() else len(line.encode()) + 1
            if piece and size + length > PIPE_BUF:
                self.stream.write("\n".join(piece) + "\n")
                piece, size = [], 0
            piece.append(line)
            size += length
        if piece:
            self.stream.write("\n".join(piece) + "\n")
        if hasattr(self.stream, "flush"):
            self.stream.flush()

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self.interval)
            if self._lines:
                try:
                    self.flush()
                except Exception:  # a closed or broken stream: nothing to report it on
                    return


def access(logger: logging.Logger, method: str, route: str, status: int, took: float) -> None:
    """One request's access line: `logger.info("request", extra={method, route, status,
    duration_ms})`, the same line however it is written.

    When the line would reach no handler but the one `configure` installed (none on the way up,
    no filter, this module's record factory), it is built here and handed to that handler without
    a LogRecord: the record, the logger's walk to its handlers and the handler's filtering were
    two thirds of the line's cost, and the line a quarter of a whole request's (callgrind, the
    no-I/O route of tests/benchmarks/bench_framework.py, in process: 451k instructions per request
    with the line through logging, 345k without it). Anything else in the way (a test's capture
    handler, a filter, another factory) gets the record as before."""
    if not logger.isEnabledFor(logging.INFO):
        return
    duration_ms = round(took * 1000, 2)
    handler = _sole_handler(logger)
    if handler is None:
        logger.info("request", extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms})
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    with handler.lock:  # type: ignore[union-attr]  # the formatter's clock, as in emit
        try:
            out = formatter.fields(
                logger.name, "INFO", time.time(), "request", function_var.get(), request_id_var.get()
            )
            out["method"], out["route"], out["status"], out["duration_ms"] = method, route, status, duration_ms
            handler._add(_ENCODER.encode(out), logging.INFO)
        except Exception:
            handler.handleError(logger.makeRecord(logger.name, logging.INFO, "", 0, "request", (), None))


def _sole_handler(logger: logging.Logger) -> BatchedStreamHandler | None:
    """`configure`'s handler when it is the only one a record of `logger` at INFO would reach
    (logging's own walk, Logger.callHandlers) and nothing would filter or change the record."""
    if logger.filters or logger.disabled or logging.getLogRecordFactory() is not _record_factory:
        return None
    found: BatchedStreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or not getattr(handler, "_eco2", False):
                return None
            found = handler  # type: ignore[assignment]
        current = current.parent if current.propagate else None
    if found is None or found.filters or found.level > logging.INFO or type(found.formatter) is not JsonFormatter:
        return None
    return found


def configure(function: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON. Idempotent."""
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_eco2", False)), None)
    if handler is None:
        handler = BatchedStreamHandler(sys.stderr)
        handler._eco2 = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter(function))
    root.setLevel(level)
    # The JSON lines carry none of the caller's file/line, thread or process names: skip gathering
    # them for every record (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # pika logs every refused reconnect at ERROR; the dispatcher and publisher log the loss once themselves
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    # httpx (httpx2 under openai 3) logs every request it sends at INFO: a line per model call
    # beside the function's own lines for the same work. Its warnings stay; all of it at DEBUG.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
