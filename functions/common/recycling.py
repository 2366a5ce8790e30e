"""The waste domain data the scan, chat and info functions share: taxonomy, situation tags, disposal rules.

Everything is read from the project's own files under `functions/common/data/waste/` on first use and
kept for the life of the process (`functools.cache`); importing this module does no I/O.

    taxonomy().normalise("재활용폐기물", " 플라스틱 ", "요구르트병")  # -> 재활용폐기물 / 플라스틱류 / 요구르트병
    situation_tags()["내용물_있음"].insufficiency                  # -> a sentence, None when neutral
    rules_for("재활용폐기물", "무색페트병")                           # -> Rules | None
    validate()                                                    # -> [] when the data is consistent
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from functions.common.datafiles import load_yaml

RECYCLABLE = "재활용폐기물"
UNCLASSIFIED = "미분류"
_DATA = "data/waste"
_NOISE = re.compile(r"[\s·ㆍ・\-_/]+")
_EXAMPLES = 8


def _clean(text: str | None) -> str:
    """Trim and collapse inner whitespace (the text we keep)."""
    return " ".join((text or "").split())


def _fold(text: str | None) -> str:
    """The comparison form: no whitespace or separators, case-folded ("의류 및 원단" == "의류및원단")."""
    return _NOISE.sub("", text or "").casefold()


# -- taxonomy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Middle:
    name: str
    summary: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Major:
    name: str
    summary: str
    middles: tuple[Middle, ...]
    own_middle: bool  # the major has no middles of its own and uses its name as the middle


@dataclass(frozen=True)
class Classification:
    """A (major, middle, minor) triple whose major and middle are exact taxonomy strings."""

    major: str
    middle: str
    minor: str

    @property
    def unclassified(self) -> bool:
        return self.major == UNCLASSIFIED

    @property
    def recyclable(self) -> bool:
        return self.major == RECYCLABLE


class Taxonomy:
    def __init__(self, majors: tuple[Major, ...]) -> None:
        self._majors = majors
        self._by_name = {m.name: m for m in majors}

    def majors(self) -> list[str]:
        """Every major, in taxonomy order (미분류 last)."""
        return [m.name for m in self._majors]

    def all_middles(self) -> list[str]:
        """Every middle string a classifier may answer, in taxonomy order (a major without middles
        contributes its own name)."""
        return [m.name for major in self._majors for m in major.middles]

    def recyclable_middles(self) -> list[str]:
        return self.middles(RECYCLABLE)

    def entries(self) -> tuple[Major, ...]:
        return self._majors

    def middles(self, major: str) -> list[str]:
        """The middle categories of `major` (the major itself when it has none); [] when unknown."""
        found = self._by_name.get(major)
        return [] if found is None else [m.name for m in found.middles]

    def items(self, major: str, middle: str) -> list[str]:
        """The items of an exact (major, middle) pair; [] when unknown."""
        found = self._middle(major, middle)
        return [] if found is None else list(found.items)

    def summary(self, major: str, middle: str | None = None) -> str | None:
        found = self._by_name.get(major)
        if found is None:
            return None
        if middle is None:
            return found.summary
        entry = self._middle(major, middle)
        return None if entry is None else entry.summary

    def is_valid(self, major: str, middle: str) -> bool:
        """True only for exact taxonomy strings."""
        return self._middle(major, middle) is not None

    def _middle(self, major: str, middle: str) -> Middle | None:
        found = self._by_name.get(major)
        if found is None:
            return None
        return next((m for m in found.middles if m.name == middle), None)

    # -- normalising what a classifier answered ------------------------------------------------
    def normalise(self, major: str | None, middle: str | None, minor: str | None = None) -> Classification:
        """Map a classifier's answer onto exact taxonomy strings; anything ambiguous becomes 미분류.

        Tolerated noise: surrounding/inner whitespace and separators ("의류 및 원단"), a missing or
        extra "류" ("플라스틱" → 플라스틱류, "금속" → 금속류), and a unique prefix of at least two
        characters ("유리" → 유리병, "음식물" → 음식물류폐기물). Then:

        - a known major with a middle of its own → that pair;
        - a major without middles (일반종량제폐기물, 대형폐기물, …) → (major, major): the major
          decides, whatever the middle said (e.g. "플라스틱류" under 일반종량제폐기물 means plastic
          that is not recyclable);
        - 재활용폐기물 with a missing/unknown middle → the middle whose items contain `minor` (or,
          failing that, the middle text itself: "우유팩") exactly, when only one does; else 미분류;
        - 재활용폐기물 with a middle that names another major (e.g. 음식물류폐기물) → 미분류
          (contradiction);
        - an empty major with a middle that is a recyclable middle → corrected to
          (재활용폐기물, middle); with a middle that names a major → (that major, that major);
        - an unknown major, or 미분류 itself → 미분류 (no guessing from the middle);
        - anything else → (미분류, 미분류).

        `minor` is free text: kept (trimmed), never validated.
        """
        minor_text = _clean(minor)
        major_name = self._resolve(major, tuple(self.majors()))
        shared = tuple(m for entry in self._majors if not entry.own_middle for m in self.middles(entry.name))
        elsewhere = tuple(m for m in shared if m not in self.middles(major_name or "")) + tuple(
            m for m in self.majors() if m != major_name
        )
        if major_name is not None and major_name != UNCLASSIFIED:
            entry = self._by_name[major_name]
            if entry.own_middle:
                return Classification(major_name, major_name, minor_text)
            middle_name = self._resolve(middle, tuple(self.middles(major_name)))
            if middle_name is None:
                if self._resolve(middle, elsewhere) is not None:
                    return self.unclassified(minor_text)  # the middle belongs to another major: contradiction
                middle_name = self._middle_from_item(major_name, minor_text) or self._middle_from_item(
                    major_name, _clean(middle)
                )
            if middle_name is not None:
                return Classification(major_name, middle_name, minor_text)
            return self.unclassified(minor_text)
        if _fold(major):
            return self.unclassified(minor_text)  # 미분류, or a major we do not know: do not guess
        # no major at all: a middle may still say it all
        middle_name = self._resolve(middle, shared)
        if middle_name is not None:
            owner = next(e.name for e in self._majors if middle_name in self.middles(e.name))
            return Classification(owner, middle_name, minor_text)
        named_major = self._resolve(middle, tuple(self.majors()))
        if named_major is not None and named_major != UNCLASSIFIED:
            return Classification(named_major, named_major, minor_text)
        return self.unclassified(minor_text)

    @staticmethod
    def unclassified(minor: str = "") -> Classification:
        return Classification(UNCLASSIFIED, UNCLASSIFIED, minor)

    @staticmethod
    def _resolve(text: str | None, candidates: tuple[str, ...]) -> str | None:
        key = _fold(text)
        if not key:
            return None
        for name in candidates:
            if _fold(name) == key:
                return name
        relaxed = [n for n in candidates if _fold(n) == key + "류" or _fold(n) + "류" == key]
        if len(relaxed) == 1:
            return relaxed[0]
        if len(key) >= 2:
            prefixed = [n for n in candidates if _fold(n).startswith(key)]
            if len(prefixed) == 1:
                return prefixed[0]
        return None

    def _middle_from_item(self, major: str, minor: str) -> str | None:
        key = _fold(minor)
        if not key:
            return None
        owners = [m for m in self.middles(major) if any(_fold(i) == key for i in self.items(major, m))]
        return owners[0] if len(owners) == 1 else None


# -- situation tags ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    id: str
    group: str
    insufficiency: str | None  # what the user still has to do; None when the tag is neutral or good


# -- disposal rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    key: str
    category: str  # the major category
    middle: str
    name: str
    targets: list[str]
    common_steps: list[str]
    item_steps: dict[str, list[str]]
    excluded: dict[str, str]  # item → where it goes instead
    source: str = ""  # the data file it came from

    def steps(self) -> list[str]:
        """Every step in order: the common ones, then each item group's."""
        return [*self.common_steps, *(s for group in self.item_steps.values() for s in group)]


