"""Serving an async function: the functions-framework ASGI target (Starlette + uvicorn worker).

`eco2.core.runtime` serves WSGI functions, one thread per request. A function whose requests are long
and mostly idle (Server-Sent Events) is better served by one event loop holding thousands of
connections; this is its runtime, the async counterpart of `Runtime.handle`, with the same
contract and the same pure pieces:

- request id (`X-Request-ID` kept when well formed, else made) on every response and log line;
- CORS exactly as `eco2.core.runtime` does it (`eco2.core.cors`, exact origins,
  credentials, preflights refused for other origins);
- `/health/liveness`, `/health/readiness` (pings Redis), `/metrics`, `/openapi.json`;
- the access token from the `s_access` cookie or `Authorization: Bearer`, checked by
  `eco2.core.tokens.TokenCodec` and `eco2.core.security`'s revocation rule, against the same
  local view of the revocation keys the sync runtime keeps (`AsyncClients.revocation_view`), or
  one async MGET while the view is not current;
- errors as `{"detail", "code"}` + status from `eco2.core.errors`, anything else a generic 500.

A function opts in by declaring async handlers and a two-line main.py:

    from eco2.serving.aio import target
    handle = target("functions.streams.app:fn")

`target` returns a coroutine function decorated with `functions_framework.aio.http`, so
functions-framework's `create_app` builds its Starlette app and `python -m eco2.serving.server` runs it
with gunicorn's uvicorn worker. Handlers get an `AsyncContext` and return a Starlette response.
Clients are built on the first request, inside the serving loop (redis.asyncio connections
belong to the loop that opened them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from eco2.core import errors
from eco2.core.function import Function
from eco2.core.logs import access, function_var, request_id_var
from eco2.core.metrics import Metrics
from eco2.core.security import ACCESS_COOKIE, bearer

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from eco2.core.security import RevocationView
    from eco2.core.settings import Settings
    from eco2.core.tokens import TokenClaims, TokenCodec

log = logging.getLogger("eco2.serving.aio")
_REQUEST_ID_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_QUIET = ("/metrics", "/health/liveness", "/health/readiness")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import Response

    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(payload, status_code=status, headers=headers, media_type="application/json")


def error_response(exc: BaseException) -> Response:
    """`eco2.core.runtime.error_parts` for Starlette: the same statuses, bodies and headers."""
    from eco2.core.runtime import error_parts

    status, body, headers = error_parts(exc)
    return json_response(body, status, headers or None)


class _Keys:
    """Stands in for a Redis client in `eco2.core.security.ensure_not_revoked`: first it records the keys
    the rule reads (answering "not revoked"), then it answers with the values read asynchronously.
    So the async check follows the sync rule exactly, whatever keys it reads."""

    def __init__(self, values: Sequence[Any] | None = None) -> None:
        self.keys: list[str] = []
        self.values = values

    def mget(self, keys: Iterable[str]) -> list[Any]:
        self.keys = list(keys)
        return list(self.values) if self.values is not None else [None] * len(self.keys)


async def ensure_not_revoked(redis: Any, claims: TokenClaims) -> None:
    """`eco2.core.security.ensure_not_revoked` with an async Redis client (one MGET)."""
    from eco2.core import security

    probe = _Keys()
    security.ensure_not_revoked(probe, claims)  # type: ignore[arg-type]
    values = await redis.mget(probe.keys)
    security.ensure_not_revoked(_Keys(values), claims)  # type: ignore[arg-type]


class AsyncClients:
    """What an async function may use: `redis` (redis.asyncio, one bounded pool per process) and
    `tokens` (the token codec). `new_redis()` opens a client of its own for a long blocking reader."""

    def __init__(self, settings: Settings, uses: Iterable[str], max_connections: int = 20) -> None:
        unknown = set(uses) - {"redis", "jwt"}
        if unknown:
            raise ValueError(f"an async function may use redis and jwt only, not {sorted(unknown)}")
        self.settings = settings
        self.uses = frozenset(uses)
        self.max_connections = max_connections
        self._redis: Any = None
        self._tokens: TokenCodec | None = None
        self._view_client: Any = None  # the revocation view's synchronous client; False: no view here

    @property
    def client_name(self) -> str:
        """How CLIENT LIST names this process's connections: function, pod (host) and process
        (read when connecting: after gunicorn forked the worker)."""
        return f"eco2-{self.settings.service_name}:{socket.gethostname()}:{os.getpid()}"

    @property
    def tokens(self) -> TokenCodec:
        if self._tokens is None:
            from eco2.core.tokens import TokenCodec

            self._tokens = TokenCodec(self.settings)
        return self._tokens

    @property
    def redis(self) -> Any:
        if self._redis is None:
            self._redis = self._make_redis(pool=True)
        return self._redis

    def new_redis(self) -> Any:
        """A client on one connection of its own (not from the pool): for a blocking reader."""
        return self._make_redis(pool=False)

    def _make_redis(self, *, pool: bool) -> Any:
        from eco2.core.embedded import MEMORY_URL

        url = self.settings.redis_url.get()
        if url.startswith(MEMORY_URL):
            from eco2.core.embedded import async_redis_client

            return async_redis_client(url)
        import redis.asyncio as aioredis

        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 30,  # above any XREAD block
            "socket_connect_timeout": 3,
            "health_check_interval": 30,
            "client_name": self.client_name,
        }
        if not pool:
            return aioredis.Redis.from_url(url, single_connection_client=True, **options)
        # a blocking pool: past the limit a caller waits (backpressure) instead of opening more
        connections = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=self.max_connections, timeout=20, **options
        )
        return aioredis.Redis(connection_pool=connections)

    def revocation_view(self) -> RevocationView | None:
        """This process's view of the revocation keys (`eco2.core.security.RevocationView`, as the
        synchronous runtime keeps), over a synchronous client of its own: the view's feed and
        reloads run in its thread, never on the event loop, and a check reads the copy after a
        `poll` of the feed's socket (no await, no round trip). Without it each stream's open and
        each keepalive's session check cost an MGET. None where there is no view: the embedded
        Redis of `eco2 dev`, `ECO2_REVOCATION_VIEW=off`, a function that does not use Redis."""
        if self._view_client is None:
            from eco2.core.embedded import MEMORY_URL

            url = self.settings.redis_url.get()
            if "redis" not in self.uses or url.startswith(MEMORY_URL):
                self._view_client = False
            else:
                import redis

                pool = redis.BlockingConnectionPool.from_url(  # the view's reloads: one connection at a time
                    url,
                    max_connections=1,
                    timeout=20,
                    decode_responses=True,
                    socket_timeout=30,
                    socket_connect_timeout=3,
                    client_name=f"{self.client_name}:revocations",
                )
                self._view_client = redis.Redis(connection_pool=pool)
        if self._view_client is False:
            return None
        from eco2.core.security import revocation_view

        return revocation_view(self._view_client)

    def pool_connections(self) -> int:
        """Connections the pool holds open now."""
        pool = getattr(self._redis, "connection_pool", None)
        return len(getattr(pool, "_available_connections", ()) or ()) + len(
            getattr(pool, "_in_use_connections", ()) or ()
        )

    def check(self) -> dict[str, str]:
        """Readiness from outside the serving loop (the `eco2 dev` gateway): a short sync ping."""
        results: dict[str, str] = {}
        for use in sorted(self.uses):
            try:
                if use == "redis":
                    self._sync_ping()
                results[use] = "ok"
            except Exception as exc:  # readiness reports, it never raises
                results[use] = f"error: {type(exc).__name__}"
        return results

    def _sync_ping(self) -> None:
        from eco2.core.embedded import MEMORY_URL

        url = self.settings.redis_url.get()
        if url.startswith(MEMORY_URL):
            return
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    async def acheck(self) -> dict[str, str]:
        results: dict[str, str] = {}
        for use in sorted(self.uses):
            try:
                if use == "redis":
                    await asyncio.wait_for(self.redis.ping(), 3)
                results[use] = "ok"
            except Exception as exc:  # readiness reports, it never raises
                results[use] = f"error: {type(exc).__name__}"
                log.warning("readiness check failed", extra={"client": use, "error": type(exc).__name__})
        return results

    async def aclose(self) -> None:
        view_client, self._view_client = self._view_client, None
        if view_client:
            from eco2.core.security import release_view

            await asyncio.to_thread(release_view, view_client)  # joins the view's thread
            view_client.close()
            view_client.connection_pool.disconnect()
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()
            pool = getattr(client, "connection_pool", None)
            if pool is not None:  # a pool handed to the client is not closed by the client
                await pool.disconnect()


class AsyncContext:
    """What an async handler receives: the caller, the clients, the function's config and a
    per-process `state` dict (for objects shared by every request, built on first use)."""

    def __init__(
        self, runtime: AsyncRuntime, request: Request, request_id: str, claims: TokenClaims | None, token: str | None
    ) -> None:
        self.runtime = runtime
        self.function = runtime.function.name
        self.settings = runtime.settings
        self.config = runtime.config
        self.clients = runtime.clients
        self.state = runtime.state
        self.request = request
        self.request_id = request_id
        self.claims = claims
        self.token = token

    @property
    def user_id(self) -> str:
        if self.claims is None:
            raise errors.Unauthorized()
        return self.claims.sub

    @property
    def redis(self) -> Any:
        return self.clients.redis

    async def check_session(self) -> None:
        """Re-verify the caller's token now: expired (401) or revoked (403) raise."""
        if self.token is None:
            raise errors.Unauthorized()
        self.claims = await self.runtime.verify(self.token)


