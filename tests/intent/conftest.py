"""Fixtures for the intent and state cache tests: a fresh state cache per test.

``state_cache`` runs a test on the bounded in-memory cache and on the SQL cache over SQLite and
PostgreSQL (127.0.0.1:5432, user postgres; a new database per test, dropped afterwards). Where
PostgreSQL is unreachable its cases are skipped with a message, except under ``CI=true``, where
they fail (``tests.store.conftest`` decides).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appservice.state_cache import CachedStateCache, MemoryStateCache, SQLStateCache, StateCache
from appservice.store import SQLStore
from tests.store.conftest import NewDatabase, new_pg_database

__all__ = ["new_pg_database", "sql_url", "state_cache"]

SQL_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_PARAMS)
async def sql_url(
    request: pytest.FixtureRequest, tmp_path: Path, new_pg_database: NewDatabase
) -> str:
    """The URL of a fresh, empty database: a new SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    return await new_pg_database()


@pytest.fixture(params=["memory", *SQL_PARAMS, "cached-sqlite"])
async def state_cache(
    request: pytest.FixtureRequest, tmp_path: Path, new_pg_database: NewDatabase
) -> AsyncIterator[StateCache]:
    """An empty state cache: MemoryStateCache, SQLStateCache on SQLite or PostgreSQL, or
    CachedStateCache over SQLStateCache on SQLite."""
    if request.param == "memory":
        yield MemoryStateCache()
        return
    if request.param == "cached-sqlite":
        async with SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}") as store:
            yield CachedStateCache(SQLStateCache(store))
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    else:
        url = await new_pg_database()
    async with SQLStore(url) as store:
        yield SQLStateCache(store)
