"""functions-framework entrypoint (target `handle`, an ASGI function: see eco2.serving.aio)."""

from eco2.serving.aio import target

handle = target("functions.streams.app:fn")
