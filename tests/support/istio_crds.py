"""The upstream Istio CRD schemas (AuthorizationPolicy, VirtualService) for strict validation.

They come from the npm package `@kubernetes-models/istio@2.3.0`, which carries each CRD's
`openAPIV3Schema` as generated from Istio's own `manifests/charts/base/crds/crd-all.gen.yaml`
(Istio 1.18.0, see the package's package.json). The package is fetched from the npm registry
with `npm pack` at first use and kept under ~/.cache/eco2 (nothing of it is committed). The
VirtualService schema is the `v1beta1` one: Istio serves the identical schema as `v1` since 1.22,
which is the version the manifests use, so it is registered under both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from eventing.crdschema import CRDSchemas, CRDVersion

PACKAGE = "@kubernetes-models/istio@2.3.0"
CACHE = Path.home() / ".cache" / "eco2" / "kubernetes-models-istio-2.3.0"
_FILES = {
    ("security.istio.io", "AuthorizationPolicy"): ("security.istio.io/v1/AuthorizationPolicy.js", ("v1",)),
    ("networking.istio.io", "VirtualService"): ("networking.istio.io/v1beta1/VirtualService.js", ("v1beta1", "v1")),
}


def _package() -> Path:
    root = CACHE / "package"
    if root.is_dir():
        return root
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch the Istio CRD schemas (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", PACKAGE, "--pack-destination", str(CACHE), "--silent"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
    archive = CACHE / done.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return root


def _schema(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    start = text.index("const schema = ") + len("const schema = ")
    end = text.index("\n};\n", start) + 2
    schema: dict[str, object] = json.loads(text[start:end])
    return schema


def istio_schemas() -> CRDSchemas:
    root = _package()
    versions = []
    for (group, kind), (file, served) in _FILES.items():
        schema = _schema(root / file)
        for version in served:
            versions.append(CRDVersion(group=group, kind=kind, version=version, served=True, schema=schema))
    return CRDSchemas(versions)
