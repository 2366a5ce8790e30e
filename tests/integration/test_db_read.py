"""`Database.read()` / `Context.read()`: a Core connection in autocommit for one-statement reads,
from the same pool as the sessions, which stay transactional after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from eco2.core.db import Database


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = request.getfixturevalue("clean_db") if request.param == "postgresql" else f"sqlite:///{tmp_path}/read.db"
    db = Database(url, pool_size=1)  # one pooled connection: the read and the session share it
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS read_probe"))
        connection.execute(text("CREATE TABLE read_probe (n INTEGER NOT NULL)"))
    yield db
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS read_probe"))
    db.close()


def rows(db: Database) -> list[int]:
    with db.engine.connect() as connection:
        return [n for (n,) in connection.execute(text("SELECT n FROM read_probe ORDER BY n"))]


def test_read_is_autocommit(database: Database) -> None:
    with database.read() as connection:  # no commit: autocommit made it stick anyway
        connection.execute(text("INSERT INTO read_probe (n) VALUES (1)"))
        assert connection.execute(text("SELECT count(*) FROM read_probe")).scalar() == 1
    assert rows(database) == [1]


def test_sessions_stay_transactional_after_a_read(database: Database) -> None:
    with database.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM read_probe")).scalar() == 0
    session = database.session()
    session.execute(text("INSERT INTO read_probe (n) VALUES (2)"))
    session.rollback()  # the pooled connection is back in a transaction: the insert is undone
    session.close()
    assert rows(database) == []
    with database.session() as session:
        session.execute(text("INSERT INTO read_probe (n) VALUES (3)"))
        session.commit()
    assert rows(database) == [3]


def test_insert_new_adds_once_then_reports_the_row_already_there(database: Database) -> None:
    """The idempotent insert of at-least-once handlers (dedupe records, character grants): one
    INSERT ... ON CONFLICT DO NOTHING, on the primary key and on unique columns alike."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint

    from eco2.core.db import insert_new

    table = Table(
        "insert_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("code", String(20), nullable=False),
        UniqueConstraint("code", name="uq_insert_probe_code"),
    )
    table.drop(database.engine, checkfirst=True)
    table.create(database.engine)
    try:
        with database.session() as session:
            assert insert_new(session, table, {"id": 1, "code": "a"}) is True
            assert insert_new(session, table, {"id": 1, "code": "b"}) is False  # same key
            assert insert_new(session, table, {"id": 2, "code": "a"}) is False  # same unique column
            assert insert_new(session, table, {"id": 3, "code": "c"}) is True
            session.commit()
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT id, code FROM insert_probe ORDER BY id")).fetchall() == [
                (1, "a"),
                (3, "c"),
            ]
            assert insert_new(connection, table, {"id": 1, "code": "a"}) is False  # on a Core connection too
    finally:
        table.drop(database.engine)