class AsyncRuntime:
    def __init__(self, function: Function, settings: Settings, config: Any = None, max_connections: int = 20) -> None:
        self.function = function
        self.settings = settings
        self.config = config
        self.clients = AsyncClients(settings, function.uses, max_connections)
        self.metrics = Metrics(function.name)
        self.state: dict[str, Any] = {}
        self._origins = frozenset(settings.allowed_origins)
        self._openapi: bytes | None = None
        self._started = False
        self._watching = False
        self.closers: list[Callable[[], None]] = []
        self.stopping: list[Callable[[], None]] = []  # called in the loop when SIGTERM arrives

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to connect before the loop runs; clients open on first use inside it."""
        if not self._started:
            self._started = True
            log.info("function ready")

    def close(self) -> None:
        """At process exit (gunicorn's worker_exit): the loop is gone, the sockets close with it."""
        self._started = False
        closers, self.closers = self.closers, []
        for closer in closers:
            closer()

    async def aclose(self) -> None:
        for value in list(self.state.values()):
            closer = getattr(value, "aclose", None)
            if closer is not None:
                await closer()
        self.state.clear()
        await self.clients.aclose()

    # -- the target -----------------------------------------------------------------------------
    def _watch_sigterm(self) -> None:
        """Once, inside the serving loop: on SIGTERM call the `stopping` callbacks first (open
        streams end now, so their browsers reconnect to another pod), then the server's own handler
        (uvicorn stops accepting and drains). Only where the loop runs in the main thread."""
        self._watching = True
        if threading.current_thread() is not threading.main_thread():
            return
        import signal

        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(self.stop)
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def stop(self) -> None:
        """In the serving loop: run the `stopping` callbacks (e.g. end every open stream)."""
        log.info("stopping: ending open streams")
        for callback in list(self.stopping):
            try:
                callback()
            except Exception:
                log.exception("a stop callback failed")

    async def handle(self, request: Request) -> Response:
        if not self._watching:
            self._watch_sigterm()
        started = time.perf_counter()
        request_id = self._request_id(request)
        # each request runs in its own task: these stay set for the whole response, stream included
        request_id_var.set(request_id)
        function_var.set(self.function.name)
        label = ["unmatched"]
        try:
            response = await self._dispatch(request, request_id, label)
        except Exception as exc:
            response = error_response(exc)
        response.headers["X-Request-ID"] = request_id
        self._cors(request, response)
        took = time.perf_counter() - started
        if label[0] not in _QUIET:
            self.metrics.observe(label[0], request.method, str(response.status_code), took)
            access(log, request.method, label[0], response.status_code, took)
        return response

    @staticmethod
    def _request_id(request: Request) -> str:
        given = request.headers.get("X-Request-ID", "")
        if 8 <= len(given) <= 64 and set(given) <= _REQUEST_ID_OK:
            return given
        return uuid.uuid4().hex

    async def _dispatch(self, request: Request, request_id: str, label: list[str]) -> Response:
        path = request.url.path
        method = request.method
        if method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            label[0] = "preflight"
            return self._preflight(request)
        if path.startswith("/health/") or path in ("/metrics", "/openapi.json"):
            builtin = await self._builtin(method, path)
            if builtin is not None:
                label[0] = path
                return builtin
        raw = str(request.scope.get("raw_path", b"").decode("latin-1") or path).lower()
        if "//" in raw or "%2f" in raw or "%5c" in raw:
            raise errors.NotFound("No route for this path; paths are matched exactly as written.")
        route, params = self.function.resolve(method, path)
        label[0] = route.path
        claims = token = None
        if route.auth:
            token = request.cookies.get(ACCESS_COOKIE) or bearer(request.headers.get("Authorization"))
            if not token:
                raise errors.Unauthorized()
            claims = await self.verify(token)
        ctx = AsyncContext(self, request, request_id, claims, token)
        handler: Callable[..., Awaitable[Response]] = route.handler
        response = await handler(ctx, **params)
        if claims is not None and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    async def verify(self, token: str) -> TokenClaims:
        claims = self.clients.tokens.verify(token, "access")
        view = self.clients.revocation_view()
        if view is not None and view.current():
            from eco2.core import security

            security.ensure_not_revoked(view, claims)  # type: ignore[arg-type]  # the view stands in for MGET
        else:
            await ensure_not_revoked(self.clients.redis, claims)
        return claims

    async def _builtin(self, method: str, path: str) -> Response | None:
        from starlette.responses import Response

        if method not in ("GET", "HEAD"):
            return None
        if path == "/health/liveness":
            return json_response({"status": "ok", "function": self.function.name})
        if path == "/health/readiness":
            checks = await self.clients.acheck()
            ready = all(v == "ok" for v in checks.values())
            body = {"status": "ok" if ready else "unavailable", "function": self.function.name, "checks": checks}
            return json_response(body, 200 if ready else 503)
        if path == "/metrics":
            from eco2.core.metrics import CONTENT_TYPE

            return Response(self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})
        if path == "/openapi.json":
            if self._openapi is None:
                from eco2.core.openapi import document

                self._openapi = json.dumps(document([self.function]), ensure_ascii=False).encode()
            return Response(self._openapi, media_type="application/json")
        return None

    # -- CORS (as eco2.core.runtime.Runtime) ---------------------------------------------------------
    def _preflight(self, request: Request) -> Response:
        from starlette.responses import Response

        from eco2.core import cors

        response = Response(status_code=204)
        response.headers.update(cors.preflight_headers(self._origins, request.headers.get("Origin")))
        return response

    def _cors(self, request: Request, response: Response) -> None:
        from eco2.core import cors

        response.headers.update(cors.response_headers(self._origins, request.headers.get("Origin")))
        response.headers.append("Vary", "Origin")


