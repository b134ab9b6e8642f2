"""The durable inbox over the store's ``as_txn`` and ``inbox`` tables (SQLite or PostgreSQL).

Intake is one database transaction: ``INSERT INTO as_txn ... ON CONFLICT DO NOTHING`` (the primary
key decides a race between two deliveries of one txnId, never a check-then-insert), then all items
with one multi-row statement, then COMMIT; ``accept`` returns only after the commit.

SQLite runs on two dedicated connections in one worker thread (one thread hop per intake, writes
serialised, no ORM on the hot path), in WAL mode. The intake connection uses ``synchronous=FULL``
by default: the WAL is fsynced at each commit, so a 200 survives power loss. ``NORMAL`` survives a
killed process but may lose the last commits on power loss or an OS crash, and after a 200 the
homeserver never resends, so those events would be lost. Done/failed marks go through a second
connection with ``synchronous=NORMAL``: losing the last marks to a power cut only means those
events are handled again (at-least-once), and the next intake's fsync covers them anyway.
PostgreSQL goes through the store's SQLAlchemy engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from appservice.server.inbox import InboxItem, now_ms
from appservice.server.transaction import RawItem

T = TypeVar("T")
Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

_ERROR_MAX = 2000
_MISSING_TABLES = (
    "the as_txn/inbox tables are missing: open the SQLStore (it creates the schema) first"
)


def seq_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous ``(first, last)`` runs covering ``seqs``, so marking many items is few updates."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _row_item(row: Sequence[Any]) -> InboxItem:
    seq, txn_id, kind, room_id, body, attempts, last_error = row
    return InboxItem(
        int(seq), txn_id, kind, room_id, orjson.loads(bytes(body)), int(attempts or 0), last_error
    )


_SELECT = "SELECT seq, txn_id, kind, room_id, body, attempts, last_error FROM inbox"
# Open transactions' items, from the first one on: a primary-key range (no index on state).
_PENDING = (
    "WHERE seq >= (SELECT MIN(first_seq) FROM as_txn WHERE done_at IS NULL) AND state = 0 "
    "AND txn_id IN (SELECT txn_id FROM as_txn WHERE done_at IS NULL) ORDER BY seq"
)
_FIRST_SEQ = "UPDATE as_txn SET first_seq = ? WHERE txn_id = ?"
_MARK_ITEMS = "UPDATE inbox SET state = 1, done_at = :now WHERE seq BETWEEN :a AND :b"
_MARK_TXNS = "UPDATE as_txn SET done_at = :now WHERE txn_id = :t"
# Pruning deletes by primary-key range, a chunk per commit, so it stays cheap however large the
# inbox is: every item before the first item of the oldest open transaction and of the first
# transaction received since ``:b`` is finished and older than the retention.
_PRUNE_BOUND = (
    "SELECT MIN(s) FROM ("
    "SELECT MIN(first_seq) AS s FROM as_txn WHERE done_at IS NULL "
    "UNION ALL SELECT s FROM (SELECT first_seq AS s FROM as_txn "
    "WHERE received_at >= :b AND first_seq IS NOT NULL ORDER BY received_at LIMIT 1) AS young"
    ") AS bounds"
)
_PRUNE_CHUNK = (
    "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE seq < :s AND state <> 2 "
    "ORDER BY seq LIMIT :n)"
)
_PRUNE_CHUNK_ROWS = 10_000
_NO_BOUND = 2**62  # no open and no young transaction: every finished item may go


class SQLInbox:
    """Durable inbox on the store's database. ``engine`` is ``SQLStore.engine``."""

    def __init__(self, engine: AsyncEngine, *, sqlite_synchronous: Synchronous = "FULL") -> None:
        if sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("sqlite_synchronous must be FULL, NORMAL or EXTRA")
        dialect = engine.dialect.name
        self._backend: _SQLiteBackend | _EngineBackend
        if dialect == "sqlite":
            path = engine.url.database
            if not path or path == ":memory:" or "mode=memory" in path:
                raise ValueError(
                    "SQLInbox needs an SQLite database file; use MemoryInbox for an in-memory one"
                )
            self._backend = _SQLiteBackend(path, sqlite_synchronous)
        elif dialect == "postgresql":
            self._backend = _EngineBackend(engine)
        else:
            raise ValueError(f"SQLInbox supports sqlite and postgresql, not {dialect!r}")

    async def open(self) -> None:
        """Connect and check that the tables exist."""
        await self._backend.open()

    async def close(self) -> None:
        """Close the inbox's own connection (the engine stays the store's)."""
        await self._backend.close()

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem] | None:
        """Record the txnId and append the items in one commit; ``None`` when already recorded."""
        return await self._backend.accept(txn_id, items)

    async def pending(self) -> list[InboxItem]:
        """Items in state 0 of transactions not complete, by sequence."""
        return await self._backend.select(_PENDING)

    async def failed(self) -> list[InboxItem]:
        """Items in state 2 (parked after failing handlers), by sequence."""
        return await self._backend.select("WHERE state = 2 ORDER BY seq")

    async def mark_done(self, items: Sequence[InboxItem], complete_txn_ids: Sequence[str]) -> None:
        """``as_txn.done_at`` for complete transactions (one row each), state 1 and ``done_at``
        for the other items (one statement per contiguous run), in one commit."""
        if not items and not complete_txn_ids:
            return
        now = now_ms()
        await self._backend.mark_done(
            [{"now": now, "a": a, "b": b} for a, b in seq_ranges([i.seq for i in items])],
            [{"now": now, "t": txn_id} for txn_id in complete_txn_ids],
        )

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Store the attempt count and the last error; the item stays pending."""
        await self._backend.write_many(
            "UPDATE inbox SET attempts = :n, last_error = :e WHERE seq = :s",
            [{"n": attempts, "e": error[:_ERROR_MAX], "s": seq}],
        )

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        """Park the item: state 2 with attempts and last_error."""
        await self._backend.write_many(
            "UPDATE inbox SET state = 2, attempts = :n, last_error = :e, done_at = :now "
            "WHERE seq = :s",
            [{"n": attempts, "e": error[:_ERROR_MAX], "now": now_ms(), "s": seq}],
        )

    async def prune(self, done_before_ms: int) -> int:
        """Delete the items of complete transactions received before ``done_before_ms`` (the
        txnIds stay, for dedup; parked items stay, for operators); how many were deleted."""
        bound = await self._backend.prune_bound(done_before_ms)
        total = 0
        while True:
            deleted = await self._backend.delete_before(bound, _PRUNE_CHUNK_ROWS)
            total += deleted
            if deleted < _PRUNE_CHUNK_ROWS:
                return total


class _SQLiteBackend:
    """Stdlib sqlite3 on one worker thread: the whole intake is one hop off the event loop."""

    def __init__(self, path: str, synchronous: Synchronous) -> None:
        self._path = path
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._marks: sqlite3.Connection | None = None
        self._queue: list[tuple[str, Sequence[RawItem], asyncio.Future[int | None]]] = []
        self._committing = False
        self._committer: asyncio.Future[None] | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the inbox is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the inbox is not open")
        return self._conn

    def _m(self) -> sqlite3.Connection:
        if self._marks is None:
            raise RuntimeError("the inbox is not open")
        return self._marks

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="appservice-inbox")
        try:
            await self._run(self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("SELECT txn_id, received_at, event_count FROM as_txn LIMIT 0")
            conn.execute(f"{_SELECT} LIMIT 0")
        except sqlite3.OperationalError as exc:
            conn.close()
            if "no such" in str(exc):
                raise RuntimeError(_MISSING_TABLES) from None
            raise
        marks = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        marks.execute("PRAGMA synchronous=NORMAL")
        self._conn, self._marks = conn, marks

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._run(self._c().close)
            self._conn = None
        if self._marks is not None:
            await self._run(self._m().close)
            self._marks = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem] | None:
        # Group commit: deliveries arriving while a commit is running share the next one, each
        # in its own savepoint (one failing rolls back only itself); every caller is answered
        # only after the COMMIT that holds its rows.
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append((txn_id, items, future))
        if not self._committing:
            self._committing = True
            self._committer = asyncio.ensure_future(self._commit_queued())
        first = await future
        if first is None:
            return None
        return [
            InboxItem(first + i, txn_id, kind, room_id, payload)
            for i, (kind, room_id, payload) in enumerate(items)
        ]

    async def _commit_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._run(self._accept_batch, [(t, i) for t, i, _ in batch])
                except BaseException as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._committing = False

    def _accept_batch(
        self, batch: list[tuple[str, Sequence[RawItem]]]
    ) -> list[int | Exception | None]:
        conn = self._c()
        results: list[int | Exception | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for txn_id, items in batch:
                if len(batch) == 1:
                    results.append(self._accept_one(conn, txn_id, items))
                    continue
                conn.execute("SAVEPOINT txn")
                try:
                    results.append(self._accept_one(conn, txn_id, items))
                except Exception as exc:
                    conn.execute("ROLLBACK TO txn")
                    results.append(exc)
                conn.execute("RELEASE txn")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _accept_one(conn: sqlite3.Connection, txn_id: str, items: Sequence[RawItem]) -> int | None:
        """Insert one delivery inside the open transaction; first seq, or None when known."""
        dumps = orjson.dumps
        rows = [(txn_id, kind, room_id, dumps(payload)) for kind, room_id, payload in items]
        now = now_ms()
        cur = conn.execute(
            "INSERT INTO as_txn (txn_id, received_at, event_count, done_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (txn_id) DO NOTHING",
            (txn_id, now, len(rows), None if rows else now),  # nothing to handle: complete
        )
        if cur.rowcount == 0:
            return None
        if not rows:
            return 0
        conn.executemany(
            "INSERT INTO inbox (txn_id, kind, room_id, body, state, attempts) "
            "VALUES (?, ?, ?, ?, 0, 0)",
            rows,
        )
        # One writer inside one write transaction: the rowids are contiguous.
        first = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0]) - len(rows) + 1
        conn.execute(_FIRST_SEQ, (first, txn_id))
        return first

    async def select(self, where: str) -> list[InboxItem]:
        rows = await self._run(lambda: self._c().execute(f"{_SELECT} {where}").fetchall())
        return [_row_item(r) for r in rows]

    async def write_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        await self._run(self._write_many, [(sql, params)])

    async def mark_done(self, items: list[dict[str, Any]], txns: list[dict[str, Any]]) -> None:
        await self._run(self._write_many, [(_MARK_ITEMS, items), (_MARK_TXNS, txns)])

    def _write_many(self, statements: list[tuple[str, list[dict[str, Any]]]]) -> None:
        conn = self._m()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                if params:
                    conn.executemany(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def prune_bound(self, before_ms: int) -> int:
        def run() -> int:
            bound = self._m().execute(_PRUNE_BOUND, {"b": before_ms}).fetchone()[0]
            return _NO_BOUND if bound is None else int(bound)

        return await self._run(run)

    async def delete_before(self, bound: int, limit: int) -> int:
        def run() -> int:  # autocommit: one chunk per commit, intake goes on in between
            return int(self._m().execute(_PRUNE_CHUNK, {"s": bound, "n": limit}).rowcount)

        return await self._run(run)


_PG_TXN = text(
    "INSERT INTO as_txn (txn_id, received_at, event_count, done_at) VALUES (:t, :now, :n, :d) "
    "ON CONFLICT (txn_id) DO NOTHING"
)
_PG_FIRST_SEQ = text("UPDATE as_txn SET first_seq = :s WHERE txn_id = :t")
_PG_ITEMS = text(
    "INSERT INTO inbox (txn_id, kind, room_id, body, state, attempts) "
    "SELECT :t, u.k, u.r, u.b, 0, 0 FROM unnest("
    "CAST(:kinds AS TEXT[]), CAST(:rooms AS TEXT[]), CAST(:bodies AS BYTEA[])"
    ") WITH ORDINALITY AS u(k, r, b, i) ORDER BY u.i RETURNING seq"
)


class _EngineBackend:
    """PostgreSQL through the store's SQLAlchemy engine (Core text statements, no ORM)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def open(self) -> None:
        async with self._engine.connect() as conn:
            for table in ("as_txn", "inbox"):
                found = await conn.execute(text("SELECT to_regclass(:t)"), {"t": table})
                if found.scalar() is None:
                    raise RuntimeError(_MISSING_TABLES)

    async def close(self) -> None:
        return None

    async def accept(self, txn_id: str, items: Sequence[RawItem]) -> list[InboxItem] | None:
        async with self._engine.begin() as conn:
            now = now_ms()
            done = None if items else now  # nothing to handle: complete at once
            res = await conn.execute(_PG_TXN, {"t": txn_id, "now": now, "n": len(items), "d": done})
            if res.rowcount == 0:
                return None
            if not items:
                return []
            rows = await conn.execute(
                _PG_ITEMS,
                {
                    "t": txn_id,
                    "kinds": [k for k, _, _ in items],
                    "rooms": [r for _, r, _ in items],
                    "bodies": [orjson.dumps(p) for _, _, p in items],
                },
            )
            # nextval() follows the ORDER BY, so ascending seqs are the items' order.
            seqs = sorted(int(r[0]) for r in rows)
            await conn.execute(_PG_FIRST_SEQ, {"s": seqs[0], "t": txn_id})
        return [
            InboxItem(seq, txn_id, kind, room_id, payload)
            for seq, (kind, room_id, payload) in zip(seqs, items, strict=True)
        ]

    async def select(self, where: str) -> list[InboxItem]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(f"{_SELECT} {where}"))).all()
        return [_row_item(r) for r in rows]

    async def write_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def mark_done(self, items: list[dict[str, Any]], txns: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            if items:
                await conn.execute(text(_MARK_ITEMS), items)
            if txns:
                await conn.execute(text(_MARK_TXNS), txns)

    async def prune_bound(self, before_ms: int) -> int:
        async with self._engine.connect() as conn:
            bound = (await conn.execute(text(_PRUNE_BOUND), {"b": before_ms})).scalar()
        return _NO_BOUND if bound is None else int(bound)

    async def delete_before(self, bound: int, limit: int) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(text(_PRUNE_CHUNK), {"s": bound, "n": limit})
        return int(res.rowcount)
