"""The durable inbox over the store's ``as_txn``, ``as_txn_items`` and ``inbox`` tables.

One row per transaction, not per item: intake records the txnId in ``as_txn`` (``INSERT ... ON
CONFLICT DO NOTHING``: the unique key decides a race between two deliveries of one txnId, never a
check-then-insert) and the transaction's items in ``as_txn_items``, then commits; ``accept``
returns only after the commit. The items row holds the body as the homeserver sent it (a restart
parses it again, exactly as intake did), so intake serialises nothing; callers that have no body
store the items as one JSON array instead. Item ``i`` of the transaction numbered ``n``
has the sequence number ``n << ITEM_BITS | i``, so items are ordered across transactions without
a row each. ``inbox`` holds rows only for the exceptions: items handled while the rest of their
transaction is not (state 1), retried items (attempts, last error) and parked items (state 2, with
a copy of the item, kept after pruning). A restart reads the open transactions (a partial index),
parses their items again and skips those the ``inbox`` rows say are finished.

SQLite runs on two dedicated connections in one worker thread (one thread hop per intake, writes
serialised, no ORM on the hot path), in WAL mode. The intake connection uses ``synchronous=FULL``
by default: the WAL is fsynced at each commit, so a 200 survives power loss. ``NORMAL`` survives a
killed process but may lose the last commits on power loss or an OS crash, and after a 200 the
homeserver never resends, so those events would be lost. Done/failed marks go through a second
connection with ``synchronous=NORMAL``: losing the last marks to a power cut only means those
events are handled again (at-least-once), and the next intake's fsync covers them anyway.
PostgreSQL goes through the store's SQLAlchemy engine, intake as one statement that inserts both
rows in its own transaction (instead of BEGIN, two INSERTs and COMMIT, each a round trip), on a
connection kept for intake (no pool checkout and pre-ping per delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from appservice.server.db_thread import DBThread
from appservice.server.http import MatrixHTTPError
from appservice.server.inbox import ITEM_BITS, MAX_TXN_ITEMS, Accepted, InboxItem, now_ms
from appservice.server.transaction import RawItem, parse_transaction

T = TypeVar("T")
Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

_Queued = tuple[str, Sequence[RawItem], bytes | None, asyncio.Future[Accepted | None]]
"""A delivery waiting for the next SQLite commit: txnId, items, body and its caller's answer."""
_ERROR_MAX = 2000
_TABLES = ("as_txn", "as_txn_items", "inbox")
_MISSING_TABLES = (
    "the as_txn/as_txn_items/inbox tables are missing: open the SQLStore (it creates the schema) "
    "first"
)

