"""Shared fixtures: real PostgreSQL and Redis (the servers CI starts), and in-process function clients.

PostgreSQL: a fresh database per test session, created from the admin URL and migrated with
`eco2 migrate`'s code; each test gets its tables emptied. Redis: a dedicated logical database,
flushed per test. Override with ECO2_TEST_DATABASE_ADMIN_URL / ECO2_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("ECO2_TEST_DATABASE_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ECO2_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    import psycopg

    name = f"eco2_test_{uuid.uuid4().hex[:8]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    from eco2.tooling.migrate import upgrade

    upgrade(url)
    yield url
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_db(pg_url: str) -> str:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                # spatial_ref_sys is PostGIS' own reference data (the location function), not test data
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    return pg_url


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


@pytest.fixture
def base_env(clean_db: str, redis_url: str) -> dict[str, str]:
    """The environment of a function under test: real PostgreSQL and Redis."""
    return {
        "ECO2_ENV": "test",
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "JWT_SECRET": "test-secret-0123456789-0123456789-0123456789",
        "ALLOWED_ORIGINS": ORIGIN,
        "COOKIE_SECURE": "false",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def function_client(base_env: dict[str, str]) -> Iterator[Callable[..., object]]:
    """function_client("users", EXTRA_ENV="...") -> eco2.serving.testing.FunctionClient (closed after the test)."""
    from eco2.serving.testing import FunctionClient

    opened: list[FunctionClient] = []

    def make(name: str, **extra: str) -> FunctionClient:
        client = FunctionClient(name, {**base_env, **extra}, root=ROOT)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
