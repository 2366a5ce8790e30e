"""The character function's HTTP shapes (API.md "character")."""

from __future__ import annotations

from pydantic import BaseModel


class CatalogEntry(BaseModel):
    code: str
    name: str
    type: str
    dialog: str
    match: str
