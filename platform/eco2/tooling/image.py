"""A function's OCI image, built without a container daemon, byte-for-byte reproducible.

On top of the base image named in func.yaml (`build.baseImage`), three layers, least changing first:

1. `deps`: the function's locked third-party libraries (`locks/<function>.txt`), installed by
   `pip install --target` from wheels for the image's platform, under /app/deps. Cached by the
   lock's hash: a code-only change does not rebuild or re-send it.
2. `framework`: the eco2 runtime and eventing modules the function imports (import graph).
3. `app`: the function's package and the shared project code it imports, with their data files.

Every `.py` is precompiled in a fresh interpreter, one process, in sorted order, with
`--invalidation-mode unchecked-hash` (no mtimes in the bytecode), and the bytecode names the
in-image path. Tar entries are sorted, owned by 0:0 with no user names, dated SOURCE_DATE_EPOCH
(default 0); gzip headers carry no name and no time. The config and the manifest are canonical
JSON. The image runs as the non-root user 10001 the command Knative runs
(`python -m eco2.serving.server functions/<fn>/main.py`, as the rendered Service's `command`), and is
labelled `org.opencontainers.image.source` / `.revision`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eco2.core.funcyaml import FunctionSpec
from eco2.tooling import lock as locks
from eco2.tooling.graph import SourceSet, sources
from eco2.tooling.registry import OCI_MANIFEST, Reference, Registry, RegistryError, sha256

APP = "app"  # in-image root, /app
USER = "10001:10001"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
FORMAT = "eco2-image-1"  # bump when the layer layout changes: it is part of the deps cache key
SOURCE_LABEL = "org.opencontainers.image.source"
REVISION_LABEL = "org.opencontainers.image.revision"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def epoch() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- reproducible layers ---------------------------------------------------------------------------
class _Hashing(io.RawIOBase):
    """A write-through stream that hashes and counts what passes."""

    def __init__(self, sink: IO[bytes] | gzip.GzipFile | None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hash.update(chunk)
        self.size += len(chunk)
        if self.sink is not None:
            self.sink.write(chunk)
        return len(chunk)


@dataclass(frozen=True)
class Layer:
    name: str
    digest: str  # of the gzip blob
    diff_id: str  # of the uncompressed tar
    size: int  # of the gzip blob
    tar_size: int
    files: int
    media_type: str = LAYER_GZIP
    path: Path | None = None  # the blob on disk (None: a base image layer, only in its registry)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def write_layer(name: str, tree: Path, prefix: str, store: Path) -> Layer:
    """Tar `tree` (as `prefix/...`) reproducibly into the blob store; returns its descriptor."""
    mtime = epoch()
    entries: list[tuple[str, Path]] = []
    for path in sorted(tree.rglob("*")):
        entries.append((f"{prefix}/{path.relative_to(tree).as_posix()}", path))
    entries.sort(key=lambda e: e[0])
    parents = sorted({"/".join(prefix.split("/")[: i + 1]) for i in range(len(prefix.split("/")))})
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=store, prefix=".layer-", delete=False) as raw:
        blob = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=6) as gz:
            tar_hash = _Hashing(gz)
            with tarfile.open(fileobj=tar_hash, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                count = 0
                for folder in parents:
                    tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755, mtime))
                for arcname, path in entries:
                    if path.is_symlink():
                        info = _info(arcname, tarfile.SYMTYPE, 0o777, mtime)
                        info.linkname = os.readlink(path)
                        tar.addfile(info)
                    elif path.is_dir():
                        tar.addfile(_info(arcname, tarfile.DIRTYPE, 0o755, mtime))
                    else:
                        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                        info = _info(arcname, tarfile.REGTYPE, mode, mtime)
                        info.size = path.stat().st_size
                        with path.open("rb") as handle:
                            tar.addfile(info, handle)
                        count += 1
    digest = "sha256:" + blob.hash.hexdigest()
    target = store / digest.split(":")[1]
    os.replace(raw.name, target)
    return Layer(name, digest, "sha256:" + tar_hash.hash.hexdigest(), blob.size, tar_hash.size, count, path=target)


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def precompile(tree: Path, in_image: str) -> None:
    """Bytecode for every .py under `tree`, naming `in_image/...`, reproducibly (see module doc)."""
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-m",
            "compileall",
            "-q",
            "-q",
            "-j",
            "1",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(tree),
            "-p",
            in_image,
            str(tree),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
    )
    # compileall exits 1 when some file does not compile (third-party test fixtures, Python 2
    # samples): such a file simply has no bytecode, as with pip's own compile step.
    if done.returncode not in (0, 1):
        raise RuntimeError(f"compileall failed: {done.stderr.strip()}")


# -- the deps layer ---------------------------------------------------------------------------------
def deps_key(lock: locks.Lock) -> str:
    from importlib.metadata import version

    # what decides the layer's bytes: the pins, the target, and the installer and compiler versions
    material = "\n".join(
        (FORMAT, locks.PYTHON_VERSION, repr(locks.PIP_PLATFORMS), sys.version, version("pip"), lock.text)
    )
    return hashlib.sha256(material.encode()).hexdigest()


def install_deps(lock: locks.Lock, target: Path) -> None:
    """`pip install --target` of exactly the lock's pins (hash-checked wheels for the image)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--no-compile",
        "--target",
        str(target),
        "--python-version",
        locks.PYTHON_VERSION,
        "--implementation",
        "cp",
        *(f"--platform={p}" for p in locks.PIP_PLATFORMS),
        "-r",
        str(lock.path),
    ]
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_NO_INPUT": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of {lock.path.name} failed:\n{done.stderr.strip()[-2000:]}")
    # console scripts carry this machine's interpreter path; the image runs `python -m ...`
    shutil.rmtree(target / "bin", ignore_errors=True)


