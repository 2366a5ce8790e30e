"""Character rules free of transport: the catalogue, and a reward turned into ownership."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from eco2.errors import BadRequest
from functions.character.schemas import CatalogEntry
from functions.common.characters import catalog
from functions.common.models import User
from functions.common.ownership import grant


def catalogue() -> list[CatalogEntry]:
    return [
        CatalogEntry(code=c.code, name=c.name, type=c.type, dialog=c.dialog, match=c.match)
        for c in catalog().characters
    ]


def grant_reward(session: Session, user_id: str, code: str) -> bool:
    """True when the user now owns the character for the first time; False for a repeat or a
    user who no longer exists. An unknown character or user id is a 400 (never retried)."""
    if catalog().by_code(code) is None:
        raise BadRequest(f"{code} is not a character in the catalogue", "UNKNOWN_CHARACTER")
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise BadRequest("user_id is not a UUID", "INVALID_USER_ID") from None
    if session.get(User, key) is None:
        return False
    return grant(session, key, code, source="scan")
