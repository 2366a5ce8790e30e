"""Serving one function: the functions-framework target and everything around the handlers.

`Runtime.handle(request)` is the whole request path: request id → CORS → health / metrics /
OpenAPI → CloudEvent or route dispatch (auth, decode, handler, encode) → errors mapped to HTTP here
and only here → metrics and one access-log line.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, TypeAdapter, ValidationError
from werkzeug.wrappers import Response

from eco2.core import cors, errors
from eco2.core.context import Context
from eco2.core.function import Function, Route
from eco2.core.logs import access, function_var, request_id_var
from eco2.core.metrics import Metrics
from eco2.core.security import ACCESS_COOKIE, bearer

if TYPE_CHECKING:
    from flask import Request

    from eco2.core.ports import ClientSet
    from eco2.core.ratelimit import RateLimiter
    from eco2.core.settings import Settings

log = logging.getLogger("eco2.core.runtime")
PROCESS_STARTED = time.time()
MAX_BODY = 1024 * 1024  # default per route; a route may declare its own `max_body`
EVENT_PATH = "/"  # the private event path: Triggers deliver here, no public route reaches it
PUBLIC_INGRESS_HEADER = "X-Eco2-Ingress"  # set to "public" by the VirtualServices and the dev gateway
PUBLIC_INGRESS_ENVIRON = "HTTP_X_ECO2_INGRESS"
_REQUEST_ID_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class EventIngress(Protocol):
    """What dispatches the CloudEvents of the private event path (eco2.events.ingress.Ingress)."""

    def __call__(self, runtime: Runtime, request: Request, request_id: str, /) -> Response: ...

    def close(self) -> None:
        """Settle what the deliveries so far left to do (before the clients close)."""


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_JSON.encode(body), status=status, headers=headers, content_type="application/json")


def header(request: Request, wsgi_name: str) -> str:
    """A request header straight from the WSGI environ (`HTTP_X_REQUEST_ID`): werkzeug's
    `headers.get` builds and catches an exception for every absent header (~3 µs each)."""
    value = request.environ.get(wsgi_name)
    return value if isinstance(value, str) else ""


STATUS: dict[type[errors.AppError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Unprocessable: 422,
    errors.TooManyRequests: 429,
    errors.UpstreamError: 502,
    errors.ServiceUnavailable: 503,
}


def status_of(exc: errors.AppError) -> int:
    """The HTTP status of an error kind: the nearest class in STATUS (500 for anything else)."""
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def error_parts(exc: BaseException) -> tuple[int, dict[str, str], dict[str, str]]:
    """The one place where errors become HTTP: (status, `{"detail", "code"}` body, headers), for
    every transport (this WSGI runtime, the async one)."""
    if isinstance(exc, errors.AppError):
        headers = {}
        if isinstance(exc, errors.TooManyRequests | errors.ServiceUnavailable):
            headers["Retry-After"] = str(getattr(exc, "retry_after", 1))
        return status_of(exc), exc.body(), headers
    if isinstance(exc, ValidationError):
        return 422, {"detail": describe_validation(exc), "code": "VALIDATION_ERROR"}, {}
    backend = unavailable_backend(exc)
    if backend is not None:
        log.warning("backend unavailable", extra={"backend": backend, "error": type(exc).__name__})
        return error_parts(errors.ServiceUnavailable(f"The {backend} is unavailable; try again shortly."))
    log.error("unhandled error", exc_info=exc)
    return 500, dict(errors.INTERNAL_ERROR_BODY), {}


def error_response(exc: BaseException) -> Response:
    status, body, headers = error_parts(exc)
    return json_response(body, status, headers or None)


def unavailable_backend(exc: BaseException) -> str | None:
    """'database' / 'cache' / 'event broker' when `exc` says a backend cannot be reached (503:
    worth retrying), else None. Only libraries already imported are consulted (no import here)."""
    import sys

    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(exc, redis_exc.ConnectionError | redis_exc.TimeoutError):
        return "cache"
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return "database"
    publisher = sys.modules.get("eco2.events.publisher")
    pika_exc = sys.modules.get("pika.exceptions")
    if (publisher is not None and isinstance(exc, publisher.PublishError)) or (
        pika_exc is not None and isinstance(exc, pika_exc.AMQPError)
    ):
        return "event broker"
    return None


def describe_validation(exc: ValidationError, where: str = "body") -> str:
    """`name: too short; times: too large` — the offending fields named, at most five."""
    return "; ".join(f"{'.'.join(str(p) for p in item['loc']) or where}: {item['msg']}" for item in exc.errors()[:5])


class Runtime:
    """Serves one function over WSGI. It is handed everything it uses (composition in
    `eco2.serving.entry`): the clients, the function's settings section, and the event ingress that
    dispatches CloudEvents on the private event path (None: the function takes no events)."""

    def __init__(
        self,
        function: Function,
        settings: Settings,
        clients: ClientSet,
        config: Any = None,
        event_ingress: EventIngress | None = None,
    ) -> None:
        self.function = function
        self.settings = settings
        self.config = config
        self.clients = clients
        self.event_ingress = event_ingress
        self.metrics = Metrics(function.name)
        self._started = False
        self._start_lock = threading.Lock()
        self._origins = frozenset(settings.allowed_origins)
        self._openapi: bytes | None = None

    def body_cap(self) -> int:
        """The largest body any route of this function accepts (event deliveries: MAX_BODY)."""
        return max([MAX_BODY, *(route.max_body or MAX_BODY for route in self.function.routes)])

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the clients and run startup hooks once per process (after gunicorn forks)."""
        with self._start_lock:
            if self._started:
                return
            self.clients.start()
            for hook in self.function.startup_hooks:
                hook(self.clients)
            self._started = True
            # what start-up built lives as long as the process: out of the collector's way, so a
            # collection walks only what requests allocate (gc.freeze, as the gc docs advise for
            # servers after initialisation)
            gc.freeze()
            took = time.time() - PROCESS_STARTED
            self.metrics.startup.labels(self.function.name).set(took)
            log.info("function ready", extra={"startup_seconds": round(took, 3)})

    def close(self) -> None:
        with self._start_lock:
            self._started = False
            if self.event_ingress is not None:
                self.event_ingress.close()
            self.clients.close()
            log.info("function stopped, clients closed")

    # -- the target -----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = self._request_id(request)
        token = request_id_var.set(request_id)
        function_token = function_var.set(self.function.name)
        label = ["unmatched"]
        self.metrics.in_flight_child.inc()
        try:
            if not self._started:
                self.start()
            response = self._dispatch(request, request_id, label)
        except Exception as exc:
            response = error_response(exc)
        finally:
            self.metrics.in_flight_child.dec()
        headers = response.headers
        headers.set("X-Request-ID", request_id)
        origin = header(request, "HTTP_ORIGIN")
        if origin:
            headers.update(cors.response_headers(self._origins, origin))
        headers.add("Vary", "Origin")
        took = time.perf_counter() - started
        route_label = label[0]
        if route_label not in _UNLOGGED:
            status = response.status_code
            self.metrics.observe(route_label, request.method, str(status), took)
            access(log, request.method, route_label, status, took)
        request_id_var.reset(token)
        function_var.reset(function_token)
        return response

    def _request_id(self, request: Request) -> str:
        given = header(request, "HTTP_X_REQUEST_ID")
        if 8 <= len(given) <= 64 and set(given) <= _REQUEST_ID_OK:
            return given
        # not a secret, only unique: the process's Mersenne Twister (reseeded in each forked worker)
        # needs no system call, and os.urandom's gives up the GIL once per request
        return f"{random.getrandbits(128):032x}"

    def _dispatch(self, request: Request, request_id: str, label: list[str]) -> Response:
        path = request.path
        method = request.method
        if method == "OPTIONS" and header(request, "HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            label[0] = "preflight"
            return self._preflight(request)
        if path.startswith("/health/") or path in ("/metrics", "/openapi.json"):
            builtin = self._builtin(method, path)
            if builtin is not None:
                label[0] = path
                return builtin
        if path == EVENT_PATH and method == "POST":
            label[0] = "cloudevent"
            return self._event(request, request_id)
        _check_path(request)
        route, params = self.function.resolve(method, path)
        label[0] = route.path
        return self._call_route(route, params, request, request_id)

    def _event(self, request: Request, request_id: str) -> Response:
        """The private event path. Only CloudEvents are accepted here, and never from the public
        ingress (which marks what it forwards); everywhere else a CloudEvent is ordinary HTTP."""
        if header(request, PUBLIC_INGRESS_ENVIRON):
            raise errors.Forbidden("Events are not accepted from the public ingress.", "EVENT_PATH_PRIVATE")
        if not self._is_cloudevent(request):
            raise errors.BadRequest("This path accepts CloudEvents only.", "NOT_A_CLOUDEVENT")
        if self.event_ingress is None:
            raise errors.NotFound(f"{self.function.name} takes no events.", "NO_EVENT_HANDLERS")
        return self.event_ingress(self, request, request_id)

    def _builtin(self, method: str, path: str) -> Response | None:
        if method not in ("GET", "HEAD"):
            return None
        if path == "/health/liveness":
            return json_response({"status": "ok", "function": self.function.name})
        if path == "/health/readiness":
            checks = self.clients.check()
            ready = all(v == "ok" for v in checks.values())
            body = {"status": "ok" if ready else "unavailable", "function": self.function.name, "checks": checks}
            return json_response(body, 200 if ready else 503)
        if path == "/metrics":
            from eco2.core.metrics import CONTENT_TYPE

            return Response(self.metrics.render(), content_type=CONTENT_TYPE)
        if path == "/openapi.json":
            if self._openapi is None:
                from eco2.core.openapi import document

                self._openapi = json.dumps(document([self.function]), ensure_ascii=False).encode()
            return Response(self._openapi, content_type="application/json")
        return None

    @staticmethod
    def _is_cloudevent(request: Request) -> bool:
        environ = request.environ
        content_type = environ.get("CONTENT_TYPE") or ""
        return "HTTP_CE_SPECVERSION" in environ or content_type.startswith("application/cloudevents")

    # -- HTTP routes ----------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Any:
        from eco2.core.security import verify

        return verify(self.clients.tokens, self.clients.redis, access_token(request), "access")

    def _call_route(self, route: Route, params: dict[str, str], request: Request, request_id: str) -> Response:
        claims = self.authenticate(request) if route.auth else None
        if route.rate is not None:
            self.limiter.hit(route, claims.sub if claims is not None else None, request)
        kwargs: dict[str, Any] = dict(params)
        if route.query is not None:
            kwargs["query"] = _validate(route.query, dict(request.args.items()), "query")
        if route.body is not None:
            kwargs["body"] = _validate(route.body, self._json_body(request, route.max_body or MAX_BODY), "body")
        ctx = Context(
            function=self.function.name,
            settings=self.settings,
            clients=self.clients,
            request_id=request_id,
            request=request,
            claims=claims,
            config=self.config,
        )
        try:
            result = route.handler(ctx, **kwargs)
            ctx.finish(ok=True)
        except BaseException:
            ctx.finish(ok=False)
            raise
        response = self._encode(route, result)
        headers = response.headers
        for name, value in ctx.headers.items():
            headers.set(name, value)
        if claims is not None and not headers.getlist("Cache-Control"):
            headers.add("Cache-Control", "no-store")  # personal data: never kept by a cache
        for cookie in ctx.cookies:
            self._apply_cookie(response, cookie.name, cookie.value, cookie.max_age)
        return response

    @functools.cached_property
    def limiter(self) -> RateLimiter:
        from eco2.core.ratelimit import RateLimiter

        return RateLimiter(self.function.name, self.clients, self.settings)

    @staticmethod
    def _json_body(request: Request, limit: int) -> Any:
        """The JSON body: bounded (413), JSON only when present (415), at most MAX_DEPTH deep (400)."""
        if request.content_length is not None and request.content_length > limit:
            raise errors.PayloadTooLarge(f"The body is larger than {limit} bytes.")
        raw = request.stream.read(limit + 1) if request.content_length is None else request.get_data(cache=True)
        if len(raw) > limit:
            raise errors.PayloadTooLarge(f"The body is larger than {limit} bytes.")
        if not raw.strip():
            return {}
        mimetype = request.mimetype
        if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
            raise errors.UnsupportedMediaType("Send the body as JSON (Content-Type: application/json).")
        if _nesting(raw) > MAX_DEPTH:
            raise errors.BadRequest(f"The JSON body is nested deeper than {MAX_DEPTH} levels.", "JSON_TOO_DEEP")
        try:
            return json.loads(raw)
        except ValueError:
            raise errors.BadRequest("The body is not valid JSON.", "INVALID_JSON") from None

    @staticmethod
    def _encode(route: Route, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status=204 if route.status == 200 else route.status)
        if isinstance(result, BaseModel):
            body = result.model_dump(mode="json")
        elif route.response is not None:
            adapter = _adapter(route.response)
            body = adapter.dump_python(adapter.validate_python(result), mode="json")
        else:
            body = result
        return json_response(body, route.status)

    def _apply_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            domain=self.settings.cookie_domain or None,
            secure=self.settings.cookie_secure,
            httponly=True,
            samesite="Lax",
        )

    # -- CORS -----------------------------------------------------------------------------------
    def _preflight(self, request: Request) -> Response:
        response = Response(status=204)
        response.headers.update(cors.preflight_headers(self._origins, header(request, "HTTP_ORIGIN")))
        return response


