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
