"""Character rules free of transport: the catalogue, and a reward turned into ownership."""

from __future__ import annotations

from functions.character.schemas import CatalogEntry
from functions.common.characters import catalog


def catalogue() -> list[CatalogEntry]:
    return [
        CatalogEntry(code=c.code, name=c.name, type=c.type, dialog=c.dialog, match=c.match)
        for c in catalog().characters
    ]