def target(ref: str) -> Callable[[Request], Awaitable[Response]]:
    """The functions-framework ASGI target of an async function (see the module docstring)."""
    import functions_framework.aio

    from eco2.serving.entry import configure

    function, settings, config = configure(ref)
    runtime = AsyncRuntime(function, settings, config, getattr(config, "redis_pool_size", 20))

    async def handle(request: Request) -> Response:
        return await runtime.handle(request)

    handle.runtime = runtime  # type: ignore[attr-defined]
    decorated: Callable[[Request], Awaitable[Response]] = functions_framework.aio.http(handle)  # type: ignore[assignment]
    decorated.runtime = runtime  # type: ignore[attr-defined]
    return decorated


# -- a loopback server: `eco2 dev` and the tests serve an ASGI function on 127.0.0.1 ----------------


class LoopbackServer:
    """uvicorn on 127.0.0.1:<free port> in a thread of its own (one event loop), until stop()."""

    def __init__(self, app: Any, runtime: AsyncRuntime | None = None) -> None:
        import uvicorn

        self.runtime = runtime
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2, backlog=4096
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="eco2-asgi-loopback", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback ASGI server did not start")
            time.sleep(0.01)

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            try:
                await self.server.serve(sockets=[self._socket])
            finally:
                if self.runtime is not None:
                    await self.runtime.aclose()

        asyncio.run(serve())

    def stop(self) -> None:
        if self.loop is not None and self.runtime is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.runtime.stop)  # open streams end first, cleanly
        self.server.should_exit = True
        self._thread.join(10)


