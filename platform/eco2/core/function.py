"""Declaring a function: HTTP routes and CloudEvent handlers on one `Function`.

    fn = Function("users", uses=("db", "redis", "jwt"))

    @fn.get("/api/v1/users/me", auth=True, response=Profile)
    def me(ctx: Context) -> Profile: ...

    @fn.event(CHARACTER_GRANTED, data=CharacterGranted)
    def on_granted(ctx: Context, event: Event[CharacterGranted]) -> None: ...

Nothing here imports Flask, SQLAlchemy or any client: declaring is free, serving is `eco2.core.runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from eco2.core import errors

Handler = Callable[..., Any]
USES = ("db", "redis", "s3", "openai", "jwt", "events")  # the clients a function may declare
_PARAM_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: bool
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    summary: str
    pattern: re.Pattern[str] = field(compare=False)
    params: tuple[str, ...] = ()
    rate: str | None = None  # e.g. "20/minute": per user when signed in, else per client address
    max_body: int | None = None  # bytes; None = the runtime's default

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


Dedupe = Literal["redis", "db", "none"]


@dataclass(frozen=True)
class EventHandler:
    event_type: str
    handler: Handler
    data: type[BaseModel] | None
    dedupe: Dedupe
    dead_letters: bool = False  # only what a Trigger gave up on (knativeerrordest set) reaches it


@dataclass(frozen=True)
class DevMount:
    prefix: str
    factory: Callable[[Mapping[str, str]], Any]
    env: Callable[..., Mapping[str, str]] | None = None  # (base_url) or (base_url, environment)

    @property
    def note(self) -> str:
        """What the stand-in is: the first line of its factory's docstring."""
        return (self.factory.__doc__ or "development only").strip().splitlines()[0]

    def defaults(self, base_url: str, environment: Mapping[str, str]) -> Mapping[str, str]:
        if self.env is None:
            return {}
        import inspect

        wants_environment = len(inspect.signature(self.env).parameters) >= 2
        return self.env(base_url, environment) if wants_environment else self.env(base_url)


def _compile(path: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    params = tuple(_PARAM_RE.findall(path))
    regex = ""
    last = 0
    for m in _PARAM_RE.finditer(path):
        regex += re.escape(path[last : m.start()]) + f"(?P<{m.group(1)}>[^/]+)"
        last = m.end()
    regex += re.escape(path[last:])
    return re.compile(regex), params


class Function:
    def __init__(
        self,
        name: str,
        *,
        uses: Iterable[str] = (),
        description: str = "",
        config: type[BaseModel] | None = None,
    ) -> None:
        """`config`: this function's own settings section, a pydantic-settings `BaseSettings`
        subclass read once from the environment at startup (its problems are listed with the
        platform's); handlers read it as `ctx.config`."""
        unknown = set(uses) - set(USES)
        if unknown:
            raise ValueError(f"unknown uses {sorted(unknown)}; known: {', '.join(USES)}")
        self.name = name
        self.uses = tuple(uses)
        self.description = description
        self.config = config
        self.routes: list[Route] = []
        self.events: dict[str, EventHandler] = {}
        self.startup_hooks: list[Callable[[Any], None]] = []
        self.dev_mounts: list[DevMount] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        auth: bool = False,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        summary: str = "",
        rate: str | None = None,
        max_body: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """`rate`: a rate limit like "20/minute" (limits' notation), counted in Redis per user when
        signed in and per client address otherwise; `max_body`: the largest accepted body in bytes."""
        method = method.upper()
        pattern, params = _compile(path)
        if rate is not None and "redis" not in self.uses:
            raise ValueError(f"{self.name}: route {method} {path} has a rate limit, counted in Redis: use 'redis'")
        if auth and "jwt" not in self.uses:
            raise ValueError(f"{self.name}: route {method} {path} needs auth, so the function must use 'jwt'")

        def register(handler: Handler) -> Handler:
            for existing in self.routes:
                if existing.method == method and existing.path == path:
                    raise ValueError(f"{self.name}: {method} {path} is declared twice")
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=handler,
                    auth=auth,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    summary=summary or (handler.__doc__ or "").strip().split("\n")[0],
                    pattern=pattern,
                    params=params,
                    rate=rate,
                    max_body=max_body,
                )
            )
            # static segments win over parameters: /scan/categories before /scan/{job_id}
            self.routes.sort(key=lambda r: (len(r.params), -len(r.path)))
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def event(
        self,
        event_type: str,
        *,
        data: type[BaseModel] | None = None,
        dedupe: Dedupe | None = None,
        dead_letters: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Handle CloudEvents of `event_type`, deduplicated on (source, id) before the handler runs:
        `dedupe="db"` records the event in the handler's own transaction (effects in PostgreSQL),
        `"redis"` claims it with SET NX, `"none"` lets every delivery through. Default: db when
        the function uses the database, else redis.

        `dead_letters=True`: the handler receives the events of `event_type` that another
        function's Trigger gave up on, this function being that Trigger's `deadLetterSink` in
        func.yaml. Such a delivery carries `knativeerrordest` (and `knativeerrorcode`,
        `knativeerrordata`) in `event.extensions`; one without it is refused (400), so a plain
        event of the type never runs the handler."""
        if dedupe is None:
            dedupe = "db" if "db" in self.uses else "redis" if "redis" in self.uses else "none"
        if dedupe != "none" and dedupe not in self.uses:
            raise ValueError(f"{self.name}: dedupe={dedupe!r} needs uses={dedupe!r}")

        def register(handler: Handler) -> Handler:
            if event_type in self.events:
                raise ValueError(f"{self.name}: a handler for {event_type} is already declared")
            self.events[event_type] = EventHandler(event_type, handler, data, dedupe, dead_letters)
            return handler

        return register

    def on_startup(self, hook: Callable[[Any], None]) -> Callable[[Any], None]:
        """Run `hook(clients)` once per process after the clients are built (warm caches, load data)."""
        self.startup_hooks.append(hook)
        return hook

    def dev_mount(
        self, prefix: str, *, env: Callable[..., Mapping[str, str]] | None = None
    ) -> Callable[[Callable[[Mapping[str, str]], Any]], Any]:
        """Declare a development-only WSGI app that `eco2 dev` mounts at `prefix`: a local stand-in
        for an outside service. `env(base_url)` or `env(base_url, environment)` gives defaults for
        the environment every function gets (e.g. the stand-in's URL); the factory gets the final
        environment and returns the app, or None to decline (its docstring's first line is shown
        in the banner). Nothing here runs outside `eco2 dev`."""

        def register(factory: Callable[[Mapping[str, str]], Any]) -> Any:
            self.dev_mounts.append(DevMount(prefix, factory, env))
            return factory

        return register

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method path` (HEAD answers as GET) and its path params; 405 when the path
        exists with other methods only, else 404 (both runtimes route through here)."""
        path_exists = False
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            path_exists = True
        if path_exists:
            raise errors.MethodNotAllowed()
        raise errors.NotFound(f"No route for {method} {path}.")
