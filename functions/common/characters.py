"""The character catalogue, loaded once from the project's own data file and validated."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from functions.common.datafiles import load_yaml


@dataclass(frozen=True)
class Character:
    code: str
    name: str
    match: str
    type: str
    dialog: str
    default: bool = False


@dataclass(frozen=True)
class Catalog:
    characters: tuple[Character, ...]

    @property
    def default(self) -> Character:
        return next(c for c in self.characters if c.default)

    def by_code(self, code: str) -> Character | None:
        return next((c for c in self.characters if c.code == code), None)

    def for_category(self, middle: str) -> Character:
        """The character whose match label is the middle category; the default one otherwise."""
        return next((c for c in self.characters if c.match == middle and not c.default), self.default)


@cache
def catalog() -> Catalog:
    text = resources.files("functions.common").joinpath("data/characters.yaml").read_text(encoding="utf-8")
    raw = load_yaml(text)["characters"]
    characters = tuple(Character(**item) for item in raw)
    codes = [c.code for c in characters]
    if len(set(codes)) != len(codes):
        raise ValueError("characters.yaml: duplicate character codes")
    if sum(c.default for c in characters) != 1:
        raise ValueError("characters.yaml: exactly one character must be the default")
    return Catalog(characters)