# -- the image ---------------------------------------------------------------------------------------
@dataclass
class Image:
    function: str
    reference: Reference  # where it is pushed (func.yaml `image`)
    base: Reference
    base_digest: str
    base_layers: list[Layer]
    layers: list[Layer]  # ours: deps, framework, app
    config: bytes
    manifest: bytes
    timings: dict[str, float] = field(default_factory=dict)
    deps_cached: bool = False

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def pinned(self) -> str:
        return self.reference.pinned(self.digest)


def cache_dir() -> Path:
    return Path(os.environ.get("ECO2_CACHE_DIR") or Path.home() / ".cache" / "eco2")


def git_revision(root: Path) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _base_image(spec: FunctionSpec, override: str | None) -> Reference:
    text = override or spec.build.baseImage
    if not text:
        raise RegistryError(f"func.yaml: functions.{spec.name}.build.baseImage: no base image is set")
    return Reference.parse(text)


def _stage(root: Path, files: Iterable[str], stage: Path) -> None:
    for relative in files:  # the project's layout under /app (PYTHONPATH /app/platform:/app)
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)


def _code_layer(root: Path, name: str, files: Iterable[str], store: Path) -> Layer:
    with tempfile.TemporaryDirectory(prefix=f"eco2-{name}-") as tmp:
        stage = Path(tmp) / APP
        stage.mkdir()
        _stage(root, files, stage)
        precompile(stage, "/" + APP)
        return write_layer(name, stage, APP, store)


def deps_layer(lock: locks.Lock, store: Path, cache: Path) -> tuple[Layer, bool]:
    """The deps layer for `lock`, from the cache when it was built before (second value True)."""
    key = deps_key(lock)
    record = cache / "layers" / f"deps-{key}.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        path = store / saved["digest"].split(":")[1]
        if path.is_file():
            return Layer(**{**saved, "path": path}), True
    with tempfile.TemporaryDirectory(prefix="eco2-deps-") as tmp:
        stage = Path(tmp) / APP / "deps"
        install_deps(lock, stage)
        precompile(stage, f"/{APP}/deps")
        layer = write_layer("deps", stage, f"{APP}/deps", store)
    record.parent.mkdir(parents=True, exist_ok=True)
    saved = {k: v for k, v in layer.__dict__.items() if k != "path"}
    record.write_text(json.dumps(saved, sort_keys=True))
    return layer, False


def _base_layers(manifest: dict[str, Any], config: dict[str, Any]) -> list[Layer]:
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    layers = manifest.get("layers", [])
    if len(diff_ids) != len(layers):
        raise RegistryError("the base image's config and manifest disagree on its layers")
    return [
        Layer("base", d["digest"], diff_id, int(d["size"]), 0, 0, media_type=d["mediaType"])
        for d, diff_id in zip(layers, diff_ids, strict=True)
    ]


def image_config(
    base_config: dict[str, Any],
    spec: FunctionSpec,
    layers: list[Layer],
    base_layers: list[Layer],
    labels: dict[str, str],
) -> dict[str, Any]:
    base = base_config.get("config", {}) or {}
    env = [e for e in base.get("Env", []) or [] if e.split("=", 1)[0] not in _ENV]
    env += [f"{k}={v}" for k, v in _ENV.items()]
    created = iso(epoch())
    history = list(base_config.get("history", []) or [])
    history += [{"created": created, "created_by": f"eco2 build {spec.name}: {layer.name}"} for layer in layers]
    config = {
        **{k: v for k, v in base.items() if k not in ("Env", "Cmd", "Entrypoint", "User", "WorkingDir", "Labels")},
        "Env": env,
        "Cmd": ["python", "-m", "eco2.serving.server", spec.main_path],
        "User": USER,
        "WorkingDir": f"/{APP}",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {**(base.get("Labels") or {}), **labels},
    }
    return {
        "architecture": base_config.get("architecture", "amd64"),
        "os": base_config.get("os", "linux"),
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in (*base_layers, *layers)]},
        "history": history,
    }


_ENV = {
    "PYTHONPATH": f"/{APP}/platform:/{APP}:/{APP}/deps",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "ECO2_ROOT": f"/{APP}",
    "PORT": "8080",
    "HOME": "/tmp",
}


