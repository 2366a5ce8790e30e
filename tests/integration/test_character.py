"""character on real PostgreSQL: the catalogue, and rewards granted exactly once per user and character."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from eco2.serving.testing import FunctionClient
from eventing.catalogue import CHARACTER_GRANTED, SCAN_COMPLETED
from functions.common.models import User
from tests.support.sink import EventSink
from tests.support.waiting import wait_for


@pytest.fixture
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


@pytest.fixture
def character(function_client: Callable[..., FunctionClient], sink: EventSink) -> FunctionClient:
    return function_client("character", K_SINK=sink.url)


def new_user(client: FunctionClient) -> str:
    with client.runtime.clients.db.session() as s:
        user = User(nickname="scanner")
        s.add(user)
        s.commit()
        return str(user.id)


def completed(user_id: str, code: str | None, job: str = "job-1") -> dict[str, object]:
    return {
        "job_id": job,
        "user_id": user_id,
        "major_category": "재활용폐기물",
        "middle_category": "무색페트병",
        "reward_character_code": code,
    }


def outbox_rows(url: str) -> list[tuple[uuid.UUID, str, object]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, type, published_at FROM event_outbox ORDER BY created_at").fetchall()


def test_catalogue(character: FunctionClient) -> None:
    response = character.get("/api/v1/character/catalog")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    body = response.json
    assert len(body) == 13 and all(set(c) == {"code", "name", "type", "dialog", "match"} for c in body)
    assert {c["name"] for c in body} >= {"이코", "페티", "일렉"}


def test_same_scan_completed_twice_grants_once_and_announces_once(
    character: FunctionClient, sink: EventSink, clean_db: str
) -> None:
    user = new_user(character)
    for _ in range(2):
        response = character.cloudevent(
            SCAN_COMPLETED, completed(user, "char-petty"), event_id="job-1-completed", source="/eco2/scan-worker"
        )
        assert response.status_code == 200
    # a different scan rewarding the same character: still one row, no second announcement
    character.cloudevent(SCAN_COMPLETED, completed(user, "char-petty", "job-2"), event_id="job-2-completed")
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute(
            "SELECT character_code FROM user_characters WHERE user_id = %s", (uuid.UUID(user),)
        ).fetchall()
    assert rows == [("char-petty",)]
    # announced through the outbox: one row, staged in the grant's transaction, whose id is the event's
    assert wait_for(lambda: [r[2] is not None for r in outbox_rows(clean_db)] == [True])  # relayed
    [(row_id, row_type, _)] = outbox_rows(clean_db)
    assert row_type == CHARACTER_GRANTED
    # the relay has nothing left to send: the sink holds everything that will ever be announced
    assert wait_for(lambda: len(sink.of_type(CHARACTER_GRANTED)) >= 1)
    granted = sink.of_type(CHARACTER_GRANTED)
    assert len(granted) == 1 and granted[0]["attributes"]["id"] == row_id.hex
    assert granted[0]["data"] == {"user_id": user, "character_code": "char-petty", "source": "scan", "job_id": "job-1"}
    assert granted[0]["attributes"]["source"] == "/eco2/character"


def test_no_reward_grants_nothing(character: FunctionClient, clean_db: str) -> None:
    user = new_user(character)
    assert character.cloudevent(SCAN_COMPLETED, completed(user, None)).status_code == 200
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM user_characters").fetchone() == (0,)


def test_unknown_character_is_not_retried(character: FunctionClient) -> None:
    user = new_user(character)
    response = character.cloudevent(SCAN_COMPLETED, completed(user, "char-nope"))
    assert response.status_code == 400 and response.json["code"] == "UNKNOWN_CHARACTER"