class StreamProxy:
    """A WSGI app forwarding every request to a loopback ASGI server and streaming the answer back
    chunk by chunk (Server-Sent Events pass through as they are written). `eco2 dev`'s gateway is
    WSGI; this is how it serves an async function."""

    _HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        import http.client

        headers = {
            key[5:].replace("_", "-").title(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = str(environ[key])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
        if "?" not in path and environ.get("QUERY_STRING"):
            path += "?" + str(environ["QUERY_STRING"])
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=None)
        try:
            conn.request(str(environ.get("REQUEST_METHOD", "GET")), path, body=body, headers=headers)
            upstream = conn.getresponse()
        except OSError:
            conn.close()
            payload = json.dumps(errors.ServiceUnavailable().body()).encode()
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return iter([payload])
        start_response(
            f"{upstream.status} {upstream.reason}",
            [(k, v) for k, v in upstream.getheaders() if k.lower() not in self._HOP],
        )
        return self._relay(conn, upstream)

    @staticmethod
    def _relay(conn: Any, upstream: Any) -> Iterator[bytes]:
        import http.client

        try:
            while True:
                chunk = upstream.read1(65536)
                if not chunk:
                    return
                yield chunk
        except (OSError, http.client.HTTPException):  # the upstream stopped (eco2 dev is exiting)
            return
        finally:  # the browser went away (the WSGI server closed this generator): so does the upstream
            conn.close()


def path_pattern(template: str) -> re.Pattern[str]:
    """`/api/v1/scan/{job_id}/events` -> a pattern matching one segment per parameter."""
    return re.compile(re.sub(r"\\\{[a-z_][a-z0-9_]*\\\}", "[^/]+", re.escape(template)))


def loopback(app: Any, runtime: AsyncRuntime) -> StreamProxy:
    """Serve an ASGI function on a loopback port and return the WSGI app that forwards to it
    (stopped by `runtime.close()`): how `eco2 dev`'s WSGI gateway serves an async function."""
    server = LoopbackServer(app, runtime)
    runtime.closers.append(server.stop)
    return StreamProxy(server)
