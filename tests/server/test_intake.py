"""Durable intake on SQLite and PostgreSQL: one atomic commit per transaction, dedup by txnId
(after a restart and under a race), items stored raw, bookkeeping of done/failed items."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from appservice.events import Event
from appservice.registration import Registration
from appservice.server import AppService, SQLInbox, sql_inbox
from appservice.server.inbox import STATE_DONE, STATE_FAILED, STATE_PENDING, now_ms
from appservice.server.sql_inbox import _PENDING
from appservice.server.transaction import parse_transaction
from tests.server.conftest import message, txn_body


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


FULL_TXN = {
    "events": [message("!a:x", 1), message("!b:x", 2)],
    "ephemeral": [
        {"type": "m.typing", "room_id": "!a:x", "content": {"user_ids": ["@u:x"]}},
        {"type": "m.presence", "sender": "@u:x", "content": {"presence": "online"}},
    ],
    "de.sorunome.msc2409.to_device": [
        {
            "type": "m.room_key_request",
            "sender": "@u:x",
            "to_user_id": "@_t_p:localhost",
            "to_device_id": "DEV",
            "content": {"action": "request"},
        }
    ],
    "org.matrix.msc3202.device_lists": {"changed": ["@u:x"], "left": []},
    "org.matrix.msc3202.device_one_time_keys_count": {"@_t_p:localhost": {"DEV": {"curve": 5}}},
    "org.matrix.msc3202.device_unused_fallback_key_types": {"@_t_p:localhost": {"DEV": ["curve"]}},
}


async def test_accept_stores_every_item_raw_in_order(engine: AsyncEngine) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        items = parse_transaction(orjson.dumps(FULL_TXN))
        accepted = await inbox.accept("t1", items)
        assert accepted is not None
        kinds = [i.kind for i in accepted]
        assert kinds == [
            "event",
            "event",
            "ephemeral",
            "ephemeral",
            "to_device",
            "device_lists",
            "otk",
        ]
        seqs = [i.seq for i in accepted]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        stored = await rows(
            engine, "SELECT seq, txn_id, kind, room_id, body, state FROM inbox ORDER BY seq"
        )
        assert [r[0] for r in stored] == seqs
        assert [r[2] for r in stored] == kinds
        assert [r[3] for r in stored] == ["!a:x", "!b:x", "!a:x", "", "", "", ""]
        assert {r[1] for r in stored} == {"t1"}
        assert {r[5] for r in stored} == {STATE_PENDING}
        assert orjson.loads(bytes(stored[0][4])) == FULL_TXN["events"][0]  # type: ignore[index]
        assert orjson.loads(bytes(stored[6][4])) == {
            "one_time_keys_count": {"@_t_p:localhost": {"DEV": {"curve": 5}}},
            "unused_fallback_key_types": {"@_t_p:localhost": {"DEV": ["curve"]}},
        }
        (txn,) = await rows(engine, "SELECT txn_id, event_count, received_at FROM as_txn")
        assert txn[0] == "t1"
        assert txn[1] == 7
        assert abs(txn[2] - now_ms()) < 60_000
        assert [i.seq for i in await inbox.pending()] == seqs
        assert (await inbox.pending())[0].payload == FULL_TXN["events"][0]  # type: ignore[index]
    finally:
        await inbox.close()


async def test_known_txn_is_ignored_also_after_restart(engine: AsyncEngine) -> None:
    items = parse_transaction(txn_body([message("!a:x", 1)]))
    first = SQLInbox(engine)
    await first.open()
    assert await first.accept("t1", items) is not None
    assert await first.accept("t1", items) is None
    assert await first.accept("t-empty", []) == []
    await first.close()
    again = SQLInbox(engine)  # a restarted process
    await again.open()
    assert await again.accept("t1", parse_transaction(txn_body([message("!a:x", 9)]))) is None
    assert await again.accept("t-empty", []) is None
    await again.close()
    assert len(await rows(engine, "SELECT seq FROM inbox")) == 1
    assert len(await rows(engine, "SELECT txn_id FROM as_txn")) == 2


async def test_racing_deliveries_record_once(engine: AsyncEngine) -> None:
    # Separate inbox instances: separate connections racing in the database, not in Python.
    inboxes = [SQLInbox(engine) for _ in range(4)]
    for inbox in inboxes:
        await inbox.open()
    try:
        for round_ in range(5):
            items = parse_transaction(txn_body([message("!a:x", i) for i in range(20)]))
            results = await asyncio.gather(*(ib.accept(f"race{round_}", items) for ib in inboxes))
            assert sum(r is not None for r in results) == 1
        assert len(await rows(engine, "SELECT seq FROM inbox")) == 100
    finally:
        for inbox in inboxes:
            await inbox.close()


async def make_failing_trigger(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON inbox WHEN NEW.room_id = '!boom:x' "
                    "BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.room_id = '!boom:x' THEN RAISE EXCEPTION 'boom'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON inbox FOR EACH ROW "
                    "EXECUTE FUNCTION boom()"
                )
            )


async def test_a_failed_insert_records_neither_txn_nor_items(
    engine: AsyncEngine, registration: Registration
) -> None:
    await make_failing_trigger(engine)
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))
    async with svc:
        transport = httpx.ASGITransport(app=svc.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://as") as http:
            body = txn_body([message("!a:x", 1), message("!boom:x", 2)])
            headers = {"Authorization": f"Bearer {registration.hs_token}"}
            resp = await http.put("/_matrix/app/v1/transactions/t1", content=body, headers=headers)
            assert resp.status_code == 500
            assert resp.json()["errcode"] == "M_UNKNOWN"
    assert await rows(engine, "SELECT txn_id FROM as_txn") == []
    assert await rows(engine, "SELECT seq FROM inbox") == []


async def test_200_means_committed_and_close_leaves_handled_done(
    engine: AsyncEngine, registration: Registration
) -> None:
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))
    gate = asyncio.Event()
    first_done = asyncio.Event()
    seen: list[str] = []

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        if event.room_id == "!slow:x":
            await gate.wait()
        seen.append(event.id)
        first_done.set()

    headers = {"Authorization": f"Bearer {registration.hs_token}"}
    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as") as http:
            body = txn_body([message("!fast:x", 1), message("!slow:x", 2), message("!slow:x", 3)])
            resp = await http.put("/_matrix/app/v1/transactions/t1", content=body, headers=headers)
            assert resp.status_code == 200
            # Another connection already sees the txn and its items: the commit preceded the 200.
            assert len(await rows(engine, "SELECT seq FROM inbox")) == 3
            assert await rows(engine, "SELECT txn_id FROM as_txn") == [("t1",)]
            await asyncio.wait_for(first_done.wait(), 10)
            asyncio.get_running_loop().call_later(0.2, gate.set)
    # close waited for the running slow handler; the queued third one stays pending
    states = await rows(engine, "SELECT room_id, state FROM inbox ORDER BY seq")
    assert states[0] == ("!fast:x", STATE_DONE)
    assert states[1] == ("!slow:x", STATE_DONE)
    assert seen == ["$ev1-!fast:x", "$ev2-!slow:x"]
    assert states[2] == ("!slow:x", STATE_PENDING)


async def test_bookkeeping_done_failed_attempts_prune(engine: AsyncEngine) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        accepted = await inbox.accept(
            "t", parse_transaction(txn_body([message("!a:x", i) for i in range(6)]))
        )
        assert accepted is not None
        seqs = [i.seq for i in accepted]
        await inbox.mark_done([accepted[0], accepted[1], accepted[3]], [])
        await inbox.record_attempt(seqs[2], 1, "ValueError: once")
        await inbox.mark_failed(seqs[4], 3, "RuntimeError: " + "x" * 5000)
        pending = await inbox.pending()
        assert [i.seq for i in pending] == [seqs[2], seqs[5]]
        assert pending[0].attempts == 1
        assert pending[0].last_error == "ValueError: once"
        (failed,) = await inbox.failed()
        assert failed.seq == seqs[4]
        assert failed.attempts == 3
        assert failed.last_error is not None
        assert failed.last_error.startswith("RuntimeError")
        assert len(failed.last_error) <= 2000
        state = dict(await rows(engine, "SELECT seq, state FROM inbox"))
        assert state[seqs[0]] == STATE_DONE
        assert state[seqs[4]] == STATE_FAILED
        assert await inbox.prune(now_ms() - 60_000) == 0
        # the items of a transaction still open stay until it completes
        assert await inbox.prune(now_ms() + 60_000) == 0
        await inbox.mark_done([accepted[2], accepted[5]], ["t"])
        assert await inbox.prune(now_ms() + 60_000) == 5
        assert await rows(engine, "SELECT seq FROM inbox") == [(seqs[4],)]  # parked stays
    finally:
        await inbox.close()


async def test_resume_after_restart_through_appservice(
    engine: AsyncEngine, registration: Registration
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    await inbox.accept("old", parse_transaction(txn_body([message("!a:x", i) for i in range(5)])))
    await inbox.close()
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))
    seen: list[str] = []
    svc.on_event_type("m.room.message")(lambda e: seen.append(e.id))
    async with svc:
        await asyncio.wait_for(svc.dispatcher.wait_idle(), 10)
    assert seen == [f"$ev{i}-!a:x" for i in range(5)]
    # the whole transaction is complete: one as_txn row marks its items done
    ((done_at,),) = await rows(engine, "SELECT done_at FROM as_txn")
    assert done_at is not None
    check = SQLInbox(engine)
    await check.open()
    assert await check.pending() == []
    await check.close()


def test_sqlite_in_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="MemoryInbox"):
        SQLInbox(create_async_engine("sqlite+aiosqlite:///:memory:"))


async def test_missing_tables_are_a_clear_error(tmp_path: Path) -> None:
    inbox = SQLInbox(create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    with pytest.raises(RuntimeError, match="as_txn/inbox tables are missing"):
        await inbox.open()


async def test_database_url_opens_a_store_and_dedups_across_restarts(
    registration: Registration, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}"
    headers = {"Authorization": f"Bearer {registration.hs_token}"}
    seen: list[str] = []
    for run in range(2):
        svc = AppService(registration, "http://127.0.0.1:1", database_url=url)
        svc.on_event_type("m.room.message")(lambda e: seen.append(e.id))
        async with svc:
            transport = httpx.ASGITransport(app=svc.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://as") as http:
                body = txn_body([message("!a:x", run)])
                for txn in ("1", str(run + 2)):
                    r = await http.put(
                        f"/_matrix/app/v1/transactions/{txn}", content=body, headers=headers
                    )
                    assert r.status_code == 200
            await asyncio.wait_for(svc.dispatcher.wait_idle(), 10)
    # run 0: txn 1 and 2 carry ev0; run 1: txn 1 is known (nothing), txn 3 carries ev1
    assert seen == ["$ev0-!a:x", "$ev0-!a:x", "$ev1-!a:x"]


async def test_complete_transactions_are_marked_whole_and_partial_ones_per_item(
    engine: AsyncEngine,
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        whole = await inbox.accept("whole", parse_transaction(txn_body([message("!a:x", 1)] * 3)))
        part = await inbox.accept("part", parse_transaction(txn_body([message("!a:x", 2)] * 3)))
        assert whole is not None
        assert part is not None
        await inbox.mark_done([part[0]], ["whole"])
        assert [i.seq for i in await inbox.pending()] == [part[1].seq, part[2].seq]
        done = dict(await rows(engine, "SELECT txn_id, done_at FROM as_txn"))
        assert done["whole"] is not None
        assert done["part"] is None
        states = dict(await rows(engine, "SELECT seq, state FROM inbox"))
        assert states[part[0].seq] == STATE_DONE
        assert states[whole[0].seq] == STATE_PENDING  # done through its transaction
        await inbox.mark_done([], ["part"])
        assert await inbox.pending() == []
        assert await inbox.prune(now_ms() + 60_000) == 6
    finally:
        await inbox.close()


async def test_concurrent_deliveries_share_a_commit_and_dedup_inside_it(
    engine: AsyncEngine,
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        bodies = {f"g{i}": parse_transaction(txn_body([message("!a:x", i)] * 4)) for i in range(6)}
        calls = [inbox.accept(t, items) for t, items in bodies.items()]
        calls += [inbox.accept("g0", bodies["g0"]), inbox.accept("g3", bodies["g3"])]
        results = await asyncio.gather(*calls)
        names = [*bodies, "g0", "g3"]
        winners = [name for name, r in zip(names, results, strict=True) if r is not None]
        assert sorted(winners) == sorted(bodies)  # each txnId accepted by exactly one delivery
        seqs = [i.seq for r in results if r for i in r]
        assert len(set(seqs)) == 24
        stored = await rows(engine, "SELECT seq, txn_id FROM inbox ORDER BY seq")
        returned = sorted((i.seq, i.txn_id) for r in results if r for i in r)
        assert [(s, t) for s, t in stored] == returned  # what each caller got is what is stored
    finally:
        await inbox.close()


async def test_resume_finds_pending_items_by_seq_range_not_a_scan(
    engine: AsyncEngine, backend: str
) -> None:
    """Intake writes no index entry per item; a restart still finds what is pending cheaply."""
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        done = await inbox.accept("done", parse_transaction(txn_body([message("!a:x", 1)])))
        open_ = await inbox.accept(
            "open", parse_transaction(txn_body([message("!a:x", 2), message("!b:x", 3)]))
        )
        assert done is not None
        assert open_ is not None
        await inbox.mark_done([], ["done"])
        await inbox.mark_done(open_[:1], [])
        first = await rows(engine, "SELECT txn_id, first_seq FROM as_txn ORDER BY txn_id")
        assert first == [("done", done[0].seq), ("open", open_[0].seq)]
        assert [i.seq for i in await inbox.pending()] == [open_[1].seq]
        if backend == "sqlite":
            plan = await rows(engine, "EXPLAIN QUERY PLAN SELECT seq FROM inbox " + _PENDING)
            steps = " | ".join(str(r[-1]) for r in plan)
            assert "SEARCH inbox USING INTEGER PRIMARY KEY (rowid>?)" in steps, steps
            assert "SCAN inbox" not in steps, steps
            plan = await rows(engine, "EXPLAIN QUERY PLAN SELECT seq FROM inbox WHERE state = 2")
            assert "ix_inbox_failed" in str(plan[-1][-1])
    finally:
        await inbox.close()


async def test_prune_keeps_the_retention_and_deletes_in_chunks(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        old = await inbox.accept("old", parse_transaction(txn_body([message("!a:x", 1)] * 5)))
        young = await inbox.accept("young", parse_transaction(txn_body([message("!a:x", 2)])))
        assert old is not None
        assert young is not None
        await inbox.mark_done([], ["old", "young"])
        async with engine.begin() as conn:  # "old" arrived two hours ago
            await conn.execute(
                text("UPDATE as_txn SET received_at = :t WHERE txn_id = 'old'"),
                {"t": now_ms() - 7_200_000},
            )
        monkeypatch.setattr(sql_inbox, "_PRUNE_CHUNK_ROWS", 2)
        assert await inbox.prune(now_ms() - 3_600_000) == 5  # in chunks of 2, 2 and 1
        assert await rows(engine, "SELECT seq FROM inbox") == [(young[0].seq,)]
        assert await inbox.prune(now_ms() - 3_600_000) == 0
        assert await rows(engine, "SELECT txn_id FROM as_txn ORDER BY txn_id") == [
            ("old",),
            ("young",),
        ]  # the txnIds stay, for dedup
    finally:
        await inbox.close()