def _check_python(base_config: dict[str, Any]) -> None:
    for entry in (base_config.get("config", {}) or {}).get("Env", []) or []:
        name, _, value = entry.partition("=")
        if name == "PYTHON_VERSION" and ".".join(value.split(".")[:2]) != locks.PYTHON_VERSION:
            raise RegistryError(
                f"the base image runs Python {value}; the locks and the bytecode are for {locks.PYTHON_VERSION}"
            )
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != locks.PYTHON_VERSION:
        raise RuntimeError(f"eco2 build precompiles for Python {locks.PYTHON_VERSION}: run it with that Python")


def build(
    root: Path,
    spec: FunctionSpec,
    *,
    base_image: str | None = None,
    source: str | None = None,
    revision: str | None = None,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Image:
    """Build `spec`'s image: reads the base image's manifest and config from its registry."""
    say = progress or (lambda _message: None)
    cache = cache or cache_dir()
    store = cache / "blobs" / "sha256"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    base = _base_image(spec, base_image)
    base_registry = Registry.for_host(base.registry)
    base_manifest_bytes, base_digest = base_registry.manifest(base.repository, base.ref)
    base_manifest = json.loads(base_manifest_bytes)
    base_config = json.loads(base_registry.blob(base.repository, base_manifest["config"]["digest"]))
    _check_python(base_config)
    base_layers = _base_layers(base_manifest, base_config)
    timings["base"] = time.perf_counter() - started

    lock = locks.read(root, spec.name)
    mark = time.perf_counter()
    deps, cached = deps_layer(lock, store, cache)
    timings["deps"] = time.perf_counter() - mark
    say(f"deps      {deps.digest[:19]}  {deps.size / 1e6:7.1f} MB  ({'cached' if cached else 'built'})")

    files: SourceSet = sources(root, spec)
    mark = time.perf_counter()
    framework = _code_layer(root, "framework", files.framework, store)
    app = _code_layer(root, "app", files.app, store)
    timings["code"] = time.perf_counter() - mark
    say(f"framework {framework.digest[:19]}  {framework.size / 1e6:7.1f} MB  ({framework.files} files)")
    say(f"app       {app.digest[:19]}  {app.size / 1e6:7.1f} MB  ({app.files} files)")

    labels = {
        SOURCE_LABEL: source or spec.build.source or "",
        REVISION_LABEL: revision or git_revision(root),
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.base.name": str(base),
        "org.opencontainers.image.base.digest": base_digest,
    }
    ours = [deps, framework, app]
    config = canonical_json(image_config(base_config, spec, ours, base_layers, labels))
    config_digest = sha256(config)
    (store / config_digest.split(":")[1]).write_bytes(config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [layer.descriptor() for layer in (*base_layers, *ours)],
            "annotations": {
                "org.opencontainers.image.base.name": str(base),
                "org.opencontainers.image.base.digest": base_digest,
            },
        }
    )
    timings["total"] = time.perf_counter() - started
    return Image(
        function=spec.name,
        reference=Reference.parse(spec.image),
        base=base,
        base_digest=base_digest,
        base_layers=base_layers,
        layers=ours,
        config=config,
        manifest=manifest,
        timings=timings,
        deps_cached=cached,
    )


@dataclass(frozen=True)
class PushResult:
    digest: str
    pinned: str
    sent: list[str]  # blob digests uploaded
    skipped: list[str]  # already there
    mounted: list[str]  # linked from the base image's repository
    copied: list[str]  # base layers fetched from another registry and uploaded
    seconds: float


def push(image: Image, registry: Registry | None = None, *, tag: str | None = None) -> PushResult:
    """Send what the registry lacks, then the manifest (by the tag in func.yaml's image)."""
    started = time.perf_counter()
    target = image.reference
    registry = registry or Registry.for_host(target.registry)
    repo = target.repository
    sent: list[str] = []
    skipped: list[str] = []
    mounted: list[str] = []
    copied: list[str] = []
    for layer in image.base_layers:
        if registry.has_blob(repo, layer.digest):
            skipped.append(layer.digest)
        elif image.base.registry == target.registry and registry.mount(repo, layer.digest, image.base.repository):
            mounted.append(layer.digest)
        else:
            source = Registry.for_host(image.base.registry)
            with tempfile.NamedTemporaryFile(prefix="eco2-base-") as spool:
                for chunk in source.blob_stream(image.base.repository, layer.digest):
                    spool.write(chunk)
                spool.flush()
                registry.upload(repo, layer.digest, Path(spool.name))
            copied.append(layer.digest)
    for layer in image.layers:
        if registry.has_blob(repo, layer.digest):
            skipped.append(layer.digest)
            continue
        assert layer.path is not None
        registry.upload(repo, layer.digest, layer.path)
        sent.append(layer.digest)
    if registry.has_blob(repo, image.config_digest):
        skipped.append(image.config_digest)
    else:
        registry.upload(repo, image.config_digest, image.config)
        sent.append(image.config_digest)
    digest = registry.put_manifest(repo, tag or target.tag or "latest", image.manifest, OCI_MANIFEST)
    return PushResult(digest, target.pinned(digest), sent, skipped, mounted, copied, time.perf_counter() - started)
