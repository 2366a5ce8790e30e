"""Locked dependencies: one project lock, and per function a lock holding only what its `uses` need.

`eco2 lock` runs `uv pip compile` (PyPI's `uv`) twice over:

1. `locks/project.txt`: `pyproject.toml`'s `dependencies` (less the CLI-only ones in
   NOT_IN_IMAGES), resolved for the image's interpreter
   (CPython 3.11 on x86_64 manylinux), with hashes.
2. `locks/<function>.txt`: the function's roots (below) resolved again with the project lock as
   constraints, so every pin is the project's pin and nothing outside the roots' closure appears.

`locks/constraints.in`, when present, constrains the project lock (releases known to break the
functions, with the reason beside each).

A function's roots are the project dependencies every function needs, plus those its `uses`
name (a function without `s3` has no boto3). `eco2 lock --check` fails when a lock is stale.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
LOCK_DIR = "locks"
PROJECT_LOCK = "project.txt"
CONSTRAINTS = "constraints.in"  # versions the project lock must avoid, each with its reason

# project dependencies that only some `uses` need, by distribution name
BY_USE: dict[str, tuple[str, ...]] = {
    "db": ("sqlalchemy", "psycopg", "alembic"),
    "redis": ("redis",),
    "events": ("pika", "sqlalchemy"),
    "s3": ("boto3",),
    "openai": ("openai",),
    "jwt": (),
}
# project dependencies no function image needs: `eco2 dev`'s embedded Redis, `eco2 deploy`'s client
NOT_IN_IMAGES = ("fakeredis", "kubernetes")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(root: Path) -> list[str]:
    """pyproject.toml's `dependencies`, less those no function image needs (NOT_IN_IMAGES)."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return [r for r in data["project"]["dependencies"] if requirement_name(r) not in NOT_IN_IMAGES]


def requirement_name(requirement: str) -> str:
    found = _NAME.match(requirement)
    if found is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(found.group(1))


def roots(root: Path, uses: tuple[str, ...]) -> list[str]:
    """The project requirements a function with these `uses` needs, in pyproject order."""
    optional = {canonical(n) for names in BY_USE.values() for n in names} | set(NOT_IN_IMAGES)
    wanted = {canonical(n) for use in uses for n in BY_USE[use]}
    return [r for r in project_requirements(root) if (n := requirement_name(r)) in wanted or n not in optional]


def pins(text: str) -> dict[str, str]:
    """name -> version of a lock file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        found = _PIN.match(line)
        if found:
            out[canonical(found.group(1))] = found.group(2)
    return out


@dataclass(frozen=True)
class Lock:
    path: Path
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def pins(self) -> dict[str, str]:
        return pins(self.text)


def lock_path(root: Path, function: str | None = None) -> Path:
    return root / LOCK_DIR / (PROJECT_LOCK if function is None else f"{function}.txt")


def read(root: Path, function: str) -> Lock:
    path = lock_path(root, function)
    if not path.is_file():
        raise FileNotFoundError(f"{path.relative_to(root)} is missing: run `eco2 lock`")
    return Lock(path, path.read_text(encoding="utf-8"))


def _uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("`eco2 lock` needs uv (pip install uv)")
    return found


def _compile(inputs: Path, *, constraints: Path | None = None, header: str) -> str:
    command = [
        _uv(),
        "pip",
        "compile",
        str(inputs),
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PLATFORM,
        "--generate-hashes",
        "--no-header",
        "--quiet",
        "--annotation-style",
        "line",
    ]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"uv pip compile failed:\n{done.stderr.strip()}")
    body = re.sub(r"\s*# via .*", "", done.stdout)  # annotations name temporary files
    return header + body


def compute(root: Path, function_uses: dict[str, tuple[str, ...]]) -> dict[Path, str]:
    """The text of the project lock and of every function's lock (nothing written)."""
    out: dict[Path, str] = {}
    with tempfile.TemporaryDirectory(prefix="eco2-lock-") as tmp:
        project_in = Path(tmp) / "project.in"
        project_in.write_text("\n".join(project_requirements(root)) + "\n")
        known_bad = root / LOCK_DIR / CONSTRAINTS
        project_text = _compile(
            project_in,
            constraints=known_bad if known_bad.is_file() else None,
            header=(
                f"# eco2 lock: the project lock, pyproject.toml's dependencies for CPython {PYTHON_VERSION} "
                f"on {PLATFORM} (uv pip compile). Do not edit: run `eco2 lock`.\n"
            ),
        )
        constraints = Path(tmp) / "project.txt"
        constraints.write_text(project_text)
        out[lock_path(root)] = project_text
        for function, uses in sorted(function_uses.items()):
            function_in = Path(tmp) / f"{function}.in"
            function_in.write_text("\n".join(roots(root, uses)) + "\n")
            uses_text = ", ".join(uses) or "none"
            out[lock_path(root, function)] = _compile(
                function_in,
                constraints=constraints,
                header=(
                    f"# eco2 lock: {function} (uses: {uses_text}), derived from locks/{PROJECT_LOCK}. "
                    "Do not edit: run `eco2 lock`.\n"
                ),
            )
    return out


def stale(root: Path, wanted: dict[Path, str]) -> list[Path]:
    return [p for p, text in sorted(wanted.items()) if not p.is_file() or p.read_text(encoding="utf-8") != text]
