"""users on real PostgreSQL and Redis: profile, PATCH validation, characters, deletion."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest

from eco2.serving.testing import FunctionClient
from functions.common.models import User


def make_user(client: FunctionClient, **fields: object) -> tuple[str, str]:
    """A user row plus an access token for it."""
    session = client.runtime.clients.db.session()
    user = User(**({"nickname": "분리수거왕", "last_login_provider": "kakao"} | fields))
    session.add(user)
    session.commit()
    token = client.runtime.clients.tokens.issue(str(user.id), "access", "kakao").token
    session.close()
    return str(user.id), token


@pytest.fixture
def users(function_client: Callable[..., FunctionClient]) -> FunctionClient:
    return function_client("users")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_profile_shape(users: FunctionClient) -> None:
    _, token = make_user(users, phone_number="010-1111-2222")
    users.set_cookie("s_access", token)
    body = users.get("/api/v1/users/me").json
    assert set(body) >= {"username", "nickname", "phone_number", "provider", "last_login_at"}
    assert body["username"] == "분리수거왕" and body["phone_number"] == "010-1111-2222"


def test_username_is_never_empty(users: FunctionClient) -> None:
    _, token = make_user(users, nickname=None, name=None)
    assert users.get("/api/v1/users/me", headers=auth(token)).json["username"] == "사용자"
    _, token = make_user(users, nickname=None, name="김이코")
    assert users.get("/api/v1/users/me", headers=auth(token)).json["username"] == "김이코"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("01012345678", "010-1234-5678"),
        ("010 1234 5678", "010-1234-5678"),
        ("+82 10-9876-5432", "010-9876-5432"),
        ("0111234567", "011-123-4567"),
        # issue 19 #8: NFKC first, so full-width digits and signs are stored as ASCII
        ("010-１２３４-５６７８", "010-1234-5678"),
        ("０１０１２３４５６７８", "010-1234-5678"),
        ("＋８２ １０－９８７６－５４３２", "010-9876-5432"),
        ("010\u20131234\u20135678", "010-1234-5678"),  # en dashes
        ("010\u30001234\u30005678", "010-1234-5678"),  # ideographic spaces
    ],
)
def test_phone_is_normalised(users: FunctionClient, raw: str, stored: str) -> None:
    _, token = make_user(users)
    response = users.patch("/api/v1/users/me", json={"phone_number": raw}, headers=auth(token))
    assert response.status_code == 200 and response.json["phone_number"] == stored


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "NO_CHANGES_PROVIDED"),
        ({"phone_number": "12345"}, "INVALID_PHONE_NUMBER"),
        ({"nickname": ""}, "VALIDATION_ERROR"),
        ({"nickname": "x" * 121}, "VALIDATION_ERROR"),
        ({"nickname": "   "}, "INVALID_NICKNAME"),
        ({"email": "a@b.c"}, "VALIDATION_ERROR"),
    ],
)
def test_patch_validation(users: FunctionClient, body: dict[str, str], code: str) -> None:
    _, token = make_user(users)
    response = users.patch("/api/v1/users/me", json=body, headers=auth(token))
    assert response.status_code == 422
    assert response.json["code"] == code and set(response.json) == {"detail", "code"}


@pytest.mark.parametrize(
    "phone",
    [
        "010\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits are digits, not ASCII
        "\u0966\u0967\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e",  # Devanagari
        "010-1234-5678\u200b",
        "010-1234-5678x",
        "010-1234-5678; DROP",
        "82-10-1234-5678",
    ],
)
def test_phone_other_digits_and_characters_are_refused(users: FunctionClient, clean_db: str, phone: str) -> None:
    user_id, token = make_user(users, phone_number="010-1111-2222")
    response = users.patch("/api/v1/users/me", json={"phone_number": phone}, headers=auth(token))
    assert response.status_code == 422 and response.json["code"] == "INVALID_PHONE_NUMBER"
    with psycopg.connect(clean_db) as conn:
        stored = conn.execute("SELECT phone_number FROM users WHERE id = %s", (uuid.UUID(user_id),)).fetchone()
    assert stored == ("010-1111-2222",)


@pytest.mark.parametrize(
    "nickname",
    [
        "이코\u200b",  # zero-width space
        "\u202eevil",  # right-to-left override
        "abc\u2066def\u2069",  # bidi isolates
        "\ufeff이코",  # byte order mark
        "이\u00ad코",  # soft hyphen
        "이코\x00",
        "이코\x1b[31m",
        "두\n줄",
        "탭\t뒤",
        "\u200d",  # a joiner on its own
        "a\u2028b",  # line separator
        "\u3164",  # Hangul filler: renders as nothing
        "\u3164\u3164 \u3164",
        "\u115f\u1160",
        "\u2800",  # braille blank
        "\u3000\u00a0",  # ideographic and no-break spaces only
        "\u0301\u0302",  # combining marks with nothing to combine with
        "\ue000",  # private use
    ],
)
def test_nickname_control_format_and_invisible_are_refused(users: FunctionClient, clean_db: str, nickname: str) -> None:
    user_id, token = make_user(users)
    response = users.patch("/api/v1/users/me", json={"nickname": nickname}, headers=auth(token))
    assert response.status_code == 422, response.json
    assert response.json["code"] == "INVALID_NICKNAME" and "nickname" in response.json["detail"]
    with psycopg.connect(clean_db) as conn:
        stored = conn.execute("SELECT nickname FROM users WHERE id = %s", (uuid.UUID(user_id),)).fetchone()
    assert stored == ("분리수거왕",)


@pytest.mark.parametrize(
    ("nickname", "stored"),
    [
        ("  분리 수거 왕  ", "분리 수거 왕"),
        ("👩\u200d🌾 농부", "👩\u200d🌾 농부"),  # an emoji sequence keeps its joiner
        ("Ｅｃｏ", "Ｅｃｏ"),  # full width is visible: kept as typed
        ("\u1100\u1161", "가"),  # NFC: conjoining jamo become the syllable
        ("e\u0301co", "éco"),
        ("이\u3164코", "이\u3164코"),  # a filler between visible letters is not a blank name
    ],
)
def test_nickname_accepted(users: FunctionClient, nickname: str, stored: str) -> None:
    _, token = make_user(users)
    response = users.patch("/api/v1/users/me", json={"nickname": nickname}, headers=auth(token))
    assert response.status_code == 200, response.json
    assert response.json["nickname"] == stored == response.json["username"]


def test_patch_nickname_changes_username(users: FunctionClient) -> None:
    _, token = make_user(users)
    body = users.patch("/api/v1/users/me", json={"nickname": "새이름"}, headers=auth(token)).json
    assert body["username"] == body["nickname"] == "새이름"
    assert users.get("/api/v1/users/me", headers=auth(token)).json["nickname"] == "새이름"


def test_default_character_is_granted_once(users: FunctionClient, clean_db: str) -> None:
    user_id, token = make_user(users)
    first = users.get("/api/v1/users/me/characters", headers=auth(token))
    assert first.status_code == 200 and isinstance(first.json, list)
    assert [c["code"] for c in first.json] == ["char-eco"]
    card = first.json[0]
    assert set(card) == {"id", "code", "name", "type", "dialog", "acquired_at"}
    assert card["name"] == "이코" and datetime.fromisoformat(card["acquired_at"]).tzinfo is not None
    users.get("/api/v1/users/me/characters", headers=auth(token))
    with psycopg.connect(clean_db) as conn:
        count = conn.execute(
            "SELECT count(*) FROM user_characters WHERE user_id = %s", (uuid.UUID(user_id),)
        ).fetchone()
    assert count == (1,)


def test_delete_account_revokes_every_session(users: FunctionClient, clean_db: str) -> None:
    user_id, token = make_user(users)
    other_token = users.runtime.clients.tokens.issue(user_id, "access", "kakao").token
    deleted = users.delete("/api/v1/users/me", headers=auth(token))
    assert deleted.status_code == 204
    assert any(c.startswith("s_access=;") for c in deleted.headers.getlist("Set-Cookie"))
    for t in (token, other_token):
        response = users.get("/api/v1/users/me", headers=auth(t))
        assert response.status_code == 403 and response.json["code"] == "TOKEN_REVOKED"
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE id = %s", (uuid.UUID(user_id),)).fetchone() == (0,)


def test_token_for_a_vanished_user_is_not_a_500(users: FunctionClient) -> None:
    token = users.runtime.clients.tokens.issue(str(uuid.uuid4()), "access", "kakao").token
    response = users.get("/api/v1/users/me", headers=auth(token))
    assert response.status_code == 401 and response.json["code"] == "USER_NOT_FOUND"
    garbage_sub = users.runtime.clients.tokens.issue("not-a-uuid", "access", "kakao").token
    assert users.get("/api/v1/users/me", headers=auth(garbage_sub)).status_code == 401


def test_character_granted_event_is_recorded_once(users: FunctionClient, clean_db: str) -> None:
    from eventing.catalogue import CHARACTER_GRANTED

    user_id, token = make_user(users)
    data = {"user_id": user_id, "character_code": "char-petty", "source": "scan"}
    for _ in range(2):  # at-least-once delivery: the same event twice
        response = users.cloudevent(CHARACTER_GRANTED, data, event_id="grant-1", source="/eco2/character")
        assert response.status_code == 200
    other = users.cloudevent(CHARACTER_GRANTED, data, event_id="grant-2", source="/eco2/character")
    assert other.status_code == 200  # a different event for the same character: still one row
    codes = [c["code"] for c in users.get("/api/v1/users/me/characters", headers=auth(token)).json]
    assert codes == ["char-petty"]
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM processed_events WHERE consumer = 'users'").fetchone() == (2,)
    bad = users.cloudevent(CHARACTER_GRANTED, {**data, "character_code": "char-nope"}, event_id="grant-3")
    assert bad.status_code == 400 and bad.json["code"] == "UNKNOWN_CHARACTER"
    gone = users.cloudevent(CHARACTER_GRANTED, {**data, "user_id": str(uuid.uuid4())}, event_id="grant-4")
    assert gone.status_code == 200
