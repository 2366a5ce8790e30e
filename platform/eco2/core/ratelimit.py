"""Rate limits declared next to a route (`@fn.post(..., rate="20/minute")`), on the `limits` library.

Counted per user when the caller is signed in, else per client address; stored in Redis, so every
pod of a function shares one budget (the in-process `memory://` Redis of `eco2 dev` uses limits'
memory storage, which is just as shared inside that one process). The sliding-window counter
costs one Lua call per request. Over the limit: 429 `TOO_MANY_REQUESTS` with `Retry-After`.

The client address is the peer address, or the entry `TRUSTED_PROXY_HOPS` from the right of
`X-Forwarded-For` when that many proxies (the ALB, the Istio gateway, ...) sit in front and each
appends what it saw: entries further left are whatever the client wrote and are never trusted.
`ECO2_RATE_LIMITS` (JSON `{"POST /api/v1/scan": "10/minute"}`, set in func.yaml `run.envs`)
overrides a route's declared rate; `"off"` turns one off.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from eco2.core import errors

if TYPE_CHECKING:
    from flask import Request

    from eco2.core.function import Route
    from eco2.core.ports import ClientSet
    from eco2.core.settings import Settings

log = logging.getLogger("eco2.core.ratelimit")


class RateLimited(errors.TooManyRequests):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many requests; try again in {retry_after} s.")
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, function: str, clients: ClientSet, settings: Settings) -> None:
        from limits import parse
        from limits.strategies import SlidingWindowCounterRateLimiter

        self.function = function
        self.hops = settings.trusted_proxy_hops
        overrides: dict[str, str] = json.loads(settings.rate_limits or "{}")
        self._overrides = {key.strip(): value.strip() for key, value in overrides.items()}
        self._parse = parse
        self._items: dict[str, Any] = {}
        self.strategy = SlidingWindowCounterRateLimiter(_storage(clients, settings))

    def item(self, route: Route) -> Any:
        key = f"{route.method} {route.path}"
        item = self._items.get(key)
        if item is None:
            rate = self._overrides.get(key, route.rate or "off")
            item = None if rate == "off" else self._parse(rate)
            self._items[key] = item if item is not None else False
        return item or None

    def hit(self, route: Route, user_id: str | None, request: Request) -> None:
        item = self.item(route)
        if item is None:
            return
        who = f"user:{user_id}" if user_id else f"addr:{client_address(request, self.hops)}"
        scope = (self.function, route.method, route.path, who)
        try:
            if self.strategy.hit(item, *scope):
                return
            reset = self.strategy.get_window_stats(item, *scope).reset_time
        except Exception as exc:  # the budget store is down: serve (fail open) and say so
            log.warning("rate limit not checked", extra={"error": type(exc).__name__})
            return
        raise RateLimited(max(1, math.ceil(reset - time.time())))


def client_address(request: Request, hops: int) -> str:
    peer = request.remote_addr or "unknown"
    if hops <= 0:
        return peer
    chain = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    chain.append(peer)
    return chain[-(hops + 1)] if len(chain) > hops else chain[0]


def _storage(clients: ClientSet, settings: Settings) -> Any:
    from limits.storage import MemoryStorage, RedisStorage

    from eco2.core.embedded import MEMORY_URL

    url = settings.redis_url.get()
    if not url or url.startswith(MEMORY_URL):
        return MemoryStorage()
    return RedisStorage(url, connection_pool=clients.redis.connection_pool)
