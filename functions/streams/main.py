"""functions-framework entrypoint (target `handle`, an ASGI function: see eco2.aio)."""

from eco2.aio import target

handle = target("functions.streams.app:fn")
