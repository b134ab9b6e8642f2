"""SQLStore: the ``Storer`` on SQL (SQLite by default, PostgreSQL at scale) and the schema's door.

``async with SQLStore("sqlite+aiosqlite:///bridge.db") as store:`` opens the database (creating
or upgrading the schema, see ``appservice.store.migrate``) and closes it. Later layers run their
own SQL against ``appservice.store.schema`` through ``store.transaction()`` (one transaction,
committed on success) or ``store.engine``.

On SQLite the store holds ONE connection, which is the single writer: concurrent tasks queue for
it (up to ``EngineOptions.pool_timeout``), so keep transactions short, never hold one across
network I/O, and never open ``reading()`` or ``transaction()`` inside another in the same task
(it would wait for the connection the outer block holds). PostgreSQL has a pool of connections.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import orjson
from sqlalchemy import Row, bindparam, delete, exc, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import Table

from appservice.events import Event
from appservice.room import Room
from appservice.store import engine as engines
from appservice.store.base import check_room, check_str
from appservice.store.errors import StoreError
from appservice.store.migrate import (
    SchemaState,
    SchemaStatus,
    ensure_schema,
    head_revision,
    read_status,
)
from appservice.store.schema import DEFAULT_OWNER, sync_room, sync_room_state, sync_user

log = logging.getLogger(__name__)

_RECOVERABLE = (OSError, TimeoutError)
_IN_CHUNK = 500  # keys per IN (...) list when loading many rooms


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of every timestamp column."""
    return int(time.time() * 1000)


