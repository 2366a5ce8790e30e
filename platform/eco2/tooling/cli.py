"""The `eco2` command line: dev, run, invoke, functions, validate, migrate, build, deploy and friends."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path

from eco2.core import funcyaml
from eco2.core.settings import SettingsError


def _project(args: argparse.Namespace) -> tuple[Path, funcyaml.FuncYaml]:
    root = funcyaml.find_root(Path(args.root) if args.root else None)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the project's function packages
    return root, funcyaml.load(root / "func.yaml")


def _services_answer() -> None:
    """`eco2 dev` with REDIS_URL / RABBITMQ_URL set: they answer before anything starts (else one line)."""
    if url := os.environ.get("REDIS_URL", ""):
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    if (url := os.environ.get("RABBITMQ_URL", "")) and url.startswith("amqp"):
        import pika

        parameters = pika.URLParameters(url)
        parameters.connection_attempts, parameters.socket_timeout = 1, 3
        pika.BlockingConnection(parameters).close()


def cmd_dev(args: argparse.Namespace) -> int:
    from eco2.tooling.dev import run

    root, _ = _project(args)
    _check_port(args.host, args.port)  # before the embedded S3 starts (werkzeug would exit on a taken port)
    _services_answer()
    run(root, args.host, args.port)
    return 0


def _check_port(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(f"port {port} on {host} is not free ({exc.strerror}); pick another with --port") from None


def cmd_run(args: argparse.Namespace) -> int:
    from eco2.serving.server import container_env, serve

    root, project = _project(args)
    spec = project.get(args.function)
    os.environ.update(container_env(spec, os.environ))
    port = args.port or int(os.environ.get("PORT", "8080"))
    _check_port(args.host, port)  # before anything starts, as `eco2 dev` does
    print(f"eco2 run: {spec.name} on http://{args.host}:{port}", file=sys.stderr, flush=True)
    serve(root / spec.main_path, root, args.host, port)
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    import requests

    _, project = _project(args)
    project.get(args.function)  # fail clearly on an unknown name
    url = args.url.rstrip("/") + (args.path if args.path.startswith("/") else "/" + args.path)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    data = args.data.encode() if args.data is not None else None
    method = args.method
    if args.event:
        method = "POST"
        attrs = {"specversion": "1.0", "id": args.id or uuid.uuid4().hex, "source": args.source, "type": args.event}
        if args.mode == "structured":
            body = {**attrs, "datacontenttype": "application/json", "data": json.loads(args.data or "{}")}
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/cloudevents+json"
        else:
            headers.update({f"ce-{k}": v for k, v in attrs.items()})
            headers["Content-Type"] = "application/json"
            data = (args.data or "{}").encode()
    elif data is not None:
        headers.setdefault("Content-Type", "application/json")
    response = requests.request(method or "GET", url, data=data, headers=headers, timeout=args.timeout)
    print(f"HTTP {response.status_code} {response.reason}")
    for key, value in response.headers.items():
        print(f"{key}: {value}")
    print()
    print(response.text)
    return 0 if response.status_code < 400 else 1


def cmd_functions(args: argparse.Namespace) -> int:
    _, project = _project(args)
    rows = [("NAME", "TRIGGERS", "ROUTES / EVENTS", "IMAGE")]
    for spec in project.functions.values():
        triggers = []
        if spec.ingress or spec.routes:
            triggers.append("http")
        if spec.deploy.subscriptions:
            triggers.append("events")
        if spec.schedules:
            triggers.append("schedule")
        what = [
            *spec.ingress,
            *spec.routes,
            *(s.filters["type"] for s in spec.deploy.subscriptions),
            *(s.schedule for s in spec.schedules),
        ]
        rows.append((spec.name, ",".join(triggers), " ".join(what), spec.image))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    root, project = _project(args)
    problems: list[str] = []
    from eco2.serving.entry import import_function

    for spec in project.functions.values():
        if not (root / spec.main_path).is_file():
            problems.append(f"func.yaml: functions.{spec.name}: {spec.main_path} does not exist")
            continue
        try:
            function = import_function(spec.module)
        except (ImportError, TypeError, AttributeError) as exc:
            problems.append(f"func.yaml: functions.{spec.name}.module: cannot load {spec.module}: {exc}")
            continue
        for route in function.routes:
            if route.path not in spec.routes and not any(
                route.path == p or route.path.startswith(p + "/") for p in spec.ingress
            ):
                problems.append(
                    f"func.yaml: functions.{spec.name}.ingress: no prefix routes {route.method} {route.path}"
                )
        from eco2.tooling.uses import undeclared

        package = root / spec.main_path.rsplit("/", 1)[0]
        for problem in undeclared(package, function.uses):
            problems.append(f"func.yaml: functions.{spec.name}: {problem} (add it to Function(uses=...))")
        subscribed = {s.filters["type"] for s in spec.deploy.subscriptions} | {s.type for s in spec.schedules}
        dead = {t for t, h in function.events.items() if h.dead_letters}
        handled = set(function.events) - dead
        sunk = project.dead_letter_types(spec.name)
        for missing in sorted(handled - subscribed):
            problems.append(f"func.yaml: functions.{spec.name}.deploy.subscriptions: nothing delivers {missing}")
        for extra in sorted(subscribed - handled):
            problems.append(f"func.yaml: functions.{spec.name}.deploy.subscriptions: no handler for {extra}")
        for missing in sorted(dead - sunk):
            problems.append(f"func.yaml: functions.{spec.name}: no Trigger sends its dead letters of {missing} here")
        for extra in sorted(sunk - dead):
            problems.append(
                f"func.yaml: functions.{spec.name}: dead letters of {extra} come here, but no handler takes them"
            )
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"func.yaml: ok ({len(project.functions)} functions)")
    return 1 if problems else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from eco2.tooling.migrate import current, upgrade

    url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        print("eco2 migrate: set DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    applied = upgrade(url, args.revision)  # MigrateError: one line in main()
    at = current(url)
    for revision in applied:
        print(f"applied {revision}")
    print(f"database at revision {at}" + ("" if applied else " (already up to date)"))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from eventing.rabbitmq import RabbitBroker
    from eventing.triggers import triggers

    _, project = _project(args)
    url = os.environ.get("RABBITMQ_URL", "")
    if args.action == "dispatch":
        from eventing.local import dispatch_forever

        dispatch_forever(project)
        return 0
    if not url or url.startswith("memory://"):
        print(
            "eco2 events: set RABBITMQ_URL to the local broker's RabbitMQ (the embedded broker of `eco2 dev` "
            "lives inside that process)",
            file=sys.stderr,
        )
        return 2
    broker = RabbitBroker(url, triggers(project, lambda name: name), broker=os.environ.get("ECO2_BROKER", "eco2"))
    if args.action == "replay":
        count = broker.replay(trigger=args.trigger, limit=args.limit)
        print(f"replayed {count} dead letter(s)")
        return 0
    depths = broker.depths()
    width = max(len(q) for q in depths)
    print(f"{'QUEUE'.ljust(width)}  MESSAGES")
    for queue, depth in depths.items():
        print(f"{queue.ljust(width)}  {depth}")
    letters = broker.dead_letters(limit=args.limit)
    if letters:
        print("\nDEAD LETTERS (trigger, type, id, error code, destination)")
        for trigger, message in letters:
            a = message.attributes
            code, dest = a.get("knativeerrorcode", "-"), a.get("knativeerrordest", "-")
            print(f"  {trigger}  {a.get('type')}  {a.get('id')}  {code}  {dest}")
    return 0


def cmd_manifests(args: argparse.Namespace) -> int:
    from eventing import manifests

    _, project = _project(args)
    try:
        objects = manifests.render(
            project, only=args.only, public_host=args.public_host, dead_letter_sink=args.dead_letter_sink
        )
    except manifests.ManifestError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()) and not args.force:
            print(f"eco2 manifests: {out} is not empty (stale files would stay); use --force", file=sys.stderr)
            return 2
        if args.force and out.exists():
            for old in out.glob("*.yaml"):
                old.unlink()
        paths = manifests.write(objects, out)
        print(f"wrote {len(paths)} files to {out}")
    else:
        print(manifests.to_yaml(objects), end="")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from eco2.tooling.build import build_context, build_image

    root, project = _project(args)
    spec = project.get(args.function)
    if args.context:
        context = build_context(root, spec, Path(args.out) if args.out else None)
        print(f"build context for {spec.name}: {context}")
        print(f"  docker build -t {spec.image} {context}   (or: kaniko / buildah with the same Dockerfile)")
        return 0
    pinned = build_image(root, spec, push=args.push, base_image=args.base_image, out=args.out)
    return 0 if pinned else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    from eco2.tooling.build import build_image
    from eco2.tooling.deploy import deploy, resolve

    root, project = _project(args)
    spec = project.get(args.function)
    image = resolve(args.image) if args.image else build_image(root, spec, push=True, base_image=args.base_image)
    if image is None:
        return 1
    print(f"{spec.name}: deploying {image}")
    return deploy(
        project, args.function, wait=not args.no_wait, timeout=args.timeout, public_host=args.public_host, image=image
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    from eco2.tooling.deploy import rollback

    _, project = _project(args)
    project.get(args.function)  # an unknown name fails before the cluster is asked
    return rollback(project, args.function, to=args.to)


def cmd_describe(args: argparse.Namespace) -> int:
    from eco2.tooling.deploy import describe

    _, project = _project(args)
    project.get(args.function)  # an unknown name fails before the cluster is asked
    return describe(project, args.function)


def cmd_changed(args: argparse.Namespace) -> int:
    from eco2.tooling.changed import changed

    root, _ = _project(args)
    found = changed(root, args.since)
    if args.json:
        print(json.dumps(sorted(found)))
    else:
        for name in found:
            print(name)
    if args.verbose:
        for name, why in found.items():
            print(f"{name}: {'; '.join(why)}", file=sys.stderr)
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from eco2.tooling import lock
    from eco2.tooling.build import all_uses

    root, project = _project(args)
    wanted = lock.compute(root, all_uses(project))
    old = lock.stale(root, wanted)
    if args.check:
        for path in old:
            print(f"{path.relative_to(root)} is out of date: run `eco2 lock`", file=sys.stderr)
        return 1 if old else 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} locks ({len(old)} changed) in {lock.LOCK_DIR}/")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eco2", description="Eco² serverless functions on Knative.")
    p.add_argument("--root", help="project root holding func.yaml (default: search upwards)")
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure (or ECO2_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run every function behind one local gateway")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=cmd_dev)

    run = sub.add_parser("run", help="run one function exactly as its container does")
    run.add_argument("function")
    run.add_argument("--host", default="0.0.0.0")
    run.add_argument("--port", type=int, default=0, help="default: $PORT or 8080")
    run.set_defaults(func=cmd_run)

    inv = sub.add_parser("invoke", help="send an HTTP request or a CloudEvent to a running function")
    inv.add_argument("function")
    inv.add_argument("--url", default="http://127.0.0.1:8080")
    inv.add_argument("--path", default="/")
    inv.add_argument("-X", "--method", default="GET")
    inv.add_argument("-d", "--data", help="request body, or the event's JSON data")
    inv.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    inv.add_argument("--event", help="send a CloudEvent of this type")
    inv.add_argument("--source", default="/eco2/cli")
    inv.add_argument("--id", help="event id (default: random)")
    inv.add_argument("--mode", choices=("binary", "structured"), default="binary")
    inv.add_argument("--timeout", type=float, default=30)
    inv.set_defaults(func=cmd_invoke)

    sub.add_parser("functions", help="list the functions in func.yaml").set_defaults(func=cmd_functions)
    sub.add_parser("validate", help="check func.yaml against the code").set_defaults(func=cmd_validate)

    ev = sub.add_parser("events", help="the local broker: queues and dead letters, replay, dispatch")
    ev.add_argument("action", nargs="?", choices=("show", "replay", "dispatch"), default="show")
    ev.add_argument("--trigger", help="replay only this Trigger's dead letters")
    ev.add_argument("--limit", type=int, default=1000)
    ev.set_defaults(func=cmd_events)

    man = sub.add_parser("manifests", help="render Knative Services, Broker, Triggers, PingSources, routes")
    man.add_argument("--out", "-o", help="write one file per object (and kustomization.yaml) here")
    man.add_argument("--force", action="store_true", help="replace the YAML files already in --out")
    man.add_argument("--only", help="one function's objects")
    man.add_argument("--public-host", default="api.eco2.example")
    man.add_argument("--dead-letter-sink", help="a Knative Service receiving dead letters")
    man.set_defaults(func=cmd_manifests)

    bld = sub.add_parser("build", help="one function's OCI image, without a container daemon")
    bld.add_argument("function")
    bld.add_argument("--push", action="store_true", help="push it to the registry of its func.yaml image")
    bld.add_argument("--base-image", help="default: func.yaml build.baseImage")
    bld.add_argument("--context", action="store_true", help="write a Dockerfile build context instead")
    bld.add_argument("--out", help="default: build/<function> (the manifest, config and a layer list)")
    bld.set_defaults(func=cmd_build)

    dep = sub.add_parser("deploy", help="build, push, apply pinned by digest, wait for the new Revision")
    dep.add_argument("function")
    dep.add_argument("--image", help="deploy this image (a tag is resolved to its digest) instead of building")
    dep.add_argument("--base-image", help="default: func.yaml build.baseImage")
    dep.add_argument("--no-wait", action="store_true")
    dep.add_argument("--timeout", type=float, default=300)
    dep.add_argument("--public-host", default="api.eco2.example")
    dep.set_defaults(func=cmd_deploy)

    rb = sub.add_parser("rollback", help="traffic back to the previous Ready Revision")
    rb.add_argument("function")
    rb.add_argument("--to", help="this Revision instead of the previous one")
    rb.set_defaults(func=cmd_rollback)

    desc = sub.add_parser("describe", help="a function's Revisions, traffic, URL and conditions")
    desc.add_argument("function")
    desc.set_defaults(func=cmd_describe)

    chg = sub.add_parser("changed", help="the functions whose image or objects differ since a git REF")
    chg.add_argument("--since", required=True, help="a commit, branch or tag")
    chg.add_argument("--json", action="store_true", help="a JSON list (for a CI matrix)")
    chg.add_argument("-v", "--verbose", action="store_true", help="say why, on stderr")
    chg.set_defaults(func=cmd_changed)

    lck = sub.add_parser("lock", help="the project lock and one lock per function (uv pip compile)")
    lck.add_argument("--check", action="store_true", help="fail when a lock is out of date")
    lck.set_defaults(func=cmd_lock)

    mig = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    mig.add_argument("--database-url")
    mig.add_argument("--revision", default="head")
    mig.set_defaults(func=cmd_migrate)
    for command in sub.choices.values():  # the global --debug also after the command's name
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


class CliError(RuntimeError):
    """A failure whose message already says what to do; `main()` prints it as one line."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# the optional module -> the extra of pyproject.toml that installs it
