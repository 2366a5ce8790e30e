"""`eco2 build` figures against the local registry (127.0.0.1:5000, or ECO2_TEST_REGISTRY):

- per function: the image's own layers (deps / framework / app, gzip and tar sizes, packages)
  against the dependency set of one image for everything (`locks/project.txt`, what a build that
  ignores `uses` would install: the Dockerfile context's set without the `uses` selection);
- build time cold (empty layer cache: pip install + bytecode) and warm (deps layer cached);
- a code-only change: rebuild + push time, and what was sent.

The base image is the tiny one the tests push (its size is not counted).

    python tests/benchmarks/bench_image.py --quick        # users only, no project-set reference
    python tests/benchmarks/bench_image.py                # every function + the project set
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from eco2.core import funcyaml  # noqa: E402
from eco2.tooling import image, lock  # noqa: E402
from eco2.tooling.registry import Registry  # noqa: E402
from tests.support.oci import REGISTRY, make_project, push_base  # noqa: E402


def mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="users only; no project-set reference")
    parser.add_argument("--functions", nargs="*", help="default: every function in func.yaml")
    parser.add_argument("--chart", action="store_true", help="write a PNG chart into tests/benchmarks/results/")
    args = parser.parse_args()
    sizes: dict[str, float] = {}  # deps layer gzip MB: the functions beside the whole-lock image
    times: dict[str, float] = {}  # build seconds
    with tempfile.TemporaryDirectory(prefix="eco2-bench-image-") as tmp_name:
        tmp = Path(tmp_name)
        namespace = f"eco2bench-{uuid.uuid4().hex[:8]}"
        base = push_base(Registry.for_host(REGISTRY), f"{namespace}/base", tmp)
        root = make_project(tmp, namespace, base)
        project = funcyaml.load(root / "func.yaml")
        names = args.functions or (["users"] if args.quick else sorted(project.functions))
        print(f"registry {REGISTRY}, base {base} (not counted); SOURCE_DATE_EPOCH={image.epoch()}")
        print("function      deps gz/tar MB  pkgs  framework  app KB  cold s  warm s  code-only rebuild+push s (sent)")
        for name in names:
            spec = project.get(name)
            cache = tmp / f"cache-{name}"
            cold = image.build(root, spec, cache=cache, revision="0" * 40)
            image.push(cold)
            started = time.perf_counter()
            warm = image.build(root, spec, cache=cache, revision="0" * 40)
            warm_seconds = time.perf_counter() - started
            assert warm.digest == cold.digest
            service = root / Path(spec.main_path).parent / "service.py"
            target = service if service.exists() else root / spec.main_path
            target.write_text(target.read_text() + f"\n# bench {time.time()}\n")
            started = time.perf_counter()
            changed = image.build(root, spec, cache=cache, revision="0" * 40)
            pushed = image.push(changed)
            code_only = time.perf_counter() - started
            deps, framework, app = cold.layers
            packages = len(lock.read(root, name).pins)
            print(
                f"{name:<12}  {mb(deps.size):>5}/{mb(deps.tar_size):>5}  {packages:>4}  "
                f"{framework.size / 1e3:>6.0f} KB  {app.size / 1e3:>6.0f}  {cold.timings['total']:>6.1f}  "
                f"{warm_seconds:>6.2f}  {code_only:>6.2f} ({len(pushed.sent)} blobs, "
                f"{sum(x.size for x in changed.layers if x.digest in pushed.sent) / 1e3:.0f} KB of layers)"
            )
            sizes[name] = deps.size / 1e6
            times[f"{name} cold"], times[f"{name} warm"] = cold.timings["total"], warm_seconds
            times[f"{name} code-only"] = code_only
        if not args.quick:
            everything = lock.Lock(lock.lock_path(root), lock.lock_path(root).read_text())
            started = time.perf_counter()
            layer, _ = image.deps_layer(everything, tmp / "project-blobs", tmp / "project-cache")
            project_seconds = time.perf_counter() - started
            print(
                f"{'project set':<12}  {mb(layer.size):>5}/{mb(layer.tar_size):>5}  {len(everything.pins):>4}  "
                f"(one image for all functions; {project_seconds:.1f} s cold)"
            )
            sizes = {"baseline: whole lock": layer.size / 1e6, **sizes}
            times = {"baseline: whole lock cold": project_seconds, **times}
    if args.chart:  # --quick has no whole-lock image: the functions alone
        import charts

        panels = {"deps layer, gzip (MB)": sizes, "build time (s)": times}
        print("chart:", charts.write("image", panels))


if __name__ == "__main__":
    main()