# -- loading -----------------------------------------------------------------------------------------


def _root() -> Traversable:
    return resources.files("functions.common").joinpath(_DATA)


def _text_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise ValueError(f"{where}: expected a list of non-empty strings")
    return [_clean(x) for x in raw]


@cache
def taxonomy() -> Taxonomy:
    raw = load_yaml(_root().joinpath("taxonomy.yaml").read_text(encoding="utf-8"))
    majors: list[Major] = []
    for item in raw["majors"]:
        name = _clean(item["name"])
        summary = _clean(item["summary"])
        if "middles" in item:
            middles = tuple(
                Middle(
                    _clean(m["name"]),
                    _clean(m["summary"]),
                    tuple(_text_list(m.get("items") or [], f"taxonomy.yaml: {name}/{m['name']}")),
                )
                for m in item["middles"]
            )
            majors.append(Major(name, summary, middles, own_middle=False))
        else:
            items = tuple(_text_list(item.get("items") or [], f"taxonomy.yaml: {name}"))
            majors.append(Major(name, summary, (Middle(name, summary, items),), own_middle=True))
    return Taxonomy(tuple(majors))


@cache
def _tag_list() -> tuple[Tag, ...]:
    raw = load_yaml(_root().joinpath("situation_tags.yaml").read_text(encoding="utf-8"))
    tags: list[Tag] = []
    for group in raw["groups"]:
        for item in group["tags"]:
            sentence = item.get("insufficiency")
            if sentence is not None and not (isinstance(sentence, str) and sentence.strip()):
                raise ValueError(f"situation_tags.yaml: {item.get('id')}: insufficiency must be a sentence or null")
            tags.append(Tag(str(item["id"]).strip(), str(group["id"]), _clean(sentence) if sentence else None))
    return tuple(tags)


