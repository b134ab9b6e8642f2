"""Benchmark: appending a homeserver transaction (50 events) to the durable inbox, one commit each.

This is the database half of accepting a transaction, through the server's own code
(``SQLInbox.accept``): record the txnId in ``as_txn`` and the transaction's body as received (one
row in ``as_txn_items``) in ONE database transaction, committed before the 200 would be sent. The
events are parsed beforehand (parsing is measured elsewhere), so the figures are the store's alone.

    .venv/bin/python bench/store_inbox.py                       # both backends
    .venv/bin/python bench/store_inbox.py --backends sqlite --transactions 2000

PostgreSQL: a fresh database is created on the server named by --postgres (default the local test
server) and dropped afterwards. SQLite: a fresh file in a temporary directory, WAL, and the
inbox's default ``synchronous=FULL`` (``--sqlite-synchronous NORMAL`` to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _machine import machine, package_versions
from _postgres import fresh_database

from appservice.server import SQLInbox
from appservice.server.sql_inbox import Synchronous
from appservice.server.transaction import RawItem, parse_transaction
from appservice.store import SQLStore

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass
class Result:
    backend: str
    transactions: int
    events: int
    seconds: float
    latencies_ms: list[float]

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{self.backend:<50} {self.transactions / self.seconds:>9.0f} txn/s "
            f"{self.events / self.seconds:>11.0f} events/s   commit p50 {p50:6.2f} ms  "
            f"p99 {p99:6.2f} ms"
        )


def make_event(i: int, room: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "sender": f"@user{i % 97}:example.org",
        "event_id": f"${uuid.uuid4().hex}{uuid.uuid4().hex[:11]}",
        "origin_server_ts": 1_700_000_000_000 + i,
        "content": {"msgtype": "m.text", "body": f"message number {i} " + "lorem ipsum " * 12},
        "unsigned": {"age": 1234},
    }


async def append_transactions(
    store: SQLStore, label: str, args: argparse.Namespace, synchronous: Synchronous = "FULL"
) -> Result:
    rooms = [f"!room{r}:example.org" for r in range(8)]
    transactions: list[tuple[bytes, list[RawItem]]] = []  # the body, as intake stores it
    for t in range(args.transactions + args.warmup):
        room_of = [rooms[(t + i) % 8] for i in range(args.events)]
        body = orjson.dumps({"events": [make_event(i, room) for i, room in enumerate(room_of)]})
        transactions.append((body, parse_transaction(body)))
    inbox = SQLInbox(store.engine, sqlite_synchronous=synchronous)
    await inbox.open()
    latencies: list[float] = []
    started = 0.0
    try:
        for t, (body, items) in enumerate(transactions):
            if t == args.warmup:
                started = time.perf_counter()
            t0 = time.perf_counter()
            if await inbox.accept(f"txn-{t}", items, body) is None:
                raise SystemExit(f"{label}: txn-{t} was taken for a repeat")
            if t >= args.warmup:
                latencies.append((time.perf_counter() - t0) * 1000)
        seconds = time.perf_counter() - started
        stored = len(await inbox.pending())
    finally:
        await inbox.close()
    expected = len(transactions) * args.events
    if stored != expected:
        raise SystemExit(f"{label}: {stored} items pending, expected {expected}")
    return Result(label, args.transactions, args.transactions * args.events, seconds, latencies)


async def bench_sqlite(args: argparse.Namespace) -> tuple[Result, str]:
    with tempfile.TemporaryDirectory(prefix="appservice-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with SQLStore(url) as store:
            label = f"sqlite (WAL, synchronous={args.sqlite_synchronous})"
            result = await append_transactions(store, label, args, args.sqlite_synchronous)
        return result, f"SQLite {sqlite3.sqlite_version}, file in {tempfile.gettempdir()}"


async def bench_postgres(args: argparse.Namespace) -> tuple[Result, str]:
    async with fresh_database(args.postgres) as (url, admin):
        version = await admin.fetchval("SHOW server_version")
        sync_commit = await admin.fetchval("SHOW synchronous_commit")
        fsync = await admin.fetchval("SHOW fsync")
        async with SQLStore(url) as store:
            result = await append_transactions(store, "postgresql (asyncpg)", args)
    info = f"PostgreSQL {version} (synchronous_commit={sync_commit}, fsync={fsync})"
    return result, info


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50, help="events per transaction")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="server to create a database on")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()

    print("appservice store benchmark: accept one transaction (txnId row + items row) per commit")
    print(f"machine:   {machine()}")
    print(
        f"versions:  Python {platform.python_version()}, "
        f"{package_versions(('sqlalchemy', 'aiosqlite', 'asyncpg', 'orjson'))}"
    )
    print(
        f"load:      {args.transactions} transactions x {args.events} events "
        f"(after {args.warmup} warm-up), one commit each, sequential"
    )
    results: list[tuple[Result, str]] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "sqlite":
            results.append(await bench_sqlite(args))
        elif backend == "postgresql":
            results.append(await bench_postgres(args))
        else:
            raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgresql")
    for _, info in results:
        print(f"server:    {info}")
    for result, _ in results:
        print(result.line())
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
