"""A function that reaches for a client it did not declare is found by `eco2 validate`, not by a request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eco2.core import funcyaml
from eco2.serving.entry import import_function
from eco2.tooling.uses import reached, undeclared

ROOT = Path(__file__).resolve().parents[2]

SOURCE = """
from eco2 import Context

def handler(ctx: Context) -> None:
    ctx.redis.get("k")
    ctx.publish("t", {})

def other(context: "Context") -> None:
    context.clients.s3.head_bucket(Bucket="b")
    context.clients.tokens.issue("u", "access")

def unrelated(thing: object) -> None:
    thing.db  # not a Context
"""


def test_reached_clients_are_read_from_the_source() -> None:
    assert set(reached(SOURCE)) == {"redis", "events", "s3", "jwt"}


def test_an_undeclared_client_is_a_problem_naming_file_and_line(tmp_path: Path) -> None:
    package = tmp_path / "fn"
    package.mkdir()
    (package / "app.py").write_text(SOURCE)
    problems = undeclared(package, ("redis", "events", "jwt"))
    assert len(problems) == 1 and "app.py:9" in problems[0] and "'s3'" in problems[0]
    assert undeclared(package, ("redis", "events", "jwt", "s3")) == []


def test_every_function_of_the_project_declares_what_it_reaches() -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    for spec in project.functions.values():
        function = import_function(spec.module)
        assert undeclared(ROOT / spec.main_path.rsplit("/", 1)[0], function.uses) == [], spec.name


def test_eco2_validate_fails_on_an_undeclared_client(tmp_path: Path) -> None:
    (tmp_path / "func.yaml").write_text(
        "specVersion: 0.36.0\nname: p\nnamespace: p\nfunctions:\n  greedy:\n    module: greedy_fn.app:fn\n"
        "    ingress: [/api/v1/greedy]\n"
    )
    package = tmp_path / "greedy_fn"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "from eco2 import Context, Function\n"
        'fn = Function("greedy", uses=("redis",))\n'
        '@fn.get("/api/v1/greedy")\n'
        "def get(ctx: Context) -> dict[str, str]:\n"
        "    ctx.clients.s3.list_buckets()\n"
        '    return {"ok": "yes"}\n'
    )
    (package / "main.py").write_text('from eco2.serving.entry import target\nhandle = target("greedy_fn.app:fn")\n')
    done = subprocess.run(
        [sys.executable, "-m", "eco2.tooling.cli", "--root", str(tmp_path), "validate"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reaches the 's3' client" in done.stderr and "Function(uses=...)" in done.stderr
