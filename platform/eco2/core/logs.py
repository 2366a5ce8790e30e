"""JSON logs, one object per line, each carrying the function name and the current request id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
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


def configure(function: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON. Idempotent."""
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_eco2", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
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
