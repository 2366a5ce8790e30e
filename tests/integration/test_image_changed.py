"""`eco2 changed --since REF` on crafted commits in a temporary git repository (a copy of the project)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from eco2.core import funcyaml
from eco2.tooling.changed import changed
from eco2.tooling.cli import main

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("platform", "functions", "eventing", "locks", "func.yaml", "pyproject.toml")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("changed") / "project"
    root.mkdir()
    for name in COPIED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, root / name)
    git(root, "init", "-q")
    commit(root, "start")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def everyone(repo: Path) -> set[str]:
    return set(funcyaml.load(repo / "func.yaml").functions)


def test_a_functions_own_code(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    with (repo / "functions" / "images" / "service.py").open("a") as handle:
        handle.write("\n# a change\n")
    commit(repo, "images code")
    assert changed(repo, before) == {"images": ["functions/images/service.py changed"]}


def test_shared_code_lists_only_its_importers(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    with (repo / "functions" / "common" / "recycling.py").open("a") as handle:
        handle.write("\n# a change\n")
    commit(repo, "recycling rules")
    found = changed(repo, before)
    assert {"scan", "scan-worker"} <= set(found)
    assert not {"images", "auth", "users"} & set(found)
    assert all(why == ["functions/common/recycling.py changed"] for why in found.values())


def test_framework_modules_only_when_imported_at_run_time(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    with (repo / "platform" / "eco2" / "tooling" / "cli.py").open("a") as handle:  # the CLI is in no image
        handle.write("\n# a change\n")
    with (repo / "functions" / "README.md").open("w") as handle:  # nor are docs
        handle.write("notes\n")
    commit(repo, "cli only")
    assert changed(repo, before) == {}
    with (repo / "platform" / "eco2" / "core" / "errors.py").open("a") as handle:  # every runtime imports it
        handle.write("\n# a change\n")
    commit(repo, "errors")
    found = changed(repo, before)
    assert set(found) == everyone(repo)
    assert all(why == ["platform/eco2/core/errors.py changed"] for why in found.values())


def test_a_new_module_counts_once_something_imports_it(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    (repo / "functions" / "images" / "limits.py").write_text("MAX = 3\n")
    commit(repo, "unused module")
    assert changed(repo, before) == {}
    edit(
        repo / "functions" / "images" / "service.py",
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nfrom functions.images import limits  # noqa: F401\n",
    )
    commit(repo, "import it")
    found = changed(repo, before)
    assert set(found) == {"images"}
    assert found["images"] == ["functions/images/limits.py added", "functions/images/service.py changed"]


def test_a_lock_and_a_func_yaml_entry(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    with (repo / "locks" / "users.txt").open("a") as handle:
        handle.write("# re-locked\n")
    commit(repo, "users lock")
    assert changed(repo, before) == {"users": ["its lock changed"]}

    before = git(repo, "rev-parse", "HEAD")
    envs = "    ingress: [/api/v1/images]\n    run:\n      envs:\n"
    edit(repo / "func.yaml", envs, envs + "        - name: IMAGES_NOTE\n          value: a change\n")
    commit(repo, "images env")
    assert changed(repo, before) == {"images": ["its func.yaml entry changed"]}

    before = git(repo, "rev-parse", "HEAD")
    edit(repo / "func.yaml", "  timeoutSeconds: 30\n", "  timeoutSeconds: 31\n")  # a project default
    commit(repo, "default timeout")
    inheriting = {f for f, s in funcyaml.load(repo / "func.yaml").functions.items() if s.deploy.timeoutSeconds == 31}
    assert {"users", "images"} <= inheriting < everyone(repo)  # scan, scan-worker, ... set their own
    assert set(changed(repo, before)) == inheriting


def test_cli_json_and_an_unknown_ref(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = git(repo, "rev-parse", "HEAD")
    with (repo / "functions" / "users" / "service.py").open("a") as handle:
        handle.write("\n# a change\n")
    commit(repo, "users code")
    assert main(["--root", str(repo), "changed", "--since", before, "--json", "-v"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == ["users"]
    assert "users: functions/users/service.py changed" in captured.err
    assert main(["--root", str(repo), "changed", "--since", "0" * 40]) == 0
    assert set(capsys.readouterr().out.split()) == everyone(repo)
