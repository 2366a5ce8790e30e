"""`eco2 dev`: every function on one port, behind a gateway that routes like the ALB + ingress.

With no service URLs configured it runs on embedded defaults (a SQLite file under .eco2/, an
in-process Redis), so the app works with one command; with DATABASE_URL / REDIS_URL set it uses
the real servers. Each function is loaded through functions-framework exactly as `eco2 run` does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eco2.core import funcyaml
from eco2.core.embedded import MEMORY_URL
from eco2.core.settings import mask_url

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from eco2.core.function import DevMount
    from eco2.core.runtime import Runtime

log = logging.getLogger("eco2.tooling.dev")
DEFAULT_ORIGINS = "http://127.0.0.1:5173,http://localhost:5173,http://127.0.0.1:3000,http://localhost:3000"


def dev_env(root: Path, host: str, port: int, environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(environment for the functions, {backend: description}) with embedded defaults filled in."""
    env = dict(environ)
    backends: dict[str, str] = {}
    env.setdefault("ECO2_ENV", "development")
    data = Path(env.get("ECO2_DEV_DATA") or root / ".eco2")
    data.mkdir(parents=True, exist_ok=True)
    backends["data"] = f"{data} (ECO2_DEV_DATA)"
    if not env.get("JWT_SECRET"):
        env["JWT_SECRET"] = dev_secret(data)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{data / 'dev.db'}"
        backends["database"] = f"embedded SQLite ({data / 'dev.db'})"
    else:
        backends["database"] = mask_url(env["DATABASE_URL"])
    if not env.get("RABBITMQ_URL") and not env.get("K_SINK"):
        env["RABBITMQ_URL"] = MEMORY_URL
        backends["broker"] = "embedded in-process broker (Knative Trigger semantics; nothing kept on exit)"
    elif env.get("RABBITMQ_URL"):
        backends["broker"] = f"local broker on RabbitMQ {mask_url(env['RABBITMQ_URL'])}"
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = MEMORY_URL
        backends["redis"] = "embedded in-process Redis (fakeredis; nothing kept on exit)"
    else:
        backends["redis"] = mask_url(env["REDIS_URL"])
    if not env.get("S3_ENDPOINT_URL"):
        endpoint = embedded_s3(env.setdefault("S3_BUCKET", "eco2-images"), env.get("ALLOWED_ORIGINS", DEFAULT_ORIGINS))
        if endpoint:
            env["S3_ENDPOINT_URL"] = endpoint
            env.setdefault("AWS_ACCESS_KEY_ID", "eco2-dev")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "eco2-dev")
            env.setdefault("AWS_REGION", "us-east-1")
            backends["s3"] = (
                f"embedded S3 (moto) at {endpoint}, bucket {env['S3_BUCKET']}"
                " (loopback only, no credential checks: for this machine; nothing kept on exit)"
            )
        else:
            backends["s3"] = "none: set S3_ENDPOINT_URL, or pip install -e '.[app]' for an embedded one (moto's S3)"
    else:
        backends["s3"] = f"{env['S3_ENDPOINT_URL']} bucket {env.get('S3_BUCKET', 'eco2-images')}"
    if env.get("OPENAI_API_KEY"):
        backends["llm"] = f"OpenAI API at {env.get('OPENAI_BASE_URL') or 'the default endpoint'}"
    else:
        backends["llm"] = "none: scans use the offline classifier (it says so in every result)"
    env.setdefault("ALLOWED_ORIGINS", DEFAULT_ORIGINS)
    backends["origins"] = f"{env['ALLOWED_ORIGINS']} (ALLOWED_ORIGINS: the web app's origins)"
    env.setdefault("COOKIE_SECURE", "false")
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    env.setdefault("ECO2_PUBLIC_URL", base_url)
    if env["ECO2_ENV"] == "development":
        env.setdefault("DEV_LOGIN_ENABLED", "true")
    for mount in dev_mounts(root):
        for key, value in mount.defaults(base_url, env).items():
            env.setdefault(key, value)
    return env, backends


