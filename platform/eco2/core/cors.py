"""CORS as API.md asks: exactly the configured origins, with credentials; one rule for the WSGI
runtime, the async runtime and `eco2 dev`'s gateway (each adds the headers to its own response)."""

from __future__ import annotations

from collections.abc import Collection

from eco2.core import errors

METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
HEADERS = "Content-Type, X-Frontend-Origin, Last-Event-ID, X-Idempotency-Key"
EXPOSE = "X-Request-ID, Retry-After"


def preflight_headers(origins: Collection[str], origin: str | None) -> dict[str, str]:
    """The answer to an allowed preflight (204); Forbidden for any other origin."""
    if not origin or origin not in origins:
        raise errors.Forbidden("This origin is not allowed.", "ORIGIN_NOT_ALLOWED")
    return {
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Allow-Headers": HEADERS,
        "Access-Control-Max-Age": "600",
    }


def response_headers(origins: Collection[str], origin: str | None) -> dict[str, str]:
    """What every answer carries for `origin` (besides `Vary: Origin`, which every answer has)."""
    if not origin or origin not in origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSE,
    }
