"""Which waste item a user's words name: everyday words (data/keywords.yaml) and the taxonomy's own
item names, matched without spaces, longest match first. Shared by the offline scan classifier and
the chat's grounding (which disposal rules a question needs).

    find_item("다 마신 생수병 어떻게 버려?")  # -> Classification(재활용폐기물, 무색페트병, 생수병)
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from functions.common import recycling
from functions.common.datafiles import load_yaml


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@functools.cache
def keywords() -> tuple[tuple[str, str, str], ...]:
    """(word, major, middle), longest words first, from data/keywords.yaml."""
    text = resources.files("functions.common").joinpath("data/keywords.yaml").read_text(encoding="utf-8")
    out = [(_squash(word), entry["major"], entry["middle"]) for entry in load_yaml(text) for word in entry["words"]]
    return tuple(sorted(out, key=lambda w: -len(w[0])))


@functools.cache
def _candidates() -> tuple[tuple[str, str, str], ...]:
    tax = recycling.taxonomy()
    out = list(keywords())
    for major in tax.majors():
        for middle in tax.middles(major):
            for name in [middle, *tax.items(major, middle)]:
                out.append((re.sub(r"\(.*?\)|\s+", "", name), major, middle))
    return tuple(w for w in out if w[0])


def find_item(text: str | None) -> recycling.Classification | None:
    """The item the text names (the longest word found), on exact taxonomy strings; None when none."""
    squashed = _squash(text or "")
    found = [c for c in _candidates() if c[0] in squashed]
    if not found:
        return None
    word, major, middle = max(found, key=lambda f: len(f[0]))
    return recycling.taxonomy().normalise(major, middle, word)
