"""`platform/` must stay a plain folder: a package there would shadow the standard library."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_platform_is_not_a_package() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_gives_the_standard_library() -> None:
    assert hasattr(platform, "python_version")
    assert Path(platform.__file__).parent != ROOT / "platform"
    # also from the project root on sys.path, as functions-framework runs it
    out = subprocess.run(
        [sys.executable, "-c", "import platform, uuid, sqlalchemy; print(platform.python_version())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == platform.python_version()


def test_functions_import_nothing_heavy_they_do_not_use() -> None:
    """Cold start: declaring the users function must not import boto3, openai, pika or kubernetes."""
    code = (
        "import sys, functions.users.app;"
        "print(','.join(m for m in ('boto3','openai','pika','kubernetes','requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
