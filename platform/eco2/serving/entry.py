"""The functions-framework target of a function.

Each `functions/<name>/main.py` is two lines:

    from eco2.serving.entry import target
    handle = target("functions.users.app:fn")

Settings are read (and checked) when the module loads, so a misconfigured container fails before
it listens. Clients are built by `Runtime.start()`: after gunicorn forks (`eco2 run`), or on the
first request when the file is served by a plain `functions-framework` command.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eco2.core.function import Function

if TYPE_CHECKING:
    from flask import Request
    from werkzeug.wrappers import Response

    from eco2.core.settings import Settings


def import_function(ref: str) -> Function:
    module_name, _, attribute = ref.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, attribute or "fn", None)
    if not isinstance(function, Function):
        raise TypeError(f"{ref} is not an eco2 Function")
    return function


def configure(ref: str) -> tuple[Function, Settings, Any]:
    """Import the function, read its settings and its own section (every problem listed at once,
    before anything listens) and set up the JSON logs: what both targets (WSGI, ASGI) start with."""
    from eco2.core import logs
    from eco2.core.settings import Settings, read_section

    function = import_function(ref)
    settings = Settings.from_env(uses=function.uses, service_name=function.name)
    config = read_section(function.config) if function.config is not None else None
    logs.configure(function.name, settings.log_level)
    return function, settings, config


def target(ref: str) -> Callable[[Request], Response]:
    from eco2.core.runtime import Runtime

    function, settings, config = configure(ref)
    from eco2.serving.clients import Clients

    # the composition root of one function: wired here, built after the fork (Runtime.start)
    runtime = Runtime(function, settings, Clients(settings, function.uses), config=config)
    if function.events:
        from eco2.events.ingress import Ingress

        runtime.event_ingress = Ingress()

    def handle(request: Request) -> Response:
        return runtime.handle(request)

    handle.runtime = runtime  # type: ignore[attr-defined]
    return handle
