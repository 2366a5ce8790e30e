"""The first-party import graph of a function: which project files its image holds.

Starting from the function's `main.py` and its module (`functions.<name>.app`, named in func.yaml
and imported by string), every `import` / `from ... import` anywhere in a reached file is followed
when it names a project module (`eco2.*` under platform/, `functions.*`, `eventing.*`), including
the lazy imports inside functions (the project imports clients lazily on purpose). Third-party
imports are the lock's business, not the graph's.

A reached package also brings its data: the files in its folder that are not Python modules, and
its plain sub-folders (no `__init__.py`, e.g. `data/`), read with `importlib.resources`. A
sub-package is included only when something imports it (`functions/common/migrations` is run by
`eco2 migrate`, not by a function).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from eco2.core.funcyaml import FunctionSpec

# import name prefix -> folder holding it, relative to the project root
SOURCE_ROOTS = {"eco2": Path("platform"), "functions": Path("."), "eventing": Path(".")}
FRAMEWORK = ("eco2", "eventing")
SERVER = "eco2.serving.server"
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".md")
SKIPPED_NAMES = ("__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class SourceSet:
    """The project files of one function's image, by layer, as paths relative to the root."""

    framework: tuple[str, ...]
    app: tuple[str, ...]
    modules: tuple[str, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted((*self.framework, *self.app)))


def _module_file(root: Path, module: str) -> Path | None:
    top = module.split(".")[0]
    if top not in SOURCE_ROOTS:
        return None
    base = root / SOURCE_ROOTS[top] / Path(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


_parsed: dict[tuple[str, str, bytes], frozenset[str]] = {}


def _imports(path: Path, module: str) -> set[str]:
    """Module names imported anywhere in `path` (absolute, with relative imports resolved)."""
    source = path.read_bytes()
    key = (str(path), module, hashlib.sha256(source).digest())
    if key not in _parsed:
        _parsed[key] = frozenset(_parse_imports(source, path, module))
    return set(_parsed[key])


def _parse_imports(source: bytes, path: Path, module: str) -> set[str]:
    tree = ast.parse(source, filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target:
                found.add(target)
                # `from pkg import sub` may name a sub-module
                found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def reached_modules(root: Path, entries: list[str]) -> dict[str, Path]:
    """Every project module reachable from `entries`, with its file (parents' `__init__` included)."""
    seen: dict[str, Path] = {}
    queue = list(entries)
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        path = _module_file(root, module)
        if path is None:
            continue
        seen[module] = path
        parts = module.split(".")
        queue.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        queue.extend(_imports(path, module) - seen.keys())
    return seen


def _package_data(folder: Path) -> list[Path]:
    out: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name in SKIPPED_NAMES or child.name.startswith("."):
            continue
        if child.is_dir():
            if not (child / "__init__.py").exists():
                out.extend(p for p in sorted(child.rglob("*")) if p.is_file() and _wanted(p))
        elif child.suffix != ".py" and _wanted(child):
            out.append(child)
    return out


def _wanted(path: Path) -> bool:
    return path.suffix not in SKIPPED_SUFFIXES and not any(part in SKIPPED_NAMES for part in path.parts)


def sources(root: Path, spec: FunctionSpec) -> SourceSet:
    """The project files `spec`'s image holds: the framework layer and the function's own layer."""
    main = spec.main_path
    module = spec.module.split(":")[0]
    # the container's command (`python -m eco2.serving.server <main.py>`), the module func.yaml names, main.py's imports
    entries = [SERVER, module, *(_imports(root / main, main[:-3].replace("/", ".")))]
    modules = reached_modules(root, entries)
    files: set[Path] = {root / main, *modules.values()}
    for path in modules.values():
        if path.name == "__init__.py":
            files.update(_package_data(path.parent))
    framework: list[str] = []
    app: list[str] = []
    for path in sorted(files):
        relative = path.relative_to(root).as_posix()
        top = relative.split("/")[1] if relative.startswith("platform/") else relative.split("/")[0]
        (framework if top in FRAMEWORK else app).append(relative)
    return SourceSet(framework=tuple(framework), app=tuple(app), modules=tuple(sorted(modules)))