_INSERT_TXN = (
    "INSERT INTO as_txn (txn_id, received_at, event_count, done_at) VALUES (:t, :now, :n, :d) "
    "ON CONFLICT (txn_id) DO NOTHING"
)
_INSERT_ITEMS = "INSERT INTO as_txn_items (seq, body) VALUES (:s, :b)"
# PostgreSQL: both rows in one statement, so one round trip that commits both or neither; a known
# txnId inserts no row in either and returns none.
_INSERT_TXN_AND_ITEMS = (
    "WITH t AS (" + _INSERT_TXN + " RETURNING seq) "  # noqa: S608 - constants only
    "INSERT INTO as_txn_items (seq, body) SELECT seq, :b FROM t RETURNING seq"
)
_OPEN_TXN = (
    "SELECT t.seq, b.body FROM as_txn AS t JOIN as_txn_items AS b ON b.seq = t.seq "
    "WHERE t.txn_id = :t AND t.done_at IS NULL"
)
# Open transactions with their items, through the partial index on open transactions.
_OPEN_TXNS = (
    "SELECT t.seq, t.txn_id, b.body FROM as_txn AS t JOIN as_txn_items AS b ON b.seq = t.seq "
    "WHERE t.done_at IS NULL ORDER BY t.seq"
)
_ITEM_ROWS = "SELECT seq, state, attempts, last_error FROM inbox WHERE seq >= :lo ORDER BY seq"
_FAILED = (
    "SELECT seq, txn_id, kind, room_id, body, attempts, last_error FROM inbox WHERE state = 2 "
    "ORDER BY seq"
)
_MARK_TXN = "UPDATE as_txn SET done_at = :now WHERE txn_id = :t"
_MARK_ITEM = (
    "INSERT INTO inbox (seq, state, attempts, done_at) VALUES (:s, 1, 0, :now) "
    "ON CONFLICT (seq) DO UPDATE SET state = 1, done_at = excluded.done_at"
)
_ATTEMPT = (
    "INSERT INTO inbox (seq, state, attempts, last_error) VALUES (:s, 0, :n, :e) "
    "ON CONFLICT (seq) DO UPDATE SET attempts = excluded.attempts, "
    "last_error = excluded.last_error"
)
_TXN_OF = (
    "SELECT t.txn_id, b.body FROM as_txn AS t JOIN as_txn_items AS b ON b.seq = t.seq "
    "WHERE t.seq = :s"
)
_PARK = (
    "INSERT INTO inbox (seq, txn_id, kind, room_id, body, state, attempts, last_error, done_at) "
    "VALUES (:s, :t, :k, :r, :b, 2, :n, :e, :now) "
    "ON CONFLICT (seq) DO UPDATE SET txn_id = excluded.txn_id, kind = excluded.kind, "
    "room_id = excluded.room_id, body = excluded.body, state = 2, attempts = excluded.attempts, "
    "last_error = excluded.last_error, done_at = excluded.done_at"
)
# Pruning works by primary-key ranges, a chunk per commit, so it stays cheap however many
# transactions are kept: every transaction numbered below the bound is complete and was received
# before the retention. The bound is the oldest open transaction or the first one received since
# ``:b``, found by walking up from the oldest transaction that still has items (the walk covers
# only what this prune deletes). txnIds stay in ``as_txn`` for dedup; parked items stay.
_PRUNE_LOW = "SELECT MIN(seq) FROM as_txn_items"
_OLDEST_OPEN = "SELECT MIN(seq) FROM as_txn WHERE done_at IS NULL"
_FIRST_YOUNG = "SELECT seq FROM as_txn WHERE seq >= :lo AND received_at >= :b ORDER BY seq LIMIT 1"
_PRUNE_ITEMS = (
    "DELETE FROM as_txn_items WHERE seq IN "
    "(SELECT seq FROM as_txn_items WHERE seq < :s ORDER BY seq LIMIT :n)"
)
_PRUNE_MARKS = (
    "DELETE FROM inbox WHERE seq IN "
    "(SELECT seq FROM inbox WHERE seq < :s AND state <> 2 ORDER BY seq LIMIT :n)"
)
_PRUNE_CHUNK_ROWS = 10_000
_NO_BOUND = (1 << (63 - ITEM_BITS)) - 1  # above every transaction number; item seqs still fit


def _check_size(items: Sequence[RawItem]) -> None:
    if len(items) > MAX_TXN_ITEMS:
        raise ValueError(f"a transaction holds at most {MAX_TXN_ITEMS} items, not {len(items)}")


def _stored(items: Sequence[RawItem], body: bytes | None) -> bytes:
    """What ``as_txn_items.body`` holds: the transaction body as received when there is one
    (a JSON object), else the items as a JSON array of ``[kind, room_id, payload]``."""
    return body if body is not None else orjson.dumps(items)


def _stored_items(blob: bytes | memoryview, txn_id: str) -> list[Any]:
    """The items of stored transaction ``txn_id``, numbered as when it was accepted: a body is
    parsed again exactly as intake parsed it (see ``parse_transaction`` on keeping that stable).
    ``ValueError`` naming the transaction when the row no longer parses."""
    data = bytes(blob)
    try:
        if data.lstrip()[:1] == b"{":
            return parse_transaction(data)
        items: list[Any] = orjson.loads(data)
    except (MatrixHTTPError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"stored transaction {txn_id!r} does not parse: {exc}") from None
    return items


