"""The `eco2` command as a person runs it: a real process per command, asserting what it prints and
its exit code.

First the failures a person meets, each in one or two lines naming the problem and the way out
(`eco2.tooling.cli.explain`, the one place that maps them), with the traceback only under --debug /
ECO2_DEBUG=1; then each command's success path against the real servers of this machine
(PostgreSQL, Redis, RabbitMQ, the OCI registry on 127.0.0.1:5000) and the local stand-in for the
Kubernetes API (tests/support/kube_server.py)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pika
import pytest
import requests

from eco2.events.amqp import Names
from tests.support.kube_server import KubeApiServer
from tests.support.servers import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PINNED = f"registry.example/eco2/eco2-users@sha256:{'1' * 64}"
# what a person's shell would not carry into these runs
DROPPED = ("KUBECONFIG", "DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "ECO2_DEBUG", "JWT_SECRET", "ECO2_BROKER")


def eco2(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`eco2 ARGS` in a process of its own (the console script's code: eco2.tooling.cli.main)."""
    environment = {k: v for k, v in os.environ.items() if k not in DROPPED}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "eco2.tooling.cli", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def failed(done: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    """The run failed with `code` in at most two lines of stderr holding `expected`, and no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert 1 <= len(lines) <= 2, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    return done.stderr


def free_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "tester"}}],
        "current-context": "stand-in",
    }
    path.write_text(json.dumps(config))
    return path


# -- the failures -------------------------------------------------------------------------------------
def test_deploy_without_a_kubeconfig(tmp_path: Path) -> None:
    done = eco2("deploy", "users", "--image", PINNED, env={"KUBECONFIG": str(tmp_path / "none")})
    failed(done, 2, "eco2 deploy: no Kubernetes cluster configured", "set KUBECONFIG")


def test_describe_with_the_cluster_unreachable(tmp_path: Path) -> None:
    port = free_port()
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    done = eco2("describe", "users", env={"KUBECONFIG": str(config)})
    failed(done, 1, f"eco2 describe: cannot reach the Kubernetes API at http://127.0.0.1:{port} (Connection refused)")
    assert "kubectl cluster-info" in done.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    for done in (
        eco2("--debug", "describe", "users", env={"KUBECONFIG": str(config)}),
        eco2("describe", "users", "--debug", env={"KUBECONFIG": str(config)}),
        eco2("describe", "users", env={"KUBECONFIG": str(config), "ECO2_DEBUG": "1"}),
    ):
        assert done.returncode == 1
        assert "Traceback (most recent call last)" in done.stderr and "MaxRetryError" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("eco2 describe: cannot reach the Kubernetes API")


def test_deploy_without_the_kubernetes_client_names_the_extra() -> None:
    """The client made unimportable in that process (sys.modules[name] = None is how Python spells
    "not installed" to an import): the line names the extra to install."""
    code = (
        "import sys; sys.modules['kubernetes'] = None; from eco2.tooling.cli import main; "
        f"sys.exit(main(['deploy', 'users', '--image', '{PINNED}']))"
    )
    environment = {k: v for k, v in os.environ.items() if k not in DROPPED}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    failed(done, 2, "eco2 deploy: needs kubernetes, which is not installed: pip install -e '.[deploy]'")


def test_invoke_with_nothing_listening() -> None:
    port = free_port()
    done = eco2("invoke", "users", "--url", f"http://127.0.0.1:{port}", "--path", "/api/v1/users/me")
    failed(done, 1, f"eco2 invoke: nothing answers at http://127.0.0.1:{port}/api/v1/users/me (Connection refused)")
    assert "eco2 run" in done.stderr and "--url" in done.stderr


def test_migrate_with_the_database_unreachable() -> None:
    port = free_port()
    done = eco2("migrate", env={"DATABASE_URL": f"postgresql://root:secret@127.0.0.1:{port}/eco2"})
    text = failed(done, 1, "eco2 migrate: cannot reach the database at postgresql://root:***@127.0.0.1", "DATABASE_URL")
    assert "secret" not in text


def test_migrate_without_a_database_url() -> None:
    failed(eco2("migrate"), 2, "eco2 migrate: set DATABASE_URL or pass --database-url")


def test_dev_with_redis_unreachable(tmp_path: Path) -> None:
    port = free_port()
    done = eco2("dev", "--port", "0", env={"REDIS_URL": f"redis://127.0.0.1:{port}/0", "ECO2_DEV_DATA": str(tmp_path)})
    failed(done, 1, f"eco2 dev: cannot reach Redis at redis://127.0.0.1:{port}/0 (Connection refused)", "REDIS_URL")


def test_dev_and_events_with_rabbitmq_unreachable(tmp_path: Path) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    for command in (("dev", "--port", "0"), ("events",)):
        done = eco2(*command, env={"RABBITMQ_URL": url, "ECO2_DEV_DATA": str(tmp_path)})
        text = failed(
            done, 1, f"eco2 {command[0]}: cannot reach RabbitMQ at amqp://guest:***@127.0.0.1", "RABBITMQ_URL"
        )
        assert "(Connection refused)" in text


def test_run_and_dev_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = eco2("run", "users", "--host", "127.0.0.1", "--port", str(port))
        failed(done, 1, f"eco2 run: port {port} on 127.0.0.1 is not free (Address already in use)", "--port")
        assert "users on http://" not in done.stderr  # said before anything starts
        done = eco2("dev", "--port", str(port), env={"ECO2_DEV_DATA": str(tmp_path)})
        failed(done, 1, f"eco2 dev: port {port} on 127.0.0.1 is not free", "--port")
        assert time.monotonic() - started < 60
    assert not (tmp_path / "dev.db").exists()  # nothing started: not even the migration


def test_unknown_function() -> None:
    for command in ("run", "invoke", "build", "deploy", "describe"):
        done = eco2(command, "nosuch")
        failed(done, 1, "func.yaml: functions.nosuch: no such function (known: auth, ")


def test_invalid_func_yaml(tmp_path: Path) -> None:
    (tmp_path / "func.yaml").write_text("specVersion: 0.36.0\nname: eco2\nfunctions:\n  users:\n    module: [1]\n")
    done = eco2("--root", str(tmp_path), "validate")
    failed(done, 1, "func.yaml: functions.users.module: Input should be a valid string")
    (tmp_path / "func.yaml").write_text("functions: [unclosed\n")
    failed(eco2("--root", str(tmp_path), "functions"), 1, "func.yaml: not valid YAML")


def test_run_with_a_setting_missing() -> None:
    """Every missing setting is listed, one per line, before the function listens (exit 2)."""
    done = eco2("run", "users", "--host", "127.0.0.1", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "eco2 run: invalid configuration:" in done.stderr
    for line in (
        "  - JWT_SECRET: required, at least 32 characters",
        "  - DATABASE_URL: required by this function (uses db)",
        "  - REDIS_URL: required by this function (uses redis)",
    ):
        assert line in done.stderr.splitlines(), done.stderr


# -- the commands --------------------------------------------------------------------------------------
def test_functions_lists_every_function_and_its_triggers() -> None:
    done = eco2("functions")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:]}
    assert done.stdout.startswith("NAME")
    assert rows["users"] == "http,events" and rows["scan-worker"] == "events" and "schedule" in rows["info"]
    assert len(rows) >= 11


def test_validate_passes_on_the_project() -> None:
    done = eco2("validate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("func.yaml: ok (") and "functions)" in done.stdout


def test_validate_checks_dead_letter_handlers_against_the_sinks_naming_them(tmp_path: Path) -> None:
    """scan takes scan requests only as dead letters: without a Trigger naming it the handler is
    unreachable; a Trigger naming a function without such a handler sends them nowhere."""
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    text = (ROOT / "func.yaml").read_text(encoding="utf-8")
    assert ", deadLetterSink: scan }" in text
    requested = "eco2.scan.job.requested.v1"
    (tmp_path / "func.yaml").write_text(text.replace(", deadLetterSink: scan }", " }"), encoding="utf-8")
    done = eco2("--root", str(tmp_path), "validate")
    assert done.returncode == 1 and done.stderr.splitlines() == [
        f"func.yaml: functions.scan: no Trigger sends its dead letters of {requested} here"
    ], done.stderr
    (tmp_path / "func.yaml").write_text(text.replace("deadLetterSink: scan }", "deadLetterSink: users }"), "utf-8")
    done = eco2("--root", str(tmp_path), "validate")
    assert done.returncode == 1 and done.stderr.splitlines() == [  # in func.yaml's order
        f"func.yaml: functions.users: dead letters of {requested} come here, but no handler takes them",
        f"func.yaml: functions.scan: no Trigger sends its dead letters of {requested} here",
    ], done.stderr


def test_manifests_out(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    done = eco2("manifests", "-o", str(out), "--only", "users")
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in out.iterdir())
    assert done.stdout.strip() == f"wrote {len(written)} files to {out}"
    assert "kustomization.yaml" in written and any("users" in name for name in written)
    failed(eco2("manifests", "-o", str(out)), 2, "is not empty (stale files would stay); use --force")
    assert eco2("manifests", "-o", str(out), "--force").returncode == 0


def test_migrate_prints_the_revisions_and_location_load_its_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'eco2.db'}"
    done = eco2("migrate", "--database-url", url)
    assert done.returncode == 0, done.stderr[-3000:]
    applied = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("applied ")]
    assert applied[:3] == sorted(applied)[:3] and any(r.startswith("0003") for r in applied), done.stdout
    head = done.stdout.strip().splitlines()[-1]
    assert head == f"database at revision {applied[-1]}"
    again = eco2("migrate", "--database-url", url)
    assert again.stdout.strip() == f"database at revision {applied[-1]} (already up to date)"

    with sqlite3.connect(tmp_path / "eco2.db") as db:
        total = db.execute("SELECT count(*) FROM collection_points").fetchone()[0]
        db.execute("DELETE FROM collection_points WHERE id IN (SELECT id FROM collection_points LIMIT 250)")
    loaded = subprocess.run(
        [sys.executable, "-m", "functions.location.load"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "collection points: 250/250 in " in loaded.stderr
    assert "LoadReport(inserted=250, updated=0, unchanged=" in loaded.stdout and total > 250


def test_run_then_invoke() -> None:
    """`eco2 run users` serves it as its container does; `eco2 invoke` prints status, headers, body."""
    port = free_port()
    env = {
        "ECO2_ENV": "test",
        "DATABASE_URL": f"sqlite:///{ROOT / '.pytest_cache' / f'cli-{uuid.uuid4().hex[:8]}.db'}",
        "REDIS_URL": os.environ.get("ECO2_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "JWT_SECRET": "test-secret-0123456789-0123456789-0123456789",
        "WORKERS": "1",
    }
    environment = {**{k: v for k, v in os.environ.items() if k not in DROPPED}, **env}
    server = subprocess.Popen(
        [sys.executable, "-m", "eco2.tooling.cli", "run", "users", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/liveness", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                assert server.poll() is None, server.communicate()[1][-3000:]
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        ok = eco2("invoke", "users", "--url", url, "--path", "/health/liveness")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("HTTP 200 OK\n") and "X-Request-ID:" in ok.stdout
        refused = eco2("invoke", "users", "--url", url, "--path", "/api/v1/users/me")
        assert refused.returncode == 1 and refused.stdout.startswith("HTTP 401 ")
        assert json.loads(refused.stdout.strip().splitlines()[-1])["code"]
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"eco2 run: users on http://127.0.0.1:{port}" in err


@pytest.fixture
def broker() -> Iterator[dict[str, Any]]:
    """A broker name of this test's own; its queues (as `eco2 events` listed them) and exchange go after."""
    made: dict[str, Any] = {"name": f"cli{uuid.uuid4().hex[:8]}", "queues": []}
    yield made
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    for queue in made["queues"]:
        channel.queue_delete(queue)
    channel.exchange_delete(Names(made["name"]).exchange)
    connection.close()


def test_events_shows_the_queues_of_the_broker(broker: dict[str, Any]) -> None:
    name = broker["name"]
    env = {"RABBITMQ_URL": RABBIT, "ECO2_BROKER": name}
    done = eco2("events", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    rows = [line.split() for line in lines[1:] if line.strip()]
    broker["queues"] = [row[0] for row in rows if row[0].startswith(f"{name}.")]
    assert lines[0].split() == ["QUEUE", "MESSAGES"]
    assert [f"{name}.dead-letter", "0"] in rows
    assert any(row[0].startswith(f"{name}.trigger.users-") and row[1] == "0" for row in rows), done.stdout
    replay = eco2("events", "replay", env=env)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert replay.stdout.strip() == "replayed 0 dead letter(s)"


# -- build and deploy: the real registry and the Kubernetes API stand-in ------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from eco2.tooling.registry import Registry
    from tests.support.oci import REGISTRY, make_project, push_base

    try:
        requests.get(f"http://{REGISTRY}/v2/", timeout=3).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"no OCI registry on {REGISTRY} ({exc}); `bash .ci/run` starts docker-registry")
    tmp = tmp_path_factory.mktemp("cli-image")
    namespace = f"eco2cli-{uuid.uuid4().hex[:10]}"
    base = push_base(Registry.for_host(REGISTRY), f"{namespace}/base", tmp)
    return {"root": make_project(tmp, namespace, base), "cache": tmp / "cache", "repo": f"{REGISTRY}/{namespace}"}


def test_build_then_deploy(project: dict[str, Any], tmp_path: Path) -> None:
    root, cache = str(project["root"]), str(project["cache"])
    built = eco2("--root", root, "build", "users", "--push", env={"ECO2_CACHE_DIR": cache}, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    out = built.stdout
    assert "users: build (base image, deps, code layers) ..." in out
    assert "users: build (base image, deps, code layers) done in " in out and "users: push to " in out
    assert "  deps      sha256:" in out and "  app       sha256:" in out
    pinned = next(line.split()[2] for line in out.splitlines() if line.startswith("users: pushed "))
    assert pinned.startswith(f"{project['repo']}/eco2-users@sha256:")

    fake = KubeApiServer()
    server, _ = serve_wsgi(fake)
    try:
        config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.server_port}")
        done = eco2(
            "--root", root, "deploy", "users", "--image", pinned, "--timeout", "10", env={"KUBECONFIG": str(config)}
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"users: deploying {pinned}"
    assert "users: apply 4 objects ..." in lines and any(
        line.startswith("users: apply 4 objects done in ") for line in lines
    )
    assert "  applied Service eco2/users" in lines
    assert any(line.startswith("users: wait for the new Revision done in ") for line in lines)
    assert lines[-1] == "users: Revision users-00001 is ready; users is ready at http://users.eco2.demo.example"
    service = fake.objects["/apis/serving.knative.dev/v1/namespaces/eco2/services/users"]
    assert service["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
