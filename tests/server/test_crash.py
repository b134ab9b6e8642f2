"""Crash safety: SIGKILL the server with events accepted but unhandled, restart it, and every
event is handled exactly once, in per-room order (SQLite and PostgreSQL, through SQLStore)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from appservice.registration import Registration
from appservice.server.inbox import ITEM_BITS
from tests.helpers.loopback import free_port
from tests.server.conftest import PG_URL, need_postgres

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ["!crash1:localhost", "!crash2:localhost", "!crash3:localhost"]
PER_ROOM = 20
BLOCK_FROM = 6
# Items of open transactions that no inbox row marks done or parked (item i of transaction n is
# numbered n << ITEM_BITS | i).
PENDING = (
    "SELECT COALESCE(SUM(event_count), 0) - (SELECT count(*) FROM inbox AS i "
    f"JOIN as_txn AS o ON o.seq = i.seq >> {ITEM_BITS} WHERE o.done_at IS NULL AND i.state <> 0) "
    "FROM as_txn WHERE done_at IS NULL"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL for a brand-new database (a SQLite file, or a PostgreSQL database)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
        return
    await need_postgres()
    name = f"crash_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


def start(
    reg_path: Path, url: str, port: int, out: Path, block_from: int
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tests.server.crash_app", "--registration", str(reg_path)]
    cmd += ["--database-url", url, "--port", str(port), "--out", str(out)]
    cmd += ["--block-from", str(block_from)]
    return subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)


async def eventually(check: Callable[[], Any], what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


async def scalar(url: str, sql: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


def event(room: str, n: int) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "sender": "@alice:localhost",
        "event_id": f"${room[1:7]}-{n}",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": f"m{n}", "n": n},
    }


async def test_sigkill_with_accepted_events_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    reg = Registration.generate(
        "crash", "http://127.0.0.1:1", "bot", "_c_", server_name="localhost"
    )
    reg_path = tmp_path / "registration.yaml"
    reg.save(reg_path)
    out = tmp_path / "handled.txt"
    blocked = Path(str(out) + ".blocked")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {reg.hs_token}"}
    # 6 transactions of 10 events, the three rooms interleaved.
    stream = [event(ROOMS[i % 3], i // 3) for i in range(3 * PER_ROOM)]
    txns = {str(t + 1): stream[t * 10 : (t + 1) * 10] for t in range(6)}

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:

        async def ready() -> bool:
            try:
                return (await http.get("/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        proc = start(reg_path, database_url, port, out, BLOCK_FROM)
        try:
            await eventually(ready, "the server to start")
            for txn_id, events in txns.items():
                body = orjson.dumps({"events": events})
                resp = await http.put(f"/_matrix/app/v1/transactions/{txn_id}", content=body)
                assert resp.status_code == 200

            async def all_blocked() -> bool:
                return len(lines(blocked)) == 3 and len(lines(out)) == 3 * BLOCK_FROM

            await eventually(all_blocked, "each room to block")

            async def marks_committed() -> bool:
                pending = await scalar(database_url, PENDING)
                return pending == 3 * (PER_ROOM - BLOCK_FROM)

            # every handled event's mark is committed; the rest is accepted but unhandled
            await eventually(marks_committed, "the done marks of handled events")
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        proc = start(reg_path, database_url, port, out, -1)
        try:
            await eventually(ready, "the restarted server")

            async def all_handled() -> bool:
                return len(lines(out)) >= 3 * PER_ROOM

            await eventually(all_handled, "the resumed events")
            # A redelivered old transaction does nothing; a new one is handled once.
            old = orjson.dumps({"events": txns["1"]})
            assert (
                await http.put("/_matrix/app/v1/transactions/1", content=old)
            ).status_code == 200
            new = orjson.dumps({"events": [event(room, PER_ROOM) for room in ROOMS]})
            assert (
                await http.put("/_matrix/app/v1/transactions/7", content=new)
            ).status_code == 200

            async def new_handled() -> bool:
                return len(lines(out)) >= 3 * (PER_ROOM + 1)

            await eventually(new_handled, "the new transaction")
            await asyncio.sleep(0.3)  # room for a wrong duplicate to show up
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stderr = proc.stderr.read().decode() if proc.stderr else ""

    handled = lines(out)
    assert len(handled) == 3 * (PER_ROOM + 1), stderr[-2000:]
    for room in ROOMS:
        numbers = [int(n) for r, n, _ in handled if r == room]
        assert numbers == list(range(PER_ROOM + 1)), (room, numbers)
    ids = [e for _, _, e in handled]
    assert len(set(ids)) == len(ids)
    # clean SIGTERM shutdown left every handled event marked done
    assert await scalar(database_url, PENDING) == 0