class SQLStore:
    """A ``Storer`` on SQLAlchemy async (``sqlite+aiosqlite`` or ``postgresql+asyncpg``).

    ``upgrade=False`` makes ``open`` refuse a schema older than the code instead of upgrading it;
    ``owner`` is the name written into (and expected in) the database's owner row. A malformed or
    unsupported URL raises ``DatabaseURLError`` here; everything else is raised by ``open``.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        upgrade: bool = True,
        owner: str = DEFAULT_OWNER,
        options: engines.EngineOptions | None = None,
    ) -> None:
        self.url: URL = engines.parse_url(url)
        self.upgrade = upgrade
        self.owner = check_str("SQLStore", "owner", owner)
        self.options = options or engines.EngineOptions()
        self.status_at_open: SchemaStatus | None = None
        self._engine: AsyncEngine | None = None

    def __repr__(self) -> str:
        state = "open" if self._engine is not None else "closed"
        return f"SQLStore({engines.safe_url(self.url)!r}, {state})"

    @property
    def safe_url(self) -> str:
        """The database URL with any password masked."""
        return engines.safe_url(self.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.get_backend_name()

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (``StoreError`` when the store is not open)."""
        if self._engine is None:
            raise StoreError(f"SQLStore {self.safe_url!r} is not open", url=self.safe_url)
        return self._engine

    async def open(self) -> Self:
        """Connect, check ownership and version, create or upgrade the schema; idempotent.

        On failure the engine is disposed and a SQLite file this call created is removed.
        """
        if self._engine is not None:
            return self
        url = self.url
        if engines.is_sqlite(url):
            engines.check_sqlite_path(url)
        created = engines.file_is_new(url)
        engine = engines.create_engine(url, self.options)
        try:
            async with engine.begin() as conn:
                self.status_at_open = await conn.run_sync(
                    ensure_schema, url, self.owner, upgrade=self.upgrade
                )
            if engines.is_sqlite(url) and not engines.is_memory_sqlite(url):
                await _enable_wal(engine, url, self.options.busy_timeout_ms / 1000)
        except BaseException as err:
            await engine.dispose()
            if created:
                engines.remove_new_file(url)
            if isinstance(err, _RECOVERABLE) or _is_driver_error(err):
                raise engines.translate_error(err, url, "open database") from err
            raise
        self._engine = engine
        log.info(
            "store open: %s (%s)",
            self.safe_url,
            self.status_at_open.describe() if self.status_at_open else "",
        )
        return self

    async def close(self) -> None:
        """Close every connection; the store can be opened again."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One database transaction: committed when the block ends, rolled back on an exception."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (on SQLite a deferred BEGIN, which takes no write lock)."""
        async with self.engine.connect() as conn:
            await conn.execution_options(**{engines.READ_ONLY_OPTION: True})
            async with conn.begin():
                yield conn

    def upsert(self, table: Table, keys: Sequence[str], update: Sequence[str]) -> Insert:
        """``INSERT .. ON CONFLICT (keys) DO UPDATE SET col = excluded.col`` for this backend."""
        if self.dialect == "postgresql":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(
                index_elements=list(keys), set_={c: pg.excluded[c] for c in update}
            )
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=list(keys), set_={c: lite.excluded[c] for c in update}
        )

    # --- Storer ------------------------------------------------------------------------------

    async def save_filter_id(self, user_id: str, filter_id: str) -> None:
        """Remember the filter ID of ``user_id``."""
        row = {
            "user_id": check_str("save_filter_id", "user_id", user_id),
            "filter_id": check_str("save_filter_id", "filter_id", filter_id),
        }
        async with self.transaction() as conn:
            await conn.execute(self.upsert(sync_user, ["user_id"], ["filter_id"]), [row])

    async def load_filter_id(self, user_id: str) -> str | None:
        """The filter ID of ``user_id``, or ``None``."""
        check_str("load_filter_id", "user_id", user_id)
        async with self.reading() as conn:
            found: str | None = await conn.scalar(
                select(sync_user.c.filter_id).where(sync_user.c.user_id == user_id)
            )
        return found

    async def save_next_batch(self, user_id: str, next_batch_token: str) -> None:
        """Remember the next-batch token of ``user_id``."""
        row = {
            "user_id": check_str("save_next_batch", "user_id", user_id),
            "next_batch": check_str("save_next_batch", "next_batch_token", next_batch_token),
        }
        async with self.transaction() as conn:
            await conn.execute(self.upsert(sync_user, ["user_id"], ["next_batch"]), [row])

    async def load_next_batch(self, user_id: str) -> str | None:
        """The next-batch token of ``user_id``, or ``None``."""
        check_str("load_next_batch", "user_id", user_id)
        async with self.reading() as conn:
            found: str | None = await conn.scalar(
                select(sync_user.c.next_batch).where(sync_user.c.user_id == user_id)
            )
        return found

    async def save_room(self, room: Room) -> None:
        """Store ``room`` and replace its stored state, in one transaction.

        Only rows that changed are written: the stored bodies are read once and compared, new or
        changed entries are upserted in one batch, and entries no longer in ``room.state`` deleted.
        """
        room = check_room("save_room", room)
        wanted = _state_rows(room)
        table = sync_room_state
        async with self.transaction() as conn:
            await conn.execute(
                self.upsert(sync_room, ["room_id"], ["saved_at"]),
                [{"room_id": room.id, "saved_at": now_ms()}],
            )
            result = await conn.execute(
                select(table.c.type, table.c.state_key, table.c.body).where(
                    table.c.room_id == room.id
                )
            )
            stored = {(r.type, r.state_key): bytes(r.body) for r in result}
            changed = [
                r for r in wanted.values() if stored.get((r["type"], r["state_key"])) != r["body"]
            ]
            removed = [{"t": t, "k": k} for (t, k) in stored if (t, k) not in wanted]
            if changed:
                keys = ["room_id", "type", "state_key"]
                await conn.execute(self.upsert(table, keys, ["event_id", "body"]), changed)
            if removed:
                await conn.execute(
                    delete(table).where(
                        table.c.room_id == room.id,
                        table.c.type == bindparam("t"),
                        table.c.state_key == bindparam("k"),
                    ),
                    removed,
                )

    async def load_room(self, room_id: str) -> Room | None:
        """The stored room with its state, or ``None`` (one query)."""
        check_str("load_room", "room_id", room_id)
        rooms = await self.load_rooms([room_id])
        return rooms.get(room_id)

    async def load_rooms(self, room_ids: Iterable[str]) -> dict[str, Room]:
        """The stored rooms among ``room_ids`` (missing ones left out), one query per 500 IDs."""
        ids = sorted({check_str("load_rooms", "room_ids[]", r) for r in room_ids})
        rooms: dict[str, Room] = {}
        state = sync_room_state
        async with self.reading() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                query = (
                    select(sync_room.c.room_id, state.c.type, state.c.state_key, state.c.body)
                    .select_from(sync_room.outerjoin(state, state.c.room_id == sync_room.c.room_id))
                    .where(sync_room.c.room_id.in_(chunk))
                )
                for row in await conn.execute(query):
                    _add_row(rooms, row)
        return rooms


