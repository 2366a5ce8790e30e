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

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "function": getattr(record, "function", "") or self.function,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            out["request_id"] = request_id
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
            self._lines.append(self.format(record))
            if record.levelno >= self.flush_level or len(self._lines) >= self.capacity:
                self._write()
            elif not self._pid:  # no writer in this process yet (0 again in a forked child)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="log-writer", daemon=True).start()
        except Exception:
            self.handleError(record)

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
