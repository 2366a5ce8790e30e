"""Loading a function as functions-framework does, and serving it as its container would."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from eco2.core.funcyaml import FunctionSpec
    from eco2.core.runtime import Runtime

_env_lock = threading.Lock()

# The collector's thresholds once a worker is ready: the first raised from CPython's 700 to 10,000.
# A function holds many long-lived objects (a streams process: every open stream's task, queue and
# buffers), and at 700 young objects per collection the older generations were collected so often
# that a full collection stopped the process for up to 79 ms (streams, 1,000 streams at 5 tokens/s:
# 24 full and 236 middle collections in 30 s, 2.2 s in all). At 10,000 the same run had one full
# collection of 1 ms; p99 added latency 82 -> 17 ms, CPU 60 -> 57 % of a core, RSS unchanged
# (tests/benchmarks/bench_streams.py; tests/benchmarks/README.md, sixth pass). Cyclic garbage waits
# for at most 10,000 new objects before it is found.
GC_THRESHOLD = (10_000, 10, 10)


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Apply `env` to os.environ for the duration (settings are read from the environment once)."""
    with _env_lock:
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def container_env(spec: FunctionSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the function's container would get: func.yaml literals, `{{ env:VAR }}`
    resolved from `environ`; secrets and config maps only exist in the cluster, so locally their
    variables come from `environ`. The caller's environment wins over func.yaml literals."""
    from eco2.core.funcyaml import TEMPLATE_RE

    out: dict[str, str] = {}
    for name, value in spec.env.items():
        found = TEMPLATE_RE.fullmatch(value.strip())
        if found is None:
            out[name] = value
        elif found.group(1) == "env" and found.group(2).strip() in environ:
            out[name] = environ[found.group(2).strip()]
    out.update({k: v for k, v in environ.items() if k in spec.env or k not in out})
    out["K_SERVICE"] = spec.name
    return out


def create_app(spec: FunctionSpec, root: Path, env: Mapping[str, str] | None = None) -> tuple[Flask, Runtime]:
    """functions-framework's own `create_app` on the function's main.py, and its runtime."""
    return load_source(root / spec.main_path, root, env)


def load_source(source: Path, root: Path, env: Mapping[str, str] | None = None) -> tuple[Flask, Runtime]:
    import functions_framework

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from functions_framework import _function_registry

    # functions-framework remembers ASGI targets by name, process-wide: each main.py decides for itself
    _function_registry.ASGI_FUNCTIONS.discard("handle")
    with patched_environ(env or {}):
        app = functions_framework.create_app(target="handle", source=str(source), signature_type="http")  # type: ignore[no-untyped-call]
        module = sys.modules[source.stem]
    runtime: Runtime = module.handle.runtime
    if is_asgi(app):  # an async function (eco2.serving.aio): functions-framework built a Starlette app
        return app, runtime
    app.config["MAX_CONTENT_LENGTH"] = None  # bounded below, before anything reads the body
    app.wsgi_app = BodyLimit(Direct(runtime), runtime.body_cap())
    return app, runtime


class Direct:
    """The function's whole WSGI app: every request straight to `Runtime.handle`.

    The Flask app functions-framework builds routes every path and method to the one target, and
    the runtime routes again (its own routes, errors, request ids, CORS); Flask's request context,
    URL matching, session and response finalising cost about twice the runtime's own work per
    request (tests/benchmarks/bench_framework.py, the no-I/O route). So the container command
    (`eco2.serving.server`) and `eco2 dev` answer through this, with functions-framework still
    loading the function and providing the server; a plain `functions-framework --target handle`
    serves the same target through Flask, unchanged."""

    def __init__(self, runtime: Runtime) -> None:
        from flask import Request

        self.runtime = runtime
        self.request_class = Request

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = self.request_class(environ)
        try:
            response = self.runtime.handle(request)
            if not response.is_streamed and has_body(environ):
                request.get_data()  # read what the handler left unread (as functions-framework does)
        except Exception as exc:  # handle() answers its own errors; this is the last resort
            from eco2.core.runtime import error_response

            response = error_response(exc)
        return response(environ, start_response)


def has_body(environ: dict[str, Any]) -> bool:
    """Does the request carry a body (a length above 0, or chunked)? A GET without either has
    none to bound or read: wrapping and draining its empty input cost about 5% of the no-I/O
    route's in-process work (tests/benchmarks/bench_framework.py)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        return length != "0"
    return "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()


def is_asgi(app: Any) -> bool:
    """True for the Starlette app functions-framework builds for an `eco2.serving.aio` target
    (checked here, so a WSGI function never imports the async runtime)."""
    return not hasattr(app, "wsgi_app")


class BodyLimit:
    """Refuse a body larger than any route of the function accepts before Flask (or
    functions-framework, which drains every body after the request) reads it: a 413 in the
    error shape rather than an HTML page, and a chunked body cut off at the cap."""

    def __init__(self, app: Any, cap: int) -> None:
        self.app = app
        self.cap = cap

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > self.cap:
            import json

            body = json.dumps({"detail": f"The body is larger than {self.cap} bytes.", "code": "PAYLOAD_TOO_LARGE"})
            start_response(
                "413 Request Entity Too Large",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
            )
            return [body.encode()]
        if not length and environ.get("wsgi.input_terminated") and has_body(environ):
            from werkzeug.wsgi import LimitedStream

            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], self.cap + 1, is_max=True)
        return self.app(environ, start_response)


def gunicorn_options(runtime: Runtime) -> dict[str, Any]:
    """gunicorn's settings and hooks for one function: its workers and threads, clients built
    after the fork, closed when a worker exits.

    The collector stays off while the process starts (main() turns it off before the function's
    first import): a start allocates hundreds of thousands of long-lived objects, and each
    collection on the way walked all of them again, in the worker also copying the pages the
    arbiter shares with it. The worker turns it back on once its clients are built, with
    everything built so far frozen out of its way (gc.freeze, as the gc docs advise for a
    forking server), and at GC_THRESHOLD. tests/benchmarks/bench_framework.py (cold start):
    scan-worker's readiness 305 -> 224 ms, users' first authenticated 200 534 -> 388 ms."""
    settings = runtime.settings

    def pre_fork(_server: Any, _worker: Any) -> None:  # in the arbiter, before each fork
        gc.freeze()
        gc.enable()

    def post_fork(_server: Any, _worker: Any) -> None:  # in the new worker
        gc.disable()

    def post_worker_init(_worker: Any) -> None:
        runtime.start()  # freezes what it built
        gc.set_threshold(*GC_THRESHOLD)
        gc.enable()

    def worker_exit(_server: Any, _worker: Any) -> None:
        runtime.close()

    return {
        "workers": settings.workers,
        "threads": settings.threads,
        "graceful_timeout": settings.shutdown_grace_seconds,
        "timeout": 0,
        "keepalive": 75,
        "pre_fork": pre_fork,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }


def serve(source: Path, root: Path, host: str, port: int) -> None:
    """Run one function exactly as its container does: gunicorn, clients built after fork,
    SIGTERM drains in-flight requests (graceful timeout) then closes the clients."""
    from functions_framework._http import create_server

    app, runtime = load_source(source, root)
    options = gunicorn_options(runtime)
    create_server(app, False, **options).run(host, port)  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> None:
    """The container's command: `python -m eco2.serving.server functions/<name>/main.py`.

    Knative sets the environment (from the rendered Service) and $PORT; nothing reads func.yaml here.
    """
    gc.disable()  # until the worker is ready (serve)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m eco2.serving.server functions/<name>/main.py")
    source = Path(args[0]).resolve()
    root = Path(os.environ.get("ECO2_ROOT", Path.cwd())).resolve()
    serve(source, root, os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080")))


if __name__ == "__main__":
    main()
