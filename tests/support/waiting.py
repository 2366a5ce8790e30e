"""Polling for a condition in integration tests: bounded, and the last look decides."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05) -> bool:
    """True as soon as `predicate()` is truthy, polled every `interval` seconds; after `timeout`
    seconds the answer of one last call."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
