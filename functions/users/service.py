"""Profile rules, free of HTTP: display name, nickname and phone rules, owned characters, deletion."""

from __future__ import annotations

import re
import unicodedata
import uuid

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from eco2.core.errors import Unauthorized, Unprocessable
from functions.common.characters import catalog
from functions.common.models import DEFAULT_DISPLAY_NAME, User, UserCharacter
from functions.common.ownership import grant
from functions.users.schemas import OwnedCharacter, Profile, ProfilePatch

_MOBILE = re.compile(r"01[016789][0-9]{7,8}", re.ASCII)
_PHONE_SEPARATORS = re.compile(r"[\s\-().\u2010-\u2015\u2212]")  # spaces, hyphens, dashes, minus
# letters that render as nothing (Hangul fillers, the braille blank): a name of only these is blank
_ZWJ = "\u200d"
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Cc control, Cf format (zero-width, bidi overrides and isolates, soft hyphen, BOM), Cs surrogates,
# Co private use, Cn unassigned, Zl/Zp line and paragraph separators
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def normalise_phone(raw: str) -> str:
    """'01012345678', '010 1234 5678', '+82 10-1234-5678', '０１０－１２３４－５６７８' ->
    '010-1234-5678' (NFKC first, so full-width digits and signs count as ASCII); only ASCII digits
    are stored; anything else is 422."""
    digits = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw).strip())
    if digits.startswith("+82"):
        digits = "0" + digits[3:]
    if not _MOBILE.fullmatch(digits):
        raise Unprocessable("phone_number: expected a Korean mobile number like 010-1234-5678", "INVALID_PHONE_NUMBER")
    if len(digits) == 10:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"


def clean_nickname(raw: str) -> str:
    """NFC, trimmed; refuses control and format characters (zero-width, bidi overrides, …) and
    names with no visible character (only spaces, combining marks or Hangul fillers)."""
    nickname = unicodedata.normalize("NFC", raw).strip()
    if not nickname:
        raise Unprocessable("nickname: must not be empty", "INVALID_NICKNAME")
    for index, char in enumerate(nickname):
        if char == _ZWJ and _joins_emoji(nickname, index):
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise Unprocessable(
                f"nickname: control or invisible formatting characters are not allowed (U+{ord(char):04X})",
                "INVALID_NICKNAME",
            )
    if not any(_visible(char) for char in nickname):
        raise Unprocessable("nickname: must contain at least one visible character", "INVALID_NICKNAME")
    return nickname


def _joins_emoji(text: str, index: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👩‍🌾): after a symbol, a skin tone or VS16, before a symbol."""
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return (
        bool(before and after)
        and (unicodedata.category(before) in ("So", "Sk") or before == "\ufe0f")
        and unicodedata.category(after) == "So"
    )


def _visible(char: str) -> bool:
    return unicodedata.category(char)[0] not in "ZMC" and char not in _INVISIBLE_LETTERS


def _user(session: Session, user_id: str) -> User:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise Unauthorized() from None
    user = session.get(User, key)
    if user is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    return user


_USERS = User.__table__
# built once: composing a select costs more per request than executing its cached compiled form
_PROFILE = select(
    _USERS.c.nickname, _USERS.c.name, _USERS.c.phone_number, _USERS.c.last_login_provider, _USERS.c.last_login_at
).where(_USERS.c.id == bindparam("user_id"))


def profile(connection: Connection, user_id: str) -> Profile:
    """The profile in one Core SELECT of five columns: `Context.read()` (autocommit, one round
    trip) for GET /me, the session's own connection after a change. The ORM's `session.get`
    (identity map, instance loading) plus a transaction cost about twice as much per request."""
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise Unauthorized() from None
    row = connection.execute(_PROFILE, {"user_id": key}).first()
    if row is None:
        raise Unauthorized("This account no longer exists; sign in again.", "USER_NOT_FOUND")
    nickname, name, phone_number, provider, last_login_at = row
    display = nickname or name or DEFAULT_DISPLAY_NAME
    return Profile(
        username=display,
        nickname=nickname or display,
        phone_number=phone_number,
        provider=provider,
        last_login_at=last_login_at,
    )


def update_profile(session: Session, user_id: str, patch: ProfilePatch) -> Profile:
    if not patch.model_fields_set:
        raise Unprocessable("Send nickname and/or phone_number to change.", "NO_CHANGES_PROVIDED")
    user = _user(session, user_id)
    if "nickname" in patch.model_fields_set:
        user.nickname = clean_nickname(patch.nickname or "")
    if "phone_number" in patch.model_fields_set:
        user.phone_number = normalise_phone(patch.phone_number) if patch.phone_number else None
    session.flush()
    return profile(session.connection(), user_id)


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