def _pending_items(
    open_txns: Sequence[Sequence[Any]], marks: Sequence[Sequence[Any]]
) -> list[InboxItem]:
    """The items of ``open_txns`` (seq, txn_id, items JSON) that ``marks`` (the inbox rows from
    the first of them on) do not show as done or parked, with their attempts so far."""
    by_seq = {int(seq): (state, attempts, error) for seq, state, attempts, error in marks}
    out: list[InboxItem] = []
    for txn_seq, txn_id, blob in open_txns:
        for item in Accepted(txn_id, int(txn_seq) << ITEM_BITS, _stored_items(blob, txn_id)):
            mark = by_seq.get(item.seq)
            if mark is None:
                out.append(item)
            elif mark[0] == 0:
                item.attempts, item.last_error = int(mark[1]), mark[2]
                out.append(item)
    return out


def _failed_item(row: Sequence[Any]) -> InboxItem:
    seq, txn_id, kind, room_id, body, attempts, last_error = row
    return InboxItem(
        int(seq), txn_id, kind, room_id, orjson.loads(bytes(body)), int(attempts), last_error
    )


def _park_params(
    seq: int, found: Sequence[Any] | None, attempts: int, error: str
) -> dict[str, Any]:
    """The parked row for item ``seq``, copied out of its transaction ``found`` (txn_id, items)."""
    if found is None:
        raise LookupError(f"inbox item {seq} is not in any stored transaction")
    index = seq & ((1 << ITEM_BITS) - 1)
    items = _stored_items(found[1], found[0])
    if index >= len(items):
        raise LookupError(f"inbox item {seq} is not in transaction {found[0]!r}")
    kind, room_id, payload = items[index]
    return {
        "s": seq, "t": found[0], "k": kind, "r": room_id, "b": orjson.dumps(payload),
        "n": attempts, "e": error[:_ERROR_MAX], "now": now_ms(),
    }  # fmt: skip


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

    async def accept(
        self, txn_id: str, items: Sequence[RawItem], body: bytes | None = None
    ) -> Accepted | None:
        """Record the txnId and store the items in one commit; ``None`` when already recorded.

        With ``body`` (what ``parse_transaction`` turned into ``items``) the body is stored as it
        came, not the items serialised again: a restart parses it the same way."""
        return await self.accept_soon(txn_id, items, body)

    def accept_soon(
        self, txn_id: str, items: Sequence[RawItem], body: bytes | None = None
    ) -> asyncio.Future[Accepted | None]:
        """Start :meth:`accept` now and return the future of its result, so a caller can act on
        the commit from a done callback, without a task of its own. Awaited directly, a
        cancelled caller cancels the future: shield it when the commit must be seen through."""
        _check_size(items)
        return self._backend.accept_soon(txn_id, items, body)

    async def pending(self) -> list[InboxItem]:
        """Items of transactions not complete that are neither done nor parked, by sequence."""
        return await self._backend.pending()

    async def failed(self) -> list[InboxItem]:
        """Items parked after failing handlers, by sequence."""
        return await self._backend.failed()

    async def mark_done(self, items: Sequence[InboxItem], complete_txn_ids: Sequence[str]) -> None:
        """``as_txn.done_at`` for complete transactions (one row each) and a done row for each
        other item, in one commit."""
        if not items and not complete_txn_ids:
            return
        now = now_ms()
        await self._backend.write(
            [
                (_MARK_ITEM, [{"now": now, "s": item.seq} for item in items]),
                (_MARK_TXN, [{"now": now, "t": txn_id} for txn_id in complete_txn_ids]),
            ]
        )

    async def record_attempt(self, seq: int, attempts: int, error: str) -> None:
        """Store the attempt count and the last error; the item stays pending."""
        params = {"s": seq, "n": attempts, "e": error[:_ERROR_MAX]}
        await self._backend.write([(_ATTEMPT, [params])])

    async def mark_failed(self, seq: int, attempts: int, error: str) -> None:
        """Park the item: a state 2 row with attempts, last_error and a copy of the item."""
        await self._backend.park(seq, attempts, error)

    async def prune(self, done_before_ms: int) -> int:
        """Delete the items of complete transactions received before ``done_before_ms`` (the
        txnIds stay, for dedup; parked items stay, for operators); how many transactions."""
        bound = await self._backend.prune_bound(done_before_ms)
        if bound is None:
            return 0
        total = 0
        for sql, limit in ((_PRUNE_ITEMS, bound), (_PRUNE_MARKS, bound << ITEM_BITS)):
            while True:
                deleted = await self._backend.delete_chunk(sql, limit, _PRUNE_CHUNK_ROWS)
                if sql is _PRUNE_ITEMS:
                    total += deleted
                if deleted < _PRUNE_CHUNK_ROWS:
                    break
        return total


