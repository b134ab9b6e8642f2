"""A throwaway PostgreSQL database for one benchmark run.

Import it from a script in bench/ (``from _postgres import fresh_database``), as ``_machine``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.engine import URL, make_url


@contextlib.asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[tuple[URL, Any]]:
    """A new, empty database on ``server`` (a PostgreSQL URL naming a database to connect to):
    its URL and the asyncpg connection that made it (for ``SHOW`` queries). Dropped afterwards."""
    import asyncpg

    base = make_url(server)
    admin = await asyncpg.connect(
        host=base.host or "127.0.0.1",
        port=base.port or 5432,
        user=base.username or "postgres",
        password=base.password,
        database=base.database or "postgres",
        timeout=10,
    )
    name = f"appservice_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name), admin
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
