"""eco2: a serverless function framework for Knative (functions-framework + Flask + cloudevents 1.x).

Declare a function with `Function`, its routes and CloudEvent handlers with decorators; the
runtime serves it as one functions-framework target. See the README for the tour.

The package is layered, and the arrows point one way (import-linter checks it in CI):

- `eco2.tooling`: the `eco2` CLI, `eco2 dev`, build, deploy, locks, migrations;
- `eco2.serving`: the composition root of one function (clients, the functions-framework target,
  the container's server, the async runtime);
- `eventing` (a package of its own): the catalogue, the local broker, Knative object rendering;
- `eco2.events`: the CloudEvent message and codec, the ingress, publishers, the outbox;
- `eco2.core`: declaring a function, dispatch, context, errors, security, settings, health,
  metrics and logs.

This module is what a function author imports: `Function`, `Context`, `Event`, `OutEvent` and the
error kinds (`eco2.errors`).

The names load on first use (PEP 562): `python -m eco2.serving.server` imports this package
before its `main` can turn the collector off for the start (eco2.serving.server.serve), and
`Function` brings pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eco2.core import errors
    from eco2.core.context import Context, Event, OutEvent
    from eco2.core.function import Function

__all__ = ["Context", "Event", "Function", "OutEvent", "errors"]

_WHERE = {
    "Context": "eco2.core.context",
    "Event": "eco2.core.context",
    "OutEvent": "eco2.core.context",
    "Function": "eco2.core.function",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("eco2.core.errors")
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'eco2' has no attribute {name!r}")
