"""The locks: one project lock, per function a lock with the project's pins and only what its `uses` need."""

from __future__ import annotations

from pathlib import Path

import pytest

from eco2.core import funcyaml
from eco2.tooling import lock
from eco2.tooling.build import all_uses

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def uses() -> dict[str, tuple[str, ...]]:
    return all_uses(funcyaml.load(ROOT / "func.yaml"))


def test_the_project_lock_pins_every_dependency_of_pyproject() -> None:
    project = lock.pins(lock.lock_path(ROOT).read_text())
    missing = [r for r in lock.project_requirements(ROOT) if lock.requirement_name(r) not in project]
    assert not missing, f"locks/project.txt does not pin {missing}: run `eco2 lock`"


def test_every_function_lock_is_a_subset_of_the_project_lock(uses: dict[str, tuple[str, ...]]) -> None:
    project = lock.pins(lock.lock_path(ROOT).read_text())
    for function, its_uses in uses.items():
        locked = lock.read(ROOT, function)
        assert locked.text.startswith(f"# eco2 lock: {function} (uses: {', '.join(its_uses) or 'none'})")
        pins = locked.pins
        assert pins, function
        assert {name: project.get(name) for name in pins} == pins, f"{function}: a pin differs from the project's"
        roots = {lock.requirement_name(r) for r in lock.roots(ROOT, its_uses)}
        assert roots <= set(pins), f"{function}: {roots - set(pins)} not locked: run `eco2 lock`"
        assert "--hash=sha256:" in locked.text  # pip installs it with --require-hashes


def test_a_function_lock_holds_only_what_its_uses_need(uses: dict[str, tuple[str, ...]]) -> None:
    assert set(uses["users"]) == {"db", "redis", "jwt"}
    users = lock.read(ROOT, "users").pins
    assert {"sqlalchemy", "psycopg", "psycopg-binary", "redis", "functions-framework", "gunicorn"} <= set(users)
    assert not {"boto3", "botocore", "openai", "pika", "kubernetes", "fakeredis"} & set(users)
    images = lock.read(ROOT, "images").pins
    assert {"boto3", "botocore", "s3transfer"} <= set(images)
    assert not {"sqlalchemy", "psycopg", "alembic", "openai"} & set(images)
    everything = lock.pins(lock.lock_path(ROOT).read_text())
    assert len(users) < len(everything) and len(images) < len(everything)


def test_roots_follow_the_uses() -> None:
    names = {lock.requirement_name(r) for r in lock.roots(ROOT, ("s3",))}
    assert "boto3" in names and "functions-framework" in names
    assert not names & {"sqlalchemy", "redis", "openai", "pika", "kubernetes", "fakeredis"}
    assert "pika" in {lock.requirement_name(r) for r in lock.roots(ROOT, ("events",))}
