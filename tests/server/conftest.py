"""Fixtures for the appservice server tests: a registration, SQL engines on SQLite and PostgreSQL
(fresh database file / fresh schema per test, tables created from the store's schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from appservice.registration import Registration
from appservice.store.schema import metadata

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def registration() -> Registration:
    """A registration for server name ``localhost``: bot ``@bot:localhost``, puppets ``@_t_*``."""
    return Registration.generate(
        "test-as", "http://127.0.0.1:1", "bot", "_t_", "_t_", server_name="localhost"
    )


async def postgres_available() -> bool:
    """Whether the test PostgreSQL answers."""
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def need_postgres() -> None:
    """Skip (or, under CI=true, fail) when PostgreSQL is not reachable."""
    if not await postgres_available():
        msg = f"PostgreSQL not reachable at {PG_DSN}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


async def make_engine(backend: str, tmp_path: Path) -> AsyncEngine:
    """A fresh engine with the schema created: a new SQLite file, or a new PostgreSQL schema
    (made the engine's search_path)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'as.db'}"
        engine = create_async_engine(url)
    else:
        await need_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_async_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await admin.dispose()
        engine = create_async_engine(  # the schema names its connections too, to find them
            PG_URL,
            connect_args={"server_settings": {"search_path": schema, "application_name": schema}},
            pool_pre_ping=True,  # as the store's engine
        )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


async def drop_engine(engine: AsyncEngine) -> None:
    """Dispose the engine; for PostgreSQL also drop its test schema."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        await engine.dispose()
        admin = create_async_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()
    else:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each SQL test runs on SQLite and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
async def engine(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh engine on ``backend`` with the toolkit's tables."""
    eng = await make_engine(backend, tmp_path)
    yield eng
    await drop_engine(eng)


def message(room_id: str, n: int, sender: str = "@alice:localhost") -> dict[str, Any]:
    """A Synapse-shaped m.room.message event numbered ``n``."""
    return {
        "type": "m.room.message",
        "room_id": room_id,
        "sender": sender,
        "event_id": f"$ev{n}-{room_id}",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
        "unsigned": {"age": 10},
        "age": 10,
        "user_id": sender,
    }


def txn_body(events: list[dict[str, Any]], **extra: Any) -> bytes:
    """A transaction body with ``events`` and any extra top-level keys."""
    return orjson.dumps({"events": events, **extra})


@pytest.fixture
def unique() -> str:
    """A short unique string for txnIds and room ids."""
    return uuid.uuid4().hex[:8]