def _bound(low: int | None, oldest_open: int | None, first_young: int | None) -> int | None:
    """Prune below this transaction number (``None``: nothing to prune)."""
    if low is None:
        return None
    candidates = [s for s in (oldest_open, first_young) if s is not None]
    return min(candidates) if candidates else _NO_BOUND


class _SQLiteBackend:
    """Stdlib sqlite3 on one worker thread: the whole intake is one hop off the event loop."""

    def __init__(self, path: str, synchronous: Synchronous) -> None:
        self._path = path
        self._synchronous = synchronous
        self._thread = DBThread("appservice-inbox")
        self._conn: sqlite3.Connection | None = None
        self._marks: sqlite3.Connection | None = None
        self._queue: list[_Queued] = []
        self._committing = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._thread.running:
            raise RuntimeError("the inbox is not open")
        return await self._thread.run(fn, *args)

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the inbox is not open")
        return self._conn

    def _m(self) -> sqlite3.Connection:
        if self._marks is None:
            raise RuntimeError("the inbox is not open")
        return self._marks

    async def open(self) -> None:
        self._thread.start()
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
            for table in _TABLES:
                conn.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - fixed names
        except sqlite3.OperationalError as exc:
            conn.close()
            if "no such" in str(exc):
                raise RuntimeError(_MISSING_TABLES) from None
            raise
        marks = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        marks.execute("PRAGMA synchronous=NORMAL")
        self._conn, self._marks = conn, marks

    async def close(self) -> None:
        if not self._thread.running:
            return
        if self._conn is not None:
            await self._run(self._c().close)
            self._conn = None
        if self._marks is not None:
            await self._run(self._m().close)
            self._marks = None
        await self._thread.stop()

    def accept_soon(
        self, txn_id: str, items: Sequence[RawItem], body: bytes | None
    ) -> asyncio.Future[Accepted | None]:
        # Group commit: deliveries arriving while a commit is running share the next one, each
        # in its own savepoint (one failing rolls back only itself); every caller is answered
        # only after the COMMIT that holds its rows.
        if not self._thread.running:
            raise RuntimeError("the inbox is not open")
        future: asyncio.Future[Accepted | None] = asyncio.get_running_loop().create_future()
        self._queue.append((txn_id, items, body, future))
        if not self._committing:
            self._commit_queued()
        return future

    def _commit_queued(self) -> None:
        """Hand the queued deliveries to the thread as one commit; the next batch starts when
        this one is answered."""
        batch, self._queue = self._queue, []
        self._committing = True
        self._thread.submit(
            partial(self._accept_batch, [(t, i, b) for t, i, b, _ in batch]),
            partial(self._batch_done, batch),
        )

    def _batch_done(
        self,
        batch: list[_Queued],
        results: list[int | Exception | None] | None,
        error: BaseException | None,
    ) -> None:
        """Answer each delivery of a finished commit: an ``Accepted``, ``None`` for a known
        txnId, or the error. The next batch is handed over first, so deliveries that queued
        meanwhile do not wait for these answers."""
        self._committing = False
        if self._queue and self._thread.running:
            self._commit_queued()
        for i, (txn_id, items, _, future) in enumerate(batch):
            if future.done():  # the request went away; its rows are committed (or not) anyway
                continue
            result = error if results is None else results[i]
            if isinstance(result, BaseException):
                future.set_exception(result)
            elif result is None:
                future.set_result(None)
            else:
                future.set_result(Accepted(txn_id, result << ITEM_BITS, items))

    def _accept_batch(
        self, batch: list[tuple[str, Sequence[RawItem], bytes | None]]
    ) -> list[int | Exception | None]:
        conn = self._c()
        results: list[int | Exception | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for txn_id, items, body in batch:
                if len(batch) == 1:
                    results.append(self._accept_one(conn, txn_id, items, body))
                    continue
                conn.execute("SAVEPOINT txn")
                try:
                    results.append(self._accept_one(conn, txn_id, items, body))
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
    def _accept_one(
        conn: sqlite3.Connection, txn_id: str, items: Sequence[RawItem], body: bytes | None
    ) -> int | None:
        """Insert one delivery inside the open transaction; its number, or None when known."""
        now = now_ms()
        params = {"t": txn_id, "now": now, "n": len(items), "d": None if items else now}
        cur = conn.execute(_INSERT_TXN, params)  # nothing to handle: complete at once
        if cur.rowcount == 0:
            return None
        txn_seq = cur.lastrowid
        assert txn_seq is not None
        if items:
            conn.execute(_INSERT_ITEMS, {"s": txn_seq, "b": _stored(items, body)})
        return txn_seq

    async def pending(self) -> list[InboxItem]:
        def run() -> tuple[list[Any], list[Any]]:
            conn = self._c()
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                open_txns = conn.execute(_OPEN_TXNS).fetchall()
                lo = int(open_txns[0][0]) << ITEM_BITS if open_txns else None
                marks = [] if lo is None else conn.execute(_ITEM_ROWS, {"lo": lo}).fetchall()
            finally:
                conn.execute("COMMIT")
            return open_txns, marks

        open_txns, marks = await self._run(run)
        return _pending_items(open_txns, marks)

    async def failed(self) -> list[InboxItem]:
        rows = await self._run(lambda: self._c().execute(_FAILED).fetchall())
        return [_failed_item(r) for r in rows]

    async def write(self, statements: list[tuple[str, list[dict[str, Any]]]]) -> None:
        await self._run(self._write, statements)

    def _write(self, statements: list[tuple[str, list[dict[str, Any]]]]) -> None:
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

    async def park(self, seq: int, attempts: int, error: str) -> None:
        def run() -> None:
            conn = self._m()
            found = conn.execute(_TXN_OF, {"s": seq >> ITEM_BITS}).fetchone()
            self._write([(_PARK, [_park_params(seq, found, attempts, error)])])

        await self._run(run)

    async def prune_bound(self, before_ms: int) -> int | None:
        def run() -> int | None:
            conn = self._m()
            low = conn.execute(_PRUNE_LOW).fetchone()[0]
            if low is None:
                return None
            oldest_open = conn.execute(_OLDEST_OPEN).fetchone()[0]
            young = conn.execute(_FIRST_YOUNG, {"lo": low, "b": before_ms}).fetchone()
            return _bound(low, oldest_open, None if young is None else young[0])

        return await self._run(run)

    async def delete_chunk(self, sql: str, bound: int, limit: int) -> int:
        def run() -> int:  # autocommit: one chunk per commit, intake goes on in between
            return int(self._m().execute(sql, {"s": bound, "n": limit}).rowcount)

        return await self._run(run)


class _HeldConnection:
    """One autocommit connection kept for intake, instead of a pool checkout (and its pre-ping
    round trip) per delivery. One the server closed is replaced before use; one that failed in
    use is dropped, so the delivery fails (the homeserver retries it) and the next connects
    again. Deliveries take turns on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under it, to see it was closed
        self._lock = asyncio.Lock()

    async def scalar(self, sql: str, params: dict[str, Any]) -> Any:
        """Run one statement (its own transaction) and return its first column."""
        async with self._lock:
            conn = self._conn
            if conn is None or self._driver.is_closed():
                await self._drop()
                conn = await self._engine.connect()
                try:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    self._driver = (await conn.get_raw_connection()).driver_connection
                except BaseException:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    raise
                self._conn = conn
            try:
                return (await conn.execute(text(sql), params)).scalar()
            except BaseException:
                await self._drop()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class _EngineBackend:
    """PostgreSQL through the store's SQLAlchemy engine (Core text statements, no ORM)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._intake = _HeldConnection(engine)
        # txnIds whose insert failed on the way back: the server may have committed it anyway
        # (a connection lost before the answer), so its retry may find it "known" with nothing
        # queued here.
        self._unsure: set[str] = set()

    async def open(self) -> None:
        async with self._engine.connect() as conn:
            for table in _TABLES:
                found = await conn.execute(text("SELECT to_regclass(:t)"), {"t": table})
                if found.scalar() is None:
                    raise RuntimeError(_MISSING_TABLES)

    async def close(self) -> None:
        await self._intake.close()

    def accept_soon(
        self, txn_id: str, items: Sequence[RawItem], body: bytes | None
    ) -> asyncio.Future[Accepted | None]:
        return asyncio.ensure_future(self._accept(txn_id, items, body))

    async def _accept(
        self, txn_id: str, items: Sequence[RawItem], body: bytes | None
    ) -> Accepted | None:
        now = now_ms()
        params: dict[str, Any] = {"t": txn_id, "now": now, "n": len(items), "d": None}
        if items:
            sql = _INSERT_TXN_AND_ITEMS
            params["b"] = _stored(items, body)
        else:  # nothing to handle: complete at once
            sql = _INSERT_TXN + " RETURNING seq"
            params["d"] = now
        try:
            txn_seq = await self._intake.scalar(sql, params)
        except Exception:
            self._unsure.add(txn_id)
            raise
        unsure = txn_id in self._unsure
        self._unsure.discard(txn_id)
        if txn_seq is not None:
            return Accepted(txn_id, int(txn_seq) << ITEM_BITS, items)
        if unsure:  # committed by the attempt that failed: its items are this process's to queue
            return await self._open_txn(txn_id)
        return None

    async def _open_txn(self, txn_id: str) -> Accepted | None:
        """Stored transaction ``txn_id`` with its items, when it is not complete yet."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(text(_OPEN_TXN), {"t": txn_id})).first()
        if row is None:
            return None
        return Accepted(txn_id, int(row[0]) << ITEM_BITS, _stored_items(row[1], txn_id))

    async def pending(self) -> list[InboxItem]:
        async with self._engine.connect() as conn:
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            open_txns = (await conn.execute(text(_OPEN_TXNS))).all()
            marks: Sequence[Any] = []
            if open_txns:
                lo = int(open_txns[0][0]) << ITEM_BITS
                marks = (await conn.execute(text(_ITEM_ROWS), {"lo": lo})).all()
        return _pending_items(open_txns, marks)

    async def failed(self) -> list[InboxItem]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(_FAILED))).all()
        return [_failed_item(r) for r in rows]

    async def write(self, statements: list[tuple[str, list[dict[str, Any]]]]) -> None:
        async with self._engine.begin() as conn:
            for sql, params in statements:
                if params:
                    await conn.execute(text(sql), params)

    async def park(self, seq: int, attempts: int, error: str) -> None:
        async with self._engine.begin() as conn:
            found = (await conn.execute(text(_TXN_OF), {"s": seq >> ITEM_BITS})).first()
            await conn.execute(text(_PARK), _park_params(seq, found, attempts, error))

    async def prune_bound(self, before_ms: int) -> int | None:
        async with self._engine.connect() as conn:
            low = await _scalar(conn, _PRUNE_LOW)
            if low is None:
                return None
            oldest_open = await _scalar(conn, _OLDEST_OPEN)
            young = await _scalar(conn, _FIRST_YOUNG, {"lo": low, "b": before_ms})
        return _bound(low, oldest_open, young)

    async def delete_chunk(self, sql: str, bound: int, limit: int) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(text(sql), {"s": bound, "n": limit})
        return int(res.rowcount)


async def _scalar(conn: AsyncConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    return (await conn.execute(text(sql), params or {})).scalar()
