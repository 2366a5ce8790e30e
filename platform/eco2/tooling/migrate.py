"""`eco2 migrate`: Alembic upgrade to head with the schema in functions/common/migrations."""

from __future__ import annotations

from importlib import resources

from eco2.core.db import normalise_url


def alembic_config(database_url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("functions.common") / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


class MigrateError(RuntimeError):
    """The database cannot be migrated; the message says why in one line."""


def upgrade(database_url: str, revision: str = "head") -> list[str]:
    """Upgrade to `revision`; returns the revisions applied, oldest first."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(database_url)
    before = current(database_url)
    command.upgrade(config, revision)  # type: ignore[arg-type]
    after = current(database_url)
    if after == before or after is None:
        return []
    script = ScriptDirectory.from_config(config)  # type: ignore[arg-type]
    applied = [rev.revision for rev in script.iterate_revisions(after, before)]
    return applied[::-1]


def current(database_url: str) -> str | None:
    """The database's revision (None before the first migration); MigrateError when unreachable."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import DBAPIError

    from eco2.core.settings import mask_url

    url = normalise_url(database_url)
    engine = create_engine(url, connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            return None if row is None else str(row[0])
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise MigrateError(f"cannot reach the database at {mask_url(database_url)}: {reason}") from None
    finally:
        engine.dispose()