_UNLOGGED = frozenset(("/metrics", "/health/liveness", "/health/readiness"))


def access_token(request: Request) -> str | None:
    """The access token: the `s_access` cookie, else `Authorization: Bearer`. The cookie header is
    parsed only when it can hold the cookie (werkzeug's parse costs ~15 µs)."""
    environ = request.environ
    raw_cookie = environ.get("HTTP_COOKIE")
    token = request.cookies.get(ACCESS_COOKIE) if raw_cookie and ACCESS_COOKIE in raw_cookie else None
    return token or bearer(environ.get("HTTP_AUTHORIZATION"))


MAX_DEPTH = 32
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def _nesting(raw: bytes) -> int:
    """How deep the brackets of a JSON text go (strings skipped), without recursing: json.loads
    would raise RecursionError on `[` x 100000 and pydantic would walk it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif byte in _CLOSERS:
            depth -= 1
    return deepest


def _check_path(request: Request) -> None:
    """Only canonical paths reach a route: no empty segments, dot segments or encoded slashes,
    so `//api/v1/users/me` and `/api/v1/users%2fme` are not another spelling of a route."""
    raw = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path)
    raw_path = raw.split("?", 1)[0].lower()
    if "//" in raw_path or "%2f" in raw_path or "%5c" in raw_path or "/./" in raw_path or "/../" in raw_path:
        raise errors.NotFound("No route for this path; paths are matched exactly as written.")


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def _validate(model: type[BaseModel], raw: Any, where: str) -> BaseModel:
    if not isinstance(raw, dict):
        raise errors.Unprocessable(f"{where}: expected a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise errors.Unprocessable(describe_validation(exc, where), "VALIDATION_ERROR") from None
