"""Recycling information, shared by the app (the info function) and the chatbot: categories with
their disposal steps, an item lookup by everyday words, and the FAQ.

Everything comes from the project's data: the disposal rules and taxonomy
(functions/common/recycling.py), the everyday-words lexicon the offline classifier uses
(functions/common/lexicon.py) and this function's FAQ (data/faq.yaml). Loaded on first
use and kept; no Flask here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from eco2.core.errors import NotFound
from functions.common import lexicon, recycling
from functions.common.datafiles import load_yaml
from functions.info.schemas import (
    Faq,
    ItemMatch,
    RecyclingCategory,
    RecyclingCategoryDetail,
)

_FOLD = re.compile(r"[\s·ㆍ・\-_/()]+")


def _fold(text: str) -> str:
    return _FOLD.sub("", text).casefold()


def _category_id(rules: recycling.Rules) -> str:
    return rules.source.removesuffix(".json")


@cache
def _rules_by_id() -> dict[str, recycling.Rules]:
    return {_category_id(r): r for r in recycling.all_rules()}


@cache
def _id_by_pair() -> dict[tuple[str, str], str]:
    return {(r.category, r.middle): cid for cid, r in _rules_by_id().items()}


def _summary(rules: recycling.Rules) -> tuple[str, list[str]]:
    tax = recycling.taxonomy()
    summary = tax.summary(rules.category, rules.middle) or tax.summary(rules.category) or ""
    return summary, tax.items(rules.category, rules.middle)[:8] or list(rules.targets[:8])


def _card(category_id: str, rules: recycling.Rules) -> RecyclingCategory:
    summary, examples = _summary(rules)
    return RecyclingCategory(
        id=category_id,
        major=rules.category,
        middle=rules.middle,
        name=rules.name,
        summary=summary,
        examples=examples,
        steps=list(rules.common_steps) or [s for group in rules.item_steps.values() for s in group],
    )


def categories() -> list[RecyclingCategory]:
    """Every category with disposal rules, in taxonomy order."""
    order = {(major, middle): i for i, (major, middle) in enumerate(_taxonomy_pairs())}
    items = sorted(_rules_by_id().items(), key=lambda kv: order.get((kv[1].category, kv[1].middle), len(order)))
    return [_card(cid, rules) for cid, rules in items]


def _taxonomy_pairs() -> list[tuple[str, str]]:
    tax = recycling.taxonomy()
    return [(major, middle) for major in tax.majors() for middle in tax.middles(major)]


def category(category_id: str) -> RecyclingCategoryDetail:
    rules = _rules_by_id().get(category_id)
    if rules is None:
        raise NotFound(f"No recycling category {category_id!r}.", "CATEGORY_NOT_FOUND")
    card = _card(category_id, rules)
    return RecyclingCategoryDetail(
        **card.model_dump(),
        targets=list(rules.targets),
        item_steps={k: list(v) for k, v in rules.item_steps.items()},
        excluded=dict(rules.excluded),
        faq=[f.id for f in _faqs() if category_id in f.categories],
    )


# -- item lookup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Word:
    word: str
    key: str
    major: str
    middle: str
    note: str | None = None


@cache
def _lexicon() -> tuple[_Word, ...]:
    """Everyday words (the offline classifier's), the taxonomy's item names, the rules' targets,
    and each rule's exceptions (pointing where they go instead), longest first."""
    words = [_Word(word, _fold(word), major, middle) for word, major, middle in lexicon.keywords()]
    tax = recycling.taxonomy()
    for major, middle in _taxonomy_pairs():
        for name in [middle, *tax.items(major, middle)]:
            words.append(_Word(name, _fold(name), major, middle))
    for rules in recycling.all_rules():
        for target in rules.targets:
            words.append(_Word(target, _fold(target), rules.category, rules.middle))
        for item, instead in rules.excluded.items():
            words.append(_Word(item, _fold(item), rules.category, rules.middle, note=instead))
    unique = {(w.key, w.major, w.middle, w.note): w for w in words if w.key and w.major != recycling.UNCLASSIFIED}
    return tuple(sorted(unique.values(), key=lambda w: -len(w.key)))


def lookup(query: str, limit: int = 5) -> list[ItemMatch]:
    """Categories for everyday words: a known word inside the query (longest first), else known
    words that start with the query; one match per category, at most `limit`."""
    key = _fold(query)
    if not key:
        return []
    hits = [w for w in _lexicon() if w.key in key]
    if not hits and len(key) >= 2:
        hits = [w for w in _lexicon() if w.key.startswith(key)]
    plain = {w.key for w in hits if w.note is None}
    hits = [w for w in hits if w.note is None or w.key not in plain]  # an exception only when nothing else says
    out: list[ItemMatch] = []
    seen: set[str] = set()
    for word in hits:
        category_id = _id_by_pair().get((word.major, word.middle))
        if category_id is None or category_id in seen:
            continue
        seen.add(category_id)
        rules = _rules_by_id()[category_id]
        steps = list(rules.item_steps.get(word.word, [])) or list(rules.common_steps)
        out.append(
            ItemMatch(
                word=word.word,
                category_id=category_id,
                major=word.major,
                middle=word.middle,
                steps=steps,
                note=None if word.note is None else f"{word.word}: {word.note}",
            )
        )
        if len(out) >= limit:
            break
    return out


# -- FAQ ---------------------------------------------------------------------------------------------


@cache
def _faqs() -> tuple[Faq, ...]:
    text = resources.files("functions.info").joinpath("data/faq.yaml").read_text(encoding="utf-8")
    return tuple(Faq.model_validate(entry) for entry in load_yaml(text)["faqs"])


def faqs(query: str | None = None, category_id: str | None = None) -> list[Faq]:
    """The FAQ, optionally only the entries about a category or mentioning the words of `query`."""
    out = list(_faqs())
    if category_id:
        out = [f for f in out if category_id in f.categories]
    if query and _fold(query):
        words = [_fold(w) for w in query.split() if _fold(w)]
        out = [f for f in out if all(w in _fold(" ".join([f.question, f.answer, *f.tags])) for w in words)]
    return out


def validate() -> list[str]:
    """Problems in the FAQ and lexicon against the rules (empty when fine)."""
    problems = []
    ids = set(_rules_by_id())
    seen: set[str] = set()
    for faq in _faqs():
        if faq.id in seen:
            problems.append(f"faq.yaml: {faq.id}: duplicate id")
        seen.add(faq.id)
        for cid in faq.categories:
            if cid not in ids:
                problems.append(f"faq.yaml: {faq.id}: unknown category {cid!r}")
    for word in _lexicon():
        if (word.major, word.middle) not in _id_by_pair():
            problems.append(f"lexicon: {word.word}: no disposal rules for {word.major}/{word.middle}")
    return problems
