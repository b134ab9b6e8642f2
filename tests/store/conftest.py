"""Fixtures for the store tests: a fresh database per test on SQLite and on PostgreSQL.

PostgreSQL is 127.0.0.1:5432 (user postgres, database ``test``, trust auth); each test gets its
own database, dropped afterwards. Where PostgreSQL is unreachable its tests are skipped with a
message, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from appservice.store import InMemoryStore, SQLStore, Storer

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"
PG_DB_PREFIX = "appservice_store_t_"

_pg_problem: list[str | None] = []  # memo: [] unknown, [None] reachable, [reason] not


async def _pg_admin():  # type: ignore[no-untyped-def]
    import asyncpg

    return await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=5
    )


async def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or ``None`` when it can (checked once)."""
    if not _pg_problem:
        try:
            conn = await _pg_admin()
        except ImportError:
            _pg_problem.append("asyncpg is not installed (pip install 'appservice[postgres]')")
        except Exception as err:
            _pg_problem.append(f"{type(err).__name__}: {err}")
        else:
            await conn.close()
            _pg_problem.append(None)
    return _pg_problem[0]


async def require_postgres() -> None:
    """Skip (or under CI=true fail) the current test when PostgreSQL is unusable."""
    problem = await postgres_problem()
    if problem is None:
        return
    message = f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) is not usable: {problem}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message}; it is required in CI (CI=true)", pytrace=False)
    pytest.skip(f"{message}; start it to run the PostgreSQL store tests")


NewDatabase = Callable[[], Awaitable[str]]


@pytest.fixture
async def new_pg_database() -> AsyncIterator[NewDatabase]:
    """A factory of fresh, empty PostgreSQL databases (URLs); all dropped after the test.

    Calling it skips the test (fails it under CI=true) when PostgreSQL is unusable.
    """
    created: list[str] = []

    async def make() -> str:
        await require_postgres()
        name = f"{PG_DB_PREFIX}{uuid.uuid4().hex[:16]}"
        conn = await _pg_admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    yield make
    if created:
        conn = await _pg_admin()
        try:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, new_pg_database: NewDatabase
) -> str:
    """A URL of a fresh empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return await new_pg_database()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def storer(
    request: pytest.FixtureRequest, tmp_path: Path, new_pg_database: NewDatabase
) -> AsyncIterator[Storer]:
    """An open ``Storer`` on a fresh database: InMemoryStore, SQLite or PostgreSQL."""
    if request.param == "memory":
        yield InMemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        url = await new_pg_database()
    async with SQLStore(url) as store:
        yield store