def dev_secret(data: Path) -> str:
    """The token signing secret of this development data directory: random, made once, kept
    there (so a restart keeps the sessions), readable by its owner only. Never a constant."""
    import secrets

    path = data / "jwt-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def embedded_s3(bucket: str, origins: str = DEFAULT_ORIGINS) -> str | None:
    """An in-process S3-compatible server (moto's S3, the `app` extra) with the bucket created.

    For one's own machine only: it listens on 127.0.0.1, browsers may PUT/GET only from the
    web app's origins (CORS), and like every moto server it checks no credentials (anyone who can
    reach the loopback port can write). Real deployments use S3, where uploads need a presigned URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    import socket

    import boto3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="eco2-dev",
        aws_secret_access_key="eco2-dev",
    )
    client.create_bucket(Bucket=bucket)
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedMethods": ["PUT", "GET"],
                    "AllowedOrigins": [o.strip() for o in origins.split(",") if o.strip()],
                    "AllowedHeaders": ["*"],
                }
            ]
        },
    )
    # as the CDN does in production: confirmed images are served (the app's cdn_url is this bucket),
    # unconfirmed uploads under pending/ never are
    client.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    },
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/pending/*",
                    },
                ],
            }
        ),
    )
    return endpoint


@dataclass
class Gateway:
    """Routes `/api/v1/<domain>` to the function that owns the prefix, like the VirtualServices do.

    It is the public side only: every request it forwards is marked as coming from the public
    ingress (as the VirtualServices mark theirs), so no function dispatches it as an event.
    Events reach the functions through `EventIngress`, on a loopback port of its own."""

    routes: list[tuple[str, str, WSGIApplication]]
    runtimes: dict[str, Runtime]
    extra: dict[str, WSGIApplication] = field(default_factory=dict)
    apps: dict[str, WSGIApplication] = field(default_factory=dict)
    origins: frozenset[str] = frozenset()
    broker: Any = None
    # exact paths inside another function's prefix (func.yaml `routes`), matched before every prefix
    paths: list[tuple[str, str, WSGIApplication]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # what each development stand-in is

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).split("?", 1)[0].lower()
        if "//" in raw or "%2f" in raw or "%5c" in raw:
            return self._json(
                environ, start_response, 404, {"detail": "No function serves this path.", "code": "NOT_FOUND"}
            )
        environ = {**environ, PUBLIC_MARK: "public"}
        for template, _name, app in self.paths:
            from eco2.serving.aio import path_pattern

            if path_pattern(template).fullmatch(path):
                return app(environ, start_response)
        for prefix, _name, app in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return app(environ, start_response)
        for prefix, app in self.extra.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app(environ, start_response)
        if path in ("/health/liveness", "/health/readiness"):
            checks = {name: rt.clients.check() for name, rt in self.runtimes.items()}
            ready = path.endswith("liveness") or all(v == "ok" for c in checks.values() for v in c.values())
            body = {"status": "ok" if ready else "unavailable", "functions": checks}
            return self._json(environ, start_response, 200 if ready else 503, body)
        if path == "/openapi.json":
            from eco2.core.openapi import document

            return self._json(environ, start_response, 200, document([rt.function for rt in self.runtimes.values()]))
        return self._json(environ, start_response, 404, {"detail": f"No function serves {path}.", "code": "NOT_FOUND"})

    def _json(self, environ: WSGIEnvironment, start_response: StartResponse, status: int, body: Any) -> list[bytes]:
        """The gateway's own answers carry the same CORS headers as the functions' answers, so a
        browser shows the 404 rather than a CORS error."""
        payload = json.dumps(body, ensure_ascii=False).encode()
        reason = {200: "OK", 204: "No Content", 404: "Not Found", 503: "Service Unavailable"}[status]
        from eco2.core import cors

        origin = environ.get("HTTP_ORIGIN", "")
        allowed = list(cors.response_headers(self.origins, origin).items())
        if allowed and environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            start_response(
                "204 No Content", [("Vary", "Origin"), *allowed, *cors.preflight_headers(self.origins, origin).items()]
            )
            return []
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Vary", "Origin"),
            *allowed,
        ]
        start_response(f"{status} {reason}", headers)
        return [payload]


PUBLIC_MARK = "HTTP_X_ECO2_INGRESS"  # the WSGI name of eco2.core.runtime.PUBLIC_INGRESS_HEADER


@dataclass
class EventIngress:
    """The private event path of `eco2 dev`: `/_functions/<name>/` -> that function's `POST /`,
    like a Trigger's subscriber ref. Served on its own loopback port, never by the public gateway."""

    apps: dict[str, WSGIApplication]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        name, _, rest = path.removeprefix("/_functions/").partition("/")
        app = self.apps.get(name) if path.startswith("/_functions/") else None
        if app is None:
            payload = json.dumps({"detail": f"No function {name!r} takes events here.", "code": "NOT_FOUND"}).encode()
            start_response(
                "404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            )
            return [payload]
        return app({**environ, "PATH_INFO": "/" + rest}, start_response)


def dev_mounts(root: Path, only: Iterable[str] | None = None) -> list[DevMount]:
    """The development stand-ins the functions declare (`Function.dev_mount`), imported, not built."""
    from eco2.serving.entry import import_function

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    project = funcyaml.load(root / "func.yaml")
    wanted = set(only) if only else None
    mounts: list[DevMount] = []
    for spec in project.functions.values():
        if wanted is None or spec.name in wanted:
            mounts.extend(import_function(spec.module).dev_mounts)
    return mounts


def build(root: Path, env: Mapping[str, str], only: Iterable[str] | None = None) -> Gateway:
    from eco2.serving.server import container_env, create_app
    from eco2.tooling.migrate import upgrade

    project = funcyaml.load(root / "func.yaml")
    upgrade(env["DATABASE_URL"])
    routes: list[tuple[str, str, WSGIApplication]] = []
    paths: list[tuple[str, str, WSGIApplication]] = []
    runtimes: dict[str, Runtime] = {}
    apps: dict[str, WSGIApplication] = {}
    wanted = set(only) if only else None
    for spec in project.functions.values():
        if wanted is not None and spec.name not in wanted:
            continue
        app, runtime = create_app(spec, root, container_env(spec, env))
        runtime.start()
        from eco2.serving.server import is_asgi

        if is_asgi(app):  # an async function: on a loopback port (one event loop), streamed through
            from eco2.serving.aio import loopback

            app = loopback(app, runtime)  # type: ignore[arg-type,assignment]
        paths.extend((template, spec.name, app) for template in spec.routes)
        runtimes[spec.name] = runtime
        apps[spec.name] = app
        for prefix in spec.ingress:
            routes.append((prefix, spec.name, app))
    routes.sort(key=lambda r: -len(r[0]))
    extra: dict[str, WSGIApplication] = {}
    notes: dict[str, str] = {}
    for mount in dev_mounts(root, only):
        mounted = mount.factory(env)
        if mounted is not None:
            extra[mount.prefix] = mounted
            notes[mount.prefix] = mount.note
    origins = frozenset(o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
    return Gateway(routes, runtimes, extra, apps, origins, paths=paths, notes=notes)


def run(root: Path, host: str, port: int, out: Callable[[str], None] = print) -> None:
    import threading

    from werkzeug.serving import make_server

    env, backends = dev_env(root, host, port, os.environ)
    # the port first: when it is taken, say so before starting anything
    try:
        server = make_server(host, port, _starting, threaded=True)
    except OSError as exc:
        raise DevError(f"port {port} on {host} is not free ({exc.strerror}); pick another with --port") from None
    os.environ.update(env)
    gateway = build(root, env)
    server.app = gateway
    from eco2.core import logs

    # lines outside a request (gateway, broker) say "eco2-dev"; each request's lines name their function
    logs.configure("eco2-dev", env.get("LOG_LEVEL", "INFO"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the runtime logs every request already
    events = make_server("127.0.0.1", 0, EventIngress(gateway.apps), threaded=True)
    threading.Thread(target=events.serve_forever, name="eco2-dev-events", daemon=True).start()
    from eventing.local import make_broker

    event_url = f"http://127.0.0.1:{events.server_port}"
    gateway.broker = make_broker(funcyaml.load(root / "func.yaml"), env, gateway=event_url)
    server_url = f"http://{host}:{server.server_port}"
    out(f"eco2 dev: listening on {server_url}")
    for name, description in backends.items():
        out(f"  {name:<9} {description}")
    out(f"  {'events':<9} delivered on {event_url}/_functions/<name>/ (loopback only; never via the gateway)")
    for prefix in sorted(gateway.extra):
        out(f"  {'stand-in':<9} {server_url}{prefix} ({gateway.notes.get(prefix, 'development only')})")
    for prefix, name, _ in sorted(gateway.routes) + sorted(gateway.paths):
        out(f"  {prefix:<22} -> {name}")
    sys.stdout.flush()

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    import gc

    from eco2.serving.server import GC_THRESHOLD

    gc.set_threshold(*GC_THRESHOLD)  # as a function's container does once it is ready
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        events.shutdown()
        events.server_close()
        gateway.broker.stop()
        for runtime in gateway.runtimes.values():
            runtime.close()


class DevError(RuntimeError):
    """`eco2 dev` cannot start; the message says why and what to do."""


def _starting(_environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "1")])
    return [b'{"detail": "eco2 dev is starting.", "code": "SERVICE_UNAVAILABLE"}']