def situation_tags() -> dict[str, Tag]:
    """Every tag by id (a fresh dict; the tags themselves are shared and immutable)."""
    return {tag.id: tag for tag in _tag_list()}


def insufficiencies(tag_ids: list[str] | tuple[str, ...]) -> list[str]:
    """The sentences of the tags that mean something is still to be done, in order, without repeats.
    Unknown tag ids are ignored."""
    tags = situation_tags()
    out: list[str] = []
    for tag_id in tag_ids:
        tag = tags.get(_clean(tag_id))
        if tag is not None and tag.insufficiency is not None and tag.insufficiency not in out:
            out.append(tag.insufficiency)
    return out


def _read_rules(file: Traversable) -> Rules:
    raw = json.loads(file.read_text(encoding="utf-8"))
    where = f"rules/{file.name}"
    item_steps = raw.get("item_steps") or {}
    excluded = raw.get("excluded") or {}
    if not isinstance(item_steps, dict) or not isinstance(excluded, dict):
        raise ValueError(f"{where}: item_steps and excluded must be objects")
    if not all(isinstance(v, str) and v.strip() for v in excluded.values()):
        raise ValueError(f"{where}: every excluded item needs where it goes instead")
    return Rules(
        key=_clean(raw["key"]),
        category=_clean(raw["category"]),
        middle=_clean(raw["middle"]),
        name=_clean(raw.get("name") or raw["middle"]),
        targets=_text_list(raw.get("targets") or [], f"{where}: targets"),
        common_steps=_text_list(raw.get("common_steps") or [], f"{where}: common_steps"),
        item_steps={_clean(k): _text_list(v, f"{where}: item_steps.{k}") for k, v in item_steps.items()},
        excluded={_clean(k): _clean(v) for k, v in excluded.items()},
        source=file.name,
    )


