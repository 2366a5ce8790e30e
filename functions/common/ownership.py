"""Character ownership: one row per (user, character), granted idempotently."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from functions.common.models import UserCharacter


def grant(session: Session, user_id: uuid.UUID, code: str, source: str) -> bool:
    """True when a row was added; False when the user already owned the character."""
    exists = session.scalar(
        select(UserCharacter.id).where(UserCharacter.user_id == user_id, UserCharacter.character_code == code)
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(UserCharacter(user_id=user_id, character_code=code, source=source))
    except IntegrityError:  # a concurrent grant won the race: same outcome
        return False
    return True
