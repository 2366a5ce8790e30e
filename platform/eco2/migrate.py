"""`eco2 migrate`: Alembic upgrade to head with the schema in functions/common/migrations."""

from __future__ import annotations

from importlib import resources

from eco2.db import normalise_url


def alembic_config(database_url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("functions.common") / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)  # type: ignore[arg-type]


def current(database_url: str) -> str | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            return None if row is None else str(row[0])
    except Exception:
        return None
    finally:
        engine.dispose()
