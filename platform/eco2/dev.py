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

from eco2 import funcyaml
from eco2.embedded import MEMORY_URL
from eco2.settings import mask_url

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from eco2.function import DevMount
    from eco2.runtime import Runtime

log = logging.getLogger("eco2.dev")
DEFAULT_ORIGINS = "http://127.0.0.1:5173,http://localhost:5173,http://127.0.0.1:3000,http://localhost:3000"


def dev_env(root: Path, host: str, port: int, environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(environment for the functions, {backend: description}) with embedded defaults filled in."""
    env = dict(environ)
    backends: dict[str, str] = {}
    env.setdefault("ECO2_ENV", "development")
    if not env.get("DATABASE_URL"):
        data = Path(env.get("ECO2_DEV_DATA") or root / ".eco2")
        data.mkdir(parents=True, exist_ok=True)
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
        endpoint = embedded_s3(env.setdefault("S3_BUCKET", "eco2-images"))
        if endpoint:
            env["S3_ENDPOINT_URL"] = endpoint
            env.setdefault("AWS_ACCESS_KEY_ID", "eco2-dev")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "eco2-dev")
            env.setdefault("AWS_REGION", "us-east-1")
            backends["s3"] = f"embedded S3 (moto) at {endpoint}, bucket {env['S3_BUCKET']} (nothing kept on exit)"
        else:
            backends["s3"] = "none: set S3_ENDPOINT_URL, or install moto[server] for an embedded one"
    else:
        backends["s3"] = f"{env['S3_ENDPOINT_URL']} bucket {env.get('S3_BUCKET', 'eco2-images')}"
    if env.get("OPENAI_API_KEY"):
        backends["llm"] = f"OpenAI API at {env.get('OPENAI_BASE_URL') or 'the default endpoint'}"
    else:
        backends["llm"] = "none: scans use the offline classifier (it says so in every result)"
    env.setdefault("ALLOWED_ORIGINS", DEFAULT_ORIGINS)
    env.setdefault("COOKIE_SECURE", "false")
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    env.setdefault("ECO2_PUBLIC_URL", base_url)
    if env["ECO2_ENV"] == "development":
        env.setdefault("DEV_LOGIN_ENABLED", "true")
    for mount in dev_mounts(root):
        if mount.env is not None:
            for key, value in mount.env(base_url).items():
                env.setdefault(key, value)
    if _dev_login(env):
        from functions.auth.devprovider import dev_provider_env

        for key, value in dev_provider_env(base_url).items():
            env.setdefault(key, value)
        backends["oauth"] = f"development sign-in at {base_url}/dev/oauth (no Kakao/Google/Naver account needed)"
    return env, backends


def _dev_login(env: Mapping[str, str]) -> bool:
    """The development sign-in, decided exactly as the auth function's settings decide it."""
    from eco2.settings import Settings, SettingsError
    from functions.auth.devprovider import dev_provider_allowed

    try:
        return dev_provider_allowed(Settings.from_env(env))
    except SettingsError:
        return False  # the functions refuse to start with these settings and say why


def embedded_s3(bucket: str) -> str | None:
    """An in-process S3-compatible server (moto, a dev dependency) with the bucket created."""
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
            "CORSRules": [{"AllowedMethods": ["PUT", "GET"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}]
        },
    )
    return endpoint


@dataclass
class Gateway:
    """Routes `/api/v1/<domain>` to the function that owns the prefix, like the VirtualServices do."""

    routes: list[tuple[str, str, WSGIApplication]]
    runtimes: dict[str, Runtime]
    extra: dict[str, WSGIApplication] = field(default_factory=dict)
    apps: dict[str, WSGIApplication] = field(default_factory=dict)
    broker: Any = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_functions/"):
            # the local broker's deliveries: straight to one function, like a Trigger's subscriber ref
            name, _, rest = path[len("/_functions/") :].partition("/")
            app = self.apps.get(name)
            if app is not None:
                environ = {**environ, "PATH_INFO": "/" + rest}
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
            return _json(
                start_response, 200 if ready else 503, {"status": "ok" if ready else "unavailable", "functions": checks}
            )
        if path == "/openapi.json":
            from eco2.openapi import document

            return _json(start_response, 200, document([rt.function for rt in self.runtimes.values()]))
        return _json(start_response, 404, {"detail": f"No function serves {path}.", "code": "NOT_FOUND"})


def _json(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    payload = json.dumps(body, ensure_ascii=False).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def dev_mounts(root: Path, only: Iterable[str] | None = None) -> list[DevMount]:
    """The development stand-ins the functions declare (`Function.dev_mount`), imported, not built."""
    from eco2.entry import import_function

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
    from eco2.migrate import upgrade
    from eco2.server import container_env, create_app

    project = funcyaml.load(root / "func.yaml")
    upgrade(env["DATABASE_URL"])
    routes: list[tuple[str, str, WSGIApplication]] = []
    runtimes: dict[str, Runtime] = {}
    apps: dict[str, WSGIApplication] = {}
    wanted = set(only) if only else None
    for spec in project.functions.values():
        if wanted is not None and spec.name not in wanted:
            continue
        app, runtime = create_app(spec, root, container_env(spec, env))
        runtime.start()
        runtimes[spec.name] = runtime
        apps[spec.name] = app
        for prefix in spec.ingress:
            routes.append((prefix, spec.name, app))
    routes.sort(key=lambda r: -len(r[0]))
    extra: dict[str, WSGIApplication] = {}
    if _dev_login(env):
        from functions.auth.devprovider import make_dev_provider

        extra["/dev/oauth"] = make_dev_provider()
    for mount in dev_mounts(root, only):
        mounted = mount.factory(env)
        if mounted is not None:
            extra[mount.prefix] = mounted
    return Gateway(routes, runtimes, extra, apps)


def run(root: Path, host: str, port: int, out: Callable[[str], None] = print) -> None:
    from werkzeug.serving import make_server

    env, backends = dev_env(root, host, port, os.environ)
    os.environ.update(env)
    gateway = build(root, env)
    from eco2 import logs

    # lines outside a request (gateway, broker) say "eco2-dev"; each request's lines name their function
    logs.configure("eco2-dev", env.get("LOG_LEVEL", "INFO"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the runtime logs every request already
    server = make_server(host, port, gateway, threaded=True)
    from eventing.local import make_broker

    gateway.broker = make_broker(funcyaml.load(root / "func.yaml"), env, gateway=env["ECO2_PUBLIC_URL"])
    out(f"eco2 dev: listening on http://{host}:{server.server_port}")
    for name, description in backends.items():
        out(f"  {name:<9} {description}")
    for prefix, name, _ in sorted(gateway.routes):
        out(f"  {prefix:<22} -> {name}")
    sys.stdout.flush()

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        gateway.broker.stop()
        for runtime in gateway.runtimes.values():
            runtime.close()
