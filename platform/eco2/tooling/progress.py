"""Progress of long work on the command line: which step runs and how long it took, and a bar where
the length is known (tqdm, from the `app` extra; function images do without it, and then the bar is
only its closing line).

    with step("users: push"):
        ...                                  # "users: push ..." then "users: push done in 1.2s"
    with bar(760, "collection points") as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


@contextmanager
def step(label: str, out: TextIO | None = None) -> Iterator[None]:
    """Say that `label` starts, then that it is done (or failed) and how long it took."""
    stream = out or sys.stdout
    print(f"{label} ...", file=stream, flush=True)
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        print(f"{label} failed after {time.perf_counter() - started:.1f}s", file=stream, flush=True)
        raise
    print(f"{label} done in {time.perf_counter() - started:.1f}s", file=stream, flush=True)


@contextmanager
def bar(total: int, label: str, out: TextIO | None = None, *, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress bar of `total` units (on stderr); yields `advance(n)`. Closes with the count and time.
    `quiet`: nothing is shown (the caller's output is not for a person)."""
    stream = out or sys.stderr
    started = time.perf_counter()
    done = 0
    shown: Any = None
    if not quiet and total:
        try:
            from tqdm import tqdm
        except ImportError:  # without tqdm: only the closing line
            pass
        else:
            shown = tqdm(total=total, desc=label, file=stream, leave=False, dynamic_ncols=True)

    def advance(n: int = 1) -> None:
        nonlocal done
        done += n
        if shown is not None:
            shown.update(n)

    try:
        yield advance
    finally:
        if shown is not None:
            shown.close()
        if not quiet:
            print(f"{label}: {done}/{total} in {time.perf_counter() - started:.1f}s", file=stream, flush=True)
