"""Alembic environment: the URL comes from `eco2 migrate` (DATABASE_URL), the schema from models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from eco2.events.outbox import metadata as events_metadata
from functions.common.models import Base

config = context.config
target_metadata = [Base.metadata, events_metadata]


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by eco2 migrate"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