EXTRAS = {"kubernetes": "deploy", "uv": "deploy", "moto": "app", "flask_cors": "app", "fakeredis": "app"}


def _is(exc: BaseException, module: str, name: str) -> bool:
    """isinstance(exc, module.name), without importing a library the command never loaded."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(exc, kind)


def _reason(exc: BaseException) -> str:
    """The innermost operating-system reason (`Connection refused`), else the exception's first line."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        inner = getattr(current, "reason", None) or getattr(current, "exception", None)
        if not isinstance(inner, BaseException):  # pika wraps the socket's error in args
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__
    for candidate in seen:
        found = re.search(r"\[Errno -?\d+\] ([^'\"\]\)]+)", str(candidate))
        if found:
            return found.group(1).strip()
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _one_line(problem: str) -> str:
    first, *rest = problem.splitlines() or [""]
    where = re.search(r"line \d+, column \d+", "\n".join(rest))
    return f"{first} ({where.group(0)})" if where else first


def explain(exc: BaseException, command: str) -> tuple[int, list[str]]:
    """The exit code and the line(s) `eco2 <command>` prints for a failure: the problem and the way out."""
    from eco2.core.settings import mask_url

    me = f"eco2 {command}"
    if isinstance(exc, funcyaml.FuncYamlError):  # a YAML error's source excerpt becomes its position
        return 1, [_one_line(problem) for problem in exc.problems]
    if isinstance(exc, SettingsError):
        return 2, [f"{me}: {exc}"]
    if isinstance(exc, CliError):
        return exc.code, [f"{me}: {exc}"]
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in EXTRAS:
        extra = EXTRAS[(exc.name or "").split(".")[0]]
        return 2, [f"{me}: needs {exc.name}, which is not installed: pip install -e '.[{extra}]'"]
    if _is(exc, "eco2.tooling.dev", "DevError"):
        return 1, [f"{me}: {exc}"]
    if _is(exc, "eco2.tooling.migrate", "MigrateError"):
        return 1, [f"{me}: {exc} (is it running? check DATABASE_URL or --database-url)"]
    if _is(exc, "kubernetes.config.config_exception", "ConfigException"):
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        return 2, [
            f"{me}: no Kubernetes cluster configured ({where}: {str(exc).strip().splitlines()[0]})",
            "  set KUBECONFIG to your cluster's kubeconfig, or check it with `kubectl config current-context`",
        ]
    if _is(exc, "urllib3.exceptions", "MaxRetryError") or _is(exc, "urllib3.exceptions", "NewConnectionError"):
        pool = getattr(exc, "pool", None)
        where = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else "the Kubernetes API"
        return 1, [
            f"{me}: cannot reach the Kubernetes API at {where} ({_reason(exc)}): is the cluster up? "
            "`kubectl cluster-info` checks the kubeconfig's current context"
        ]
    if _is(exc, "kubernetes.client.exceptions", "ApiException"):
        status, why = getattr(exc, "status", "?"), getattr(exc, "reason", "") or ""
        hint = {
            401: "check the kubeconfig's credentials",
            403: "your user lacks the RBAC permission",
            404: "are Knative Serving and Eventing installed?",
        }.get(status if isinstance(status, int) else 0, "")
        return 1, [f"{me}: the Kubernetes API answered HTTP {status} {why}".rstrip() + (f": {hint}" if hint else "")]
    if _is(exc, "requests.exceptions", "ConnectionError") or _is(exc, "requests.exceptions", "Timeout"):
        request = getattr(exc, "request", None)
        url = getattr(request, "url", None) or "the target"
        if command == "invoke":
            return 1, [
                f"{me}: nothing answers at {url} ({_reason(exc)}): start it first "
                "(`eco2 run <fn> --port 8080`, or `eco2 dev` and --url http://127.0.0.1:8000) or pass --url"
            ]
        return 1, [f"{me}: cannot reach {url} ({_reason(exc)}): is it running?"]
    if _is(exc, "sqlalchemy.exc", "DBAPIError") or _is(exc, "psycopg", "OperationalError"):
        url = os.environ.get("DATABASE_URL", "")
        at = f" at {mask_url(url)}" if url else ""
        return 1, [f"{me}: cannot reach the database{at} ({_reason(exc)}): is PostgreSQL running? check DATABASE_URL"]
    if _is(exc, "redis.exceptions", "ConnectionError") or _is(exc, "redis.exceptions", "TimeoutError"):
        url = os.environ.get("REDIS_URL", "")
        at = f" at {mask_url(url)}" if url else ""
        return 1, [
            f"{me}: cannot reach Redis{at} ({_reason(exc)}): is it running? check REDIS_URL "
            "(unset, `eco2 dev` uses an in-process Redis)"
        ]
    if _is(exc, "pika.exceptions", "AMQPError"):
        url = os.environ.get("RABBITMQ_URL", "")
        at = f" at {mask_url(url)}" if url else ""
        return 1, [
            f"{me}: cannot reach RabbitMQ{at} ({_reason(exc) or type(exc).__name__}): is it running? check RABBITMQ_URL"
        ]
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return 1, [f"{me}: the port is in use ({exc.strerror}); pick another with --port"]
    first = (str(exc).strip().splitlines() or [""])[0]
    return 1, [f"{me}: {type(exc).__name__}" + (f": {first}" if first else ""), "  (--debug shows the traceback)"]


def main(argv: Sequence[str] | None = None) -> int:
    """The one place a failure becomes its one-line message (and exit code); --debug / ECO2_DEBUG=1 add
    the traceback."""
    args = parser().parse_args(argv)
    debug = args.debug or os.environ.get("ECO2_DEBUG", "").lower() in ("1", "true", "yes", "on")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        code, lines = explain(exc, args.command)
        for line in lines:
            print(line, file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
