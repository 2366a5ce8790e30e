"""`eco2 build` / `eco2 deploy` against a real OCI registry on 127.0.0.1 (Debian's docker-registry,
started by .ci/run; `ECO2_TEST_REGISTRY` names another), on a tiny base image this test builds and
pushes itself. Each test session uses its own repositories, so the registry may be shared."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from eco2.core import funcyaml
from eco2.tooling import image
from eco2.tooling.cli import main
from eco2.tooling.registry import OCI_MANIFEST, Reference, Registry, RegistryError, docker_credentials
from tests.support.kube_server import KubeApiServer
from tests.support.oci import REGISTRY, make_project, push_base
from tests.support.servers import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]


def _registry_up() -> None:
    try:
        requests.get(f"http://{REGISTRY}/v2/", timeout=3).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"no OCI registry on {REGISTRY} ({exc}); `bash .ci/run` starts docker-registry")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _registry_up()
    tmp = tmp_path_factory.mktemp("image")
    namespace = f"eco2test-{uuid.uuid4().hex[:10]}"
    registry = Registry.for_host(REGISTRY)
    base = push_base(registry, f"{namespace}/base", tmp)
    root = make_project(tmp, namespace, base)
    yield {"root": root, "namespace": namespace, "base": base, "cache": tmp / "cache", "tmp": tmp}


def _spec(root: Path, name: str) -> funcyaml.FunctionSpec:
    return funcyaml.load(root / "func.yaml").get(name)


def _members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return tar.getmembers()


def test_pushed_image_reads_back_as_built(world: dict[str, Any]) -> None:
    root = world["root"]
    built = image.build(root, _spec(root, "users"), cache=world["cache"], revision="a" * 40)
    pushed = image.push(built)
    assert pushed.digest == built.digest and pushed.pinned.endswith(f"/eco2-users@{built.digest}")

    registry = Registry.for_host(REGISTRY)
    repository = f"{world['namespace']}/eco2-users"
    manifest_bytes, digest = registry.manifest(repository, "latest")
    assert manifest_bytes == built.manifest and digest == built.digest
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == OCI_MANIFEST and len(manifest["layers"]) == 4  # base + deps, framework, app
    config_bytes = registry.blob(repository, manifest["config"]["digest"])
    assert config_bytes == built.config
    config = json.loads(config_bytes)
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Cmd"] == ["python", "-m", "eco2.serving.server", "functions/users/main.py"]
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://github.com/eco2-team/backend"
    assert labels["org.opencontainers.image.revision"] == "a" * 40
    assert labels["org.opencontainers.image.base.name"] == world["base"]
    assert "PYTHONPATH=/app/platform:/app:/app/deps" in config["config"]["Env"]

    layers: dict[str, list[tarfile.TarInfo]] = {}
    for descriptor, diff_id, name in zip(
        manifest["layers"], config["rootfs"]["diff_ids"], ("base", "deps", "framework", "app"), strict=True
    ):
        blob = registry.blob(repository, descriptor["digest"])
        assert len(blob) == descriptor["size"]
        assert "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() == diff_id
        layers[name] = _members(blob)
    for name in ("deps", "framework", "app"):
        members = layers[name]
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
        assert not any(m.mode & 0o022 for m in members if m.isfile())  # not writable by the app user
    app = {m.name for m in layers["app"]}
    assert "app/functions/users/app.py" in app
    assert "app/functions/users/__pycache__/app.cpython-311.pyc" in app
    assert "app/functions/common/data/characters.yaml" in app  # package data of an imported package
    assert not any(n.startswith(("app/functions/auth/", "app/functions/scan/")) for n in app)
    assert not any("/migrations/" in n for n in app)  # run by `eco2 migrate`, imported by no function
    framework = {m.name for m in layers["framework"]}
    assert "app/platform/eco2/serving/server.py" in framework and "app/platform/eco2/core/runtime.py" in framework
    assert "app/platform/eco2/tooling/cli.py" not in framework and "app/platform/eco2/tooling/image.py" not in framework
    deps = {m.name.split("/")[2] for m in layers["deps"] if m.name.count("/") >= 2}
    assert {"sqlalchemy", "redis", "flask", "pydantic"} <= deps
    assert not deps & {"boto3", "botocore", "openai", "pika", "kubernetes", "fakeredis", "bin"}


def test_bytecode_is_hash_based_and_names_the_image_path(world: dict[str, Any]) -> None:
    root = world["root"]
    built = image.build(root, _spec(root, "users"), cache=world["cache"], revision="a" * 40)
    app = built.layers[2]
    assert app.path is not None
    with tarfile.open(app.path) as tar:
        pyc = tar.extractfile("app/functions/users/__pycache__/service.cpython-311.pyc")
        assert pyc is not None
        data = pyc.read()
        source = tar.extractfile("app/functions/users/service.py")
        assert source is not None
        source_bytes = source.read()
    import importlib.util
    import marshal

    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, not checked against the source
    assert data[8:16] == importlib.util.source_hash(source_bytes)
    assert marshal.loads(data[16:]).co_filename == "/app/functions/users/service.py"


def test_two_cold_builds_give_the_same_digest(world: dict[str, Any], tmp_path: Path) -> None:
    root = world["root"]
    spec = _spec(root, "users")
    first = image.build(root, spec, cache=world["cache"], revision="b" * 40)
    second = image.build(root, spec, cache=tmp_path / "fresh-cache", revision="b" * 40)  # deps built again
    assert not second.deps_cached
    assert [layer.digest for layer in second.layers] == [layer.digest for layer in first.layers]
    assert second.config == first.config and second.manifest == first.manifest
    assert second.digest == first.digest


def test_code_only_change_sends_only_the_top_layer(world: dict[str, Any]) -> None:
    root = world["root"]
    spec = _spec(root, "users")
    first = image.build(root, spec, cache=world["cache"], revision="c" * 40)
    image.push(first)
    again = image.push(first)
    assert again.sent == []  # everything is already there

    service = root / "functions" / "users" / "service.py"
    service.write_text(service.read_text() + "\n# a code-only change\n")
    second = image.build(root, spec, cache=world["cache"], revision="c" * 40)
    assert second.deps_cached
    assert second.layers[0].digest == first.layers[0].digest  # deps
    assert second.layers[1].digest == first.layers[1].digest  # framework
    assert second.layers[2].digest != first.layers[2].digest  # app
    pushed = image.push(second)
    assert pushed.sent == [second.layers[2].digest, second.config_digest]
    assert set(pushed.skipped) == {layer.digest for layer in (*second.base_layers, *second.layers[:2])}


def test_the_image_layers_run_the_function(world: dict[str, Any], tmp_path: Path) -> None:
    """Our three layers, unpacked, hold everything the function needs: no host site-packages."""
    root = world["root"]
    built = image.build(root, _spec(root, "users"), cache=world["cache"], revision="d" * 40)
    fs = tmp_path / "fs"
    for layer in built.layers:
        assert layer.path is not None
        with tarfile.open(layer.path) as tar:
            tar.extractall(fs, filter="data")
    app = fs / "app"
    probe = (
        "import sys, pathlib\n"
        "from eco2.serving.server import load_source\n"
        "app, runtime = load_source(pathlib.Path('functions/users/main.py').resolve(), pathlib.Path('.').resolve())\n"
        "response = app.test_client().get('/health/liveness')\n"
        "print(response.status_code, sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'openai')))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{app}/platform:{app}:{app}/deps",
        "ECO2_ROOT": str(app),
        "ECO2_ENV": "test",
        "DATABASE_URL": "postgresql://root@127.0.0.1:5432/test",
        "REDIS_URL": os.environ.get("ECO2_TEST_REDIS_URL", "redis://127.0.0.1:6379/8"),
        "JWT_SECRET": "x" * 40,
        "ALLOWED_ORIGINS": "http://localhost:3000",
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=app, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "200 []"

    # and the container's command, with the image's environment (its /app here), serves under gunicorn
    config = json.loads(built.config)["config"]
    image_env = dict(e.split("=", 1) for e in config["Env"])
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    served_env = {
        **env,
        **{k: v.replace("/app", str(app)) for k, v in image_env.items() if k != "PATH"},
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": "1",
    }
    command = [sys.executable, "-S", *config["Cmd"][1:]]  # "python" is the base image's interpreter
    server = subprocess.Popen(command, cwd=app, env=served_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        status = 0
        for _ in range(150):
            try:
                status = requests.get(f"http://127.0.0.1:{port}/health/liveness", timeout=2).status_code
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert status == 200
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert b"ClientDisconnected" not in stderr


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeApiServer]:
    fake = KubeApiServer()
    server, _ = serve_wsgi(fake)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "tester"}}],
        "current-context": "stand-in",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    yield fake
    server.shutdown()


def test_eco2_deploy_builds_pushes_and_applies_the_digest(
    world: dict[str, Any], kube: KubeApiServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = world["root"]
    monkeypatch.setenv("ECO2_CACHE_DIR", str(world["cache"]))
    assert main(["--root", str(root), "deploy", "users", "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    registry = Registry.for_host(REGISTRY)
    _, digest = registry.manifest(f"{world['namespace']}/eco2-users", "latest")
    pinned = f"{REGISTRY}/{world['namespace']}/eco2-users@{digest}"
    service = kube.objects["/apis/serving.knative.dev/v1/namespaces/eco2/services/users"]
    assert service["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert f"users: pushed {pinned}" in out and "users is ready at http://users.eco2." in out

    # --image with a tag: no build, the tag resolved to its digest; the same template, no new Revision
    assert main(["--root", str(root), "deploy", "users", "--image", f"{REGISTRY}/{world['namespace']}/eco2-users"]) == 0
    out = capsys.readouterr().out
    assert "built" not in out and f"deploying {pinned}" in out
    assert service["metadata"]["generation"] == 1

    assert main(["--root", str(root), "describe", "users"]) == 0
    assert f"users-00001  Ready  {pinned}" in capsys.readouterr().out


def test_push_uses_docker_config_credentials(world: dict[str, Any], tmp_path: Path) -> None:
    """A second docker-registry with htpasswd auth: refused without credentials, accepted with them."""
    import bcrypt

    binary = shutil.which("docker-registry")
    assert binary, "Debian's docker-registry is not installed (bash .ci/run installs it)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "htpasswd").write_text("pusher:" + bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode())
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "eco2-test"},
        "auth": {"htpasswd": {"realm": "eco2-test", "path": str(tmp_path / "htpasswd")}},
    }
    (tmp_path / "config.yml").write_text(json.dumps(config))
    process = subprocess.Popen([binary, "serve", str(tmp_path / "config.yml")], stderr=subprocess.DEVNULL)
    try:
        host = f"127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"http://{host}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        root = world["root"]
        spec = _spec(root, "users")
        built = image.build(root, spec, cache=world["cache"], revision="e" * 40)
        built.reference = Reference(host, "eco2/users", "v1")
        docker = tmp_path / "docker"
        docker.mkdir()
        env = {"DOCKER_CONFIG": str(docker)}
        with pytest.raises(RegistryError, match="unauthorized"):
            image.push(built, Registry(host, None))
        auth = base64.b64encode(b"pusher:s3cret-pass").decode()
        (docker / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        credentials = docker_credentials(host, env)
        assert credentials == ("pusher", "s3cret-pass")
        pushed = image.push(built, Registry(host, credentials))
        assert pushed.copied == [built.base_layers[0].digest]  # the base came from the other registry
        stored, digest = Registry(host, credentials).manifest("eco2/users", "v1")
        assert stored == built.manifest and digest == built.digest
    finally:
        process.terminate()
        process.wait(10)
