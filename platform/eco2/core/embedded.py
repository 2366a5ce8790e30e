"""Embedded stand-ins for `eco2 dev` with no services configured: in-process Redis (fakeredis).

One server per process and URL, so every function hosted by `eco2 dev` sees the same data.
"""

from __future__ import annotations

import threading
from typing import Any

MEMORY_URL = "memory://"
_lock = threading.Lock()
_servers: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    import fakeredis

    with _lock:
        server = _servers.setdefault(url, fakeredis.FakeServer())
    return fakeredis.FakeRedis(server=server, decode_responses=True)


def async_redis_client(url: str) -> Any:
    """The same in-process Redis for an async function (redis.asyncio's interface)."""
    import fakeredis

    with _lock:
        server = _servers.setdefault(url, fakeredis.FakeServer())
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
