"""Profile rules, free of HTTP: display name, phone normalisation, owned characters, deletion."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from eco2.errors import Unauthorized, Unprocessable
from functions.common.characters import catalog
from functions.common.models import User, UserCharacter
from functions.common.ownership import grant
from functions.users.schemas import OwnedCharacter, Profile, ProfilePatch

_MOBILE = re.compile(r"^01[016789]\d{7,8}$")


def normalise_phone(raw: str) -> str:
    """'01012345678', '010 1234 5678', '+82 10-1234-5678' -> '010-1234-5678'; anything else is 422."""
    digits = re.sub(r"[\s\-().]", "", raw.strip())
    if digits.startswith("+82"):
        digits = "0" + digits[3:]
    if not digits.isdigit() or not _MOBILE.match(digits):
        raise Unprocessable("phone_number: expected a Korean mobile number like 010-1234-5678", "INVALID_PHONE_NUMBER")
    if len(digits) == 10:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"


def _user(session: Session, user_id: str) -> User:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise Unauthorized() from None
    user = session.get(User, key)
    if user is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    return user


def profile(session: Session, user_id: str) -> Profile:
    user = _user(session, user_id)
    return Profile(
        username=user.display_name,
        nickname=user.nickname or user.display_name,
        phone_number=user.phone_number,
        provider=user.last_login_provider,
        last_login_at=user.last_login_at,
    )


def update_profile(session: Session, user_id: str, patch: ProfilePatch) -> Profile:
    if not patch.model_fields_set:
        raise Unprocessable("Send nickname and/or phone_number to change.", "NO_CHANGES_PROVIDED")
    user = _user(session, user_id)
    if "nickname" in patch.model_fields_set:
        nickname = (patch.nickname or "").strip()
        if not nickname:
            raise Unprocessable("nickname: must not be empty", "INVALID_NICKNAME")
        user.nickname = nickname
    if "phone_number" in patch.model_fields_set:
        user.phone_number = normalise_phone(patch.phone_number) if patch.phone_number else None
    session.flush()
    return profile(session, user_id)


def owned_characters(session: Session, user_id: str) -> list[OwnedCharacter]:
    """Owned characters, oldest first; a user who owns none is granted the default one."""
    user = _user(session, user_id)
    rows = list(
        session.scalars(
            select(UserCharacter).where(UserCharacter.user_id == user.id).order_by(UserCharacter.acquired_at)
        )
    )
    if not rows:
        grant(session, user.id, catalog().default.code, source="default")
        rows = list(session.scalars(select(UserCharacter).where(UserCharacter.user_id == user.id)))
    out = []
    for row in rows:
        character = catalog().by_code(row.character_code)
        if character is None:  # retired from the catalogue: keep the row, skip the card
            continue
        out.append(
            OwnedCharacter(
                id=str(row.id),
                code=character.code,
                name=character.name,
                type=character.type,
                dialog=character.dialog,
                acquired_at=row.acquired_at,
            )
        )
    return out


def delete_account(session: Session, user_id: str) -> uuid.UUID:
    user = _user(session, user_id)
    session.execute(delete(User).where(User.id == user.id))
    return user.id
