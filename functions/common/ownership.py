"""Character ownership: one row per (user, character), granted idempotently."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from eco2.core.db import insert_new
from functions.common.models import UserCharacter, utcnow


def grant(session: Session, user_id: uuid.UUID, code: str, source: str) -> bool:
    """True when a row was added; False when the user already owned the character (also when a
    concurrent grant won the race: one INSERT ... ON CONFLICT DO NOTHING either way)."""
    values = {"id": uuid.uuid4(), "user_id": user_id, "character_code": code, "source": source, "acquired_at": utcnow()}
    return insert_new(session, UserCharacter.__table__, values)  # type: ignore[arg-type]


def grant_from_event(session: Session, user_id: str, code: str, source: str) -> bool:
    """A grant carried by an event: True when the user now owns the character for the first time;
    False for a repeat or a user who has since deleted the account. An unknown character or a
    malformed user id can never succeed, so it is a 400 (dead-lettered, not retried)."""
    from eco2.core.errors import BadRequest
    from functions.common.characters import catalog
    from functions.common.models import User

    if catalog().by_code(code) is None:
        raise BadRequest(f"{code} is not a character in the catalogue", "UNKNOWN_CHARACTER")
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise BadRequest("user_id is not a UUID", "INVALID_USER_ID") from None
    if session.get(User, key) is None:
        return False
    return grant(session, key, code, source=source)