def _state_rows(room: Room) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows ``save_room`` wants for ``room``; ``TypeError`` on content that is not JSON."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for event_type, by_key in room.state.items():
        for state_key, event in by_key.items():
            try:
                body = orjson.dumps(_event_json(event))
            except TypeError as err:
                raise TypeError(
                    f"save_room {room.id}: state event ({event_type!r}, {state_key!r}) cannot be "
                    f"stored as JSON: {err}"
                ) from None
            rows[(event_type, state_key)] = {
                "room_id": room.id,
                "type": event_type,
                "state_key": state_key,
                "event_id": event.id,
                "body": body,
            }
    return rows


def _event_json(event: Event) -> dict[str, Any]:
    """The event's spec JSON, except that ``unsigned`` is kept as it is and ``prev_content`` sits
    at the top level (a form ``Event.from_dict`` reads back): the loaded event equals the saved one.
    """
    out = event.to_dict()
    out.pop("unsigned", None)
    if event.unsigned:
        out["unsigned"] = event.unsigned
    if event.prev_content is not None:
        out["prev_content"] = event.prev_content
    return out


def _add_row(rooms: dict[str, Room], row: Row[Any, Any, Any, Any]) -> None:
    room = rooms.get(row.room_id)
    if room is None:
        room = rooms[row.room_id] = Room(row.room_id)
    if row.type is None:  # a saved room without state (outer join)
        return
    where = f"stored state of {row.room_id} ({row.type!r}, {row.state_key!r})"
    try:
        event = Event.from_dict(orjson.loads(row.body), where=where)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON: {err}") from None
    room.state.setdefault(row.type, {})[row.state_key] = event


async def database_status(
    url: str | URL, *, owner: str = DEFAULT_OWNER, options: engines.EngineOptions | None = None
) -> SchemaStatus:
    """How the database at ``url`` relates to this code, read without changing anything.

    A SQLite file that does not exist is reported ``EMPTY`` and is not created.
    """
    parsed = engines.parse_url(url)
    if engines.is_memory_sqlite(parsed) or engines.file_is_new(parsed):
        return SchemaStatus(SchemaState.EMPTY, None, None, head_revision(), ())
    engine = engines.create_engine(parsed, options)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{engines.READ_ONLY_OPTION: True})
            async with conn.begin():
                return await conn.run_sync(read_status, owner)
    except Exception as err:
        if isinstance(err, _RECOVERABLE) or _is_driver_error(err):
            raise engines.translate_error(err, parsed, "read database") from err
        raise
    finally:
        await engine.dispose()


async def _enable_wal(engine: AsyncEngine, url: URL, wait: float) -> None:
    """Switch a SQLite file to WAL (persistent); must run outside any transaction.

    The switch needs the file to itself and SQLite does not wait for that on the busy timeout:
    while another connection (another store opening it at the same time) holds it, try again
    for up to ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                cursor = await driver.execute("PRAGMA journal_mode = WAL")
                row = await cursor.fetchone()
                await cursor.close()
            break
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
    mode = str(row[0]).lower() if row else "?"
    if mode != "wal":
        log.warning("SQLite %s: journal_mode is %s, not wal", engines.safe_url(url), mode)


def _is_driver_error(err: BaseException) -> bool:
    if isinstance(err, exc.DBAPIError | exc.TimeoutError):
        return True
    # asyncpg raises its own errors for a failed connect (bad database, auth) before wrapping.
    return type(err).__module__.startswith("asyncpg")
