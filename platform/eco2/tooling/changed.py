"""`eco2 changed --since REF`: the functions whose image (or deployment) differs from REF's.

For each function, at REF (read from git) and in the work tree, a fingerprint of what goes into
its image and its Knative objects: the content of every project file its import graph reaches
(its own code, the shared code it imports, the framework modules; eco2.tooling.graph), its lock file, and
its func.yaml entry with the project defaults applied. A function is listed when any of the three
differs, or when it is new. Folder names play no part: a change to functions/common lists only
the functions that import the changed module.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eco2.core import funcyaml
from eco2.tooling.graph import sources
from eco2.tooling.lock import lock_path

TRACKED = ("platform", "functions", "eventing", "locks", "func.yaml")


@dataclass(frozen=True)
class Fingerprint:
    code: dict[str, str]  # path -> sha256 of its content
    lock: str
    entry: str


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprints(root: Path) -> dict[str, Fingerprint]:
    project = funcyaml.load(root / "func.yaml")
    out: dict[str, Fingerprint] = {}
    for name, spec in project.functions.items():
        files = sources(root, spec).files
        locked = lock_path(root, name)
        entry = json.dumps(
            {
                "module": spec.module,
                "image": spec.image,
                "namespace": spec.namespace,
                "ingress": spec.ingress,
                "schedules": [s.model_dump() for s in spec.schedules],
                "run": spec.run.model_dump(),
                "deploy": spec.deploy.model_dump(),
                "build": spec.build.model_dump(),
            },
            sort_keys=True,
            default=str,
        )
        out[name] = Fingerprint(
            code={f: _sha((root / f).read_bytes()) for f in files},
            lock=_sha(locked.read_bytes()) if locked.is_file() else "",
            entry=_sha(entry.encode()),
        )
    return out


def _git(root: Path, *args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise ValueError(done.stderr.decode().strip() or f"git {' '.join(args)} failed")
    return done.stdout


def checkout(root: Path, ref: str, into: Path) -> None:
    """The tracked project files at `ref`, written under `into` (the work tree is not touched)."""
    present = [p for p in TRACKED if _git(root, "ls-tree", "--name-only", ref, "--", p).strip()]
    archive = _git(root, "archive", "--format=tar", ref, "--", *present)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def reasons(before: Fingerprint | None, after: Fingerprint) -> list[str]:
    if before is None:
        return ["new function"]
    out: list[str] = []
    paths = sorted(set(before.code) | set(after.code))
    for path in paths:
        if before.code.get(path) != after.code.get(path):
            kind = "added" if path not in before.code else "removed" if path not in after.code else "changed"
            out.append(f"{path} {kind}")
    if before.lock != after.lock:
        out.append("its lock changed")
    if before.entry != after.entry:
        out.append("its func.yaml entry changed")
    return out


def changed(root: Path, since: str) -> dict[str, list[str]]:
    """function -> why it changed since `since` (only the changed functions)."""
    now = fingerprints(root)
    try:
        commit = _git(root, "rev-parse", "--verify", f"{since}^{{commit}}").decode().strip()
    except ValueError:
        # an unknown REF (a first push, a force-push's vanished commit): everything is new
        return {name: [f"{since} is not a commit here"] for name in sorted(now)}
    with tempfile.TemporaryDirectory(prefix="eco2-changed-") as tmp:
        checkout(root, commit, Path(tmp))
        try:
            then = fingerprints(Path(tmp))
        except funcyaml.FuncYamlError:
            then = {}
    out: dict[str, list[str]] = {}
    for name in sorted(now):
        why = reasons(then.get(name), now[name])
        if why:
            out[name] = why
    return out
