"""Which clients a function's code reaches for, read from its source: `eco2 validate` compares them
with `Function(uses=...)`, so a missing `uses` fails the build instead of a request.

What counts as reaching for a client, anywhere in the function's own package: `ctx.db`,
`ctx.redis`, `ctx.publish(...)`, and `ctx.clients.<db|redis|tokens|events|s3|openai>` (whatever
the context variable is called, as long as it is annotated `Context` or named `ctx`). Shared code
in functions/common receives its clients as arguments, so it is checked where it is called.
"""

from __future__ import annotations

import ast
from pathlib import Path

_CONTEXT_ATTRIBUTES = {"db": "db", "redis": "redis", "publish": "events"}
_CLIENT_ATTRIBUTES = {"db": "db", "redis": "redis", "tokens": "jwt", "events": "events", "s3": "s3", "openai": "openai"}


def _context_names(tree: ast.AST) -> set[str]:
    names = {"ctx"}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotation = ast.unparse(node.annotation)
            if annotation.split(".")[-1].strip("'\"") == "Context":
                names.add(node.arg)
    return names


def reached(source: str, filename: str = "<source>") -> dict[str, int]:
    """{use: first line number} for every client the code reaches through a Context."""
    tree = ast.parse(source, filename)
    contexts = _context_names(tree)
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Name | ast.Attribute):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in contexts and node.attr in _CONTEXT_ATTRIBUTES:
            found.setdefault(_CONTEXT_ATTRIBUTES[node.attr], node.lineno)
        elif (
            isinstance(base, ast.Attribute)
            and base.attr == "clients"
            and isinstance(base.value, ast.Name)
            and base.value.id in contexts
            and node.attr in _CLIENT_ATTRIBUTES
        ):
            found.setdefault(_CLIENT_ATTRIBUTES[node.attr], node.lineno)
    return found


def undeclared(package: Path, uses: tuple[str, ...]) -> list[str]:
    """`file:line: uses 'x' without declaring it` for each client reached but not declared."""
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        for use, line in sorted(reached(path.read_text(encoding="utf-8"), str(path)).items()):
            if use not in uses:
                problems.append(f"{path}:{line}: reaches the {use!r} client, but the function does not declare it")
    return problems
