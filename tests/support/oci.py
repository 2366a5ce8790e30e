"""A tiny base image pushed to the test registry, and a project copy that builds on it (tests, benchmarks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from eco2.tooling import image
from eco2.tooling.registry import OCI_MANIFEST, Registry, sha256

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("ECO2_TEST_REGISTRY", "127.0.0.1:5000")
COPIED = ("platform", "functions", "eventing", "locks", "pyproject.toml")


def push_base(registry: Registry, repository: str, tmp: Path) -> str:
    """A tiny base image: one layer, a config saying Python 3.11; returns its reference."""
    tree = tmp / "base-tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text('ID=eco2-test\nPRETTY_NAME="eco2 test base"\n')
    layer = image.write_layer("base", tree / "etc", "etc", tmp / "base-blobs")
    config = image.canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=3.11.7"], "Cmd": ["python3"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    )
    assert layer.path is not None
    registry.upload(repository, layer.digest, layer.path)
    registry.upload(repository, sha256(config), config)
    manifest = image.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": image.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [layer.descriptor()],
        }
    )
    registry.put_manifest(repository, "3.11", manifest)
    return f"{registry.host}/{repository}:3.11"


def make_project(tmp: Path, namespace: str, base: str) -> Path:
    """A copy of the project whose func.yaml pushes to the test registry on the test base image."""
    root = tmp / "project"
    root.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, root / name)
    text = (ROOT / "func.yaml").read_text()
    text = text.replace("registry: ghcr.io/eco2-team", f"registry: {REGISTRY}/{namespace}")
    text = text.replace("baseImage: docker.io/library/python:3.11-slim-bookworm", f"baseImage: {base}")
    assert base in text and f"{REGISTRY}/{namespace}" in text
    (root / "func.yaml").write_text(text)
    return root
