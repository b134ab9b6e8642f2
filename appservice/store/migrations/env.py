"""Alembic environment of the store schema (``appservice.store.schema.metadata``).

Two ways in:
- ``appservice.store.migrate`` hands over an open connection in ``config.attributes["connection"]``
  and its own transaction, so a store's upgrade and its ownership check commit together;
- the ``alembic`` command (``alembic -c migrations/alembic.ini ...``) connects to the URL given as
  ``-x database=URL``, else ``$APPSERVICE_DATABASE_URL``, else ``sqlalchemy.url`` of the ini file,
  through the store's own engine setup, and refuses a database that is not ours (see
  ``appservice.store.migrate``) before touching it.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from appservice.store import engine as engines
from appservice.store.migrate import read_status, refuse_unusable
from appservice.store.schema import DEFAULT_OWNER, metadata

config = context.config
config.attributes.setdefault("owner", DEFAULT_OWNER)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        transactional_ddl=True,  # also on SQLite: the store's engine emits BEGIN IMMEDIATE itself
        # SQLite cannot ALTER most things: later migrations use batch mode there (copy and move).
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("database")
        or os.environ.get("APPSERVICE_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit(
            "alembic: no database URL; pass -x database=URL or set APPSERVICE_DATABASE_URL"
        )
    return url


def _run_checked(connection: Connection) -> None:
    owner = str(config.attributes["owner"])
    refuse_unusable(read_status(connection, owner), connection.engine.url, owner, upgrade=True)
    _run(connection)


async def _run_from_url(raw_url: str) -> None:
    url = engines.parse_url(raw_url)
    engine = engines.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_checked)
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    if config.config_file_name:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_from_url(_url()))


_main()