@cache
def _rules_list() -> tuple[Rules, ...]:
    files = sorted((f for f in _root().joinpath("rules").iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    return tuple(_read_rules(f) for f in files)


@cache
def _rules_index() -> dict[tuple[str, str], Rules]:
    return {(r.category, r.middle): r for r in _rules_list()}


def rules_for(major: str, middle: str) -> Rules | None:
    """The disposal rules of an exact (major, middle) pair; None when there are none (e.g. 미분류).
    Returns a copy, so a caller may not change what the next caller sees."""
    found = _rules_index().get((major, middle))
    if found is None:
        return None
    return Rules(
        key=found.key,
        category=found.category,
        middle=found.middle,
        name=found.name,
        targets=list(found.targets),
        common_steps=list(found.common_steps),
        item_steps={k: list(v) for k, v in found.item_steps.items()},
        excluded=dict(found.excluded),
        source=found.source,
    )


def all_rules() -> tuple[Rules, ...]:
    return _rules_list()


# -- the categories endpoint -------------------------------------------------------------------------


def categories() -> list[dict[str, Any]]:
    """`GET /api/v1/scan/categories`: every category a scan can land on (미분류 left out), in taxonomy
    order: [{"major", "middle", "summary", "examples": [up to 8 item names]}]."""
    out: list[dict[str, Any]] = []
    for major in taxonomy().entries():
        if major.name == UNCLASSIFIED:
            continue
        for middle in major.middles:
            out.append(
                {
                    "major": major.name,
                    "middle": middle.name,
                    "summary": middle.summary,
                    "examples": list(middle.items[:_EXAMPLES]),
                }
            )
    return out


# -- consistency -------------------------------------------------------------------------------------


def validate() -> list[str]:
    """Problems in the shipped data (empty when fine). A startup hook may call it and refuse to serve."""
    try:
        tax = taxonomy()
        tags = _tag_list()
        rules = _rules_list()
    except Exception as exc:  # a file that does not even load is one problem, reported, not raised
        return [f"waste data does not load: {type(exc).__name__}: {exc}"]
    from functions.common.characters import catalog

    problems: list[str] = []
    if UNCLASSIFIED not in tax.majors():
        problems.append(f"taxonomy: the fallback major {UNCLASSIFIED} is missing")
    if RECYCLABLE not in tax.majors():
        problems.append(f"taxonomy: the major {RECYCLABLE} is missing")
    for name, count in Counter(tax.majors()).items():
        if count > 1:
            problems.append(f"taxonomy: major {name} is declared {count} times")
    for major in tax.entries():
        if not major.summary:
            problems.append(f"taxonomy: {major.name} has no summary")
        for name, count in Counter(m.name for m in major.middles).items():
            if count > 1:
                problems.append(f"taxonomy: middle {major.name}/{name} is declared {count} times")
        for middle in major.middles:
            if not middle.summary:
                problems.append(f"taxonomy: {major.name}/{middle.name} has no summary")
            for item, count in Counter(middle.items).items():
                if count > 1:
                    problems.append(f"taxonomy: item {item} is listed {count} times in {major.name}/{middle.name}")

    index: dict[tuple[str, str], list[Rules]] = {}
    for r in rules:
        index.setdefault((r.category, r.middle), []).append(r)
        if not tax.is_valid(r.category, r.middle):
            problems.append(f"rules/{r.source}: ({r.category}, {r.middle}) is not in the taxonomy")
        if not r.steps():
            problems.append(f"rules/{r.source}: no disposal steps")
    for pair, found in index.items():
        if len(found) > 1:
            problems.append(f"rules: {pair} has {len(found)} files: {', '.join(r.source for r in found)}")
    for name, count in Counter(r.key for r in rules).items():
        if count > 1:
            problems.append(f"rules: key {name} is used by {count} files")
    for major in tax.entries():
        if major.name == UNCLASSIFIED:
            continue
        for middle in major.middles:
            if (major.name, middle.name) not in index:
                problems.append(f"rules: no rules file for ({major.name}, {middle.name})")

    matches = {c.match for c in catalog().characters if not c.default}
    for middle_name in tax.recyclable_middles():
        if middle_name not in matches:
            problems.append(f"characters: no character matches the recyclable middle {middle_name}")
    for extra in sorted(matches - set(tax.recyclable_middles())):
        problems.append(f"characters: a character matches {extra}, which is not a recyclable middle")

    for tag_id, count in Counter(t.id for t in tags).items():
        if count > 1:
            problems.append(f"situation_tags: tag {tag_id} is declared {count} times")
    return problems
