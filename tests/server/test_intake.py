"""Durable intake on SQLite and PostgreSQL: one atomic commit per transaction, dedup by txnId
(after a restart and under a race), a transaction's items stored as one row, bookkeeping of
done/failed items in rows of their own."""

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
from appservice.server import appservice as appservice_module
from appservice.server.inbox import ITEM_BITS, STATE_DONE, STATE_FAILED, now_ms
from appservice.server.sql_inbox import _ITEM_ROWS, _OPEN_TXNS, _stored_items
from appservice.server.transaction import parse_transaction
from tests.server.conftest import PG_URL, message, txn_body


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def stored_txns(engine: AsyncEngine) -> dict[str, tuple[int, list[Any]]]:
    """Each stored transaction's number and decoded items, by txnId."""
    found = await rows(
        engine,
        "SELECT t.txn_id, t.seq, b.body FROM as_txn AS t JOIN as_txn_items AS b ON b.seq = t.seq",
    )
    return {txn_id: (int(seq), _stored_items(body, txn_id)) for txn_id, seq, body in found}


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
        # One row for the whole transaction; item i is numbered (txn number << ITEM_BITS) + i.
        ((txn_seq, stored),) = (await stored_txns(engine)).values()
        assert seqs == [(txn_seq << ITEM_BITS) + i for i in range(7)]
        assert [kind for kind, _, _ in stored] == kinds
        assert [room for _, room, _ in stored] == ["!a:x", "!b:x", "!a:x", "", "", "", ""]
        assert stored[0][2] == FULL_TXN["events"][0]  # type: ignore[index]
        assert stored[6][2] == {
            "one_time_keys_count": {"@_t_p:localhost": {"DEV": {"curve": 5}}},
            "unused_fallback_key_types": {"@_t_p:localhost": {"DEV": ["curve"]}},
        }
        assert await rows(engine, "SELECT seq FROM inbox") == []  # no row per item
        (txn,) = await rows(engine, "SELECT txn_id, event_count, received_at, done_at FROM as_txn")
        assert txn[0] == "t1"
        assert txn[1] == 7
        assert abs(txn[2] - now_ms()) < 60_000
        assert txn[3] is None
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
    assert list(await stored_txns(engine)) == ["t1"]  # an empty transaction stores no items
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
        stored = await stored_txns(engine)
        assert sorted(stored) == [f"race{i}" for i in range(5)]
        assert all(len(items) == 20 for _, items in stored.values())
    finally:
        for inbox in inboxes:
            await inbox.close()


async def make_failing_trigger(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON as_txn_items "
                    "WHEN instr(NEW.body, CAST('!boom:x' AS BLOB)) > 0 "
                    "BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                    "IF position('!boom:x'::bytea IN NEW.body) > 0 THEN "
                    "RAISE EXCEPTION 'boom'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE INSERT ON as_txn_items FOR EACH ROW "
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
    assert await rows(engine, "SELECT seq FROM as_txn_items") == []


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgres_intake_goes_on_after_the_server_drops_its_connection(
    engine: AsyncEngine,
) -> None:
    """PostgreSQL closes the connection intake keeps (a restart, an operator's
    ``pg_terminate_backend``): the next delivery connects again and is stored once."""
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        items = parse_transaction(txn_body([message("!a:x", 1)]))
        assert await inbox.accept("before", items) is not None
        async with engine.connect() as conn:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        admin = create_async_engine(PG_URL)
        try:
            async with admin.connect() as conn:
                killed = await conn.scalar(
                    text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                        "FROM pg_stat_activity WHERE application_name = :name"
                    ),
                    {"name": schema},
                )
        finally:
            await admin.dispose()
        assert killed >= 1
        await asyncio.sleep(0.2)  # the client reads the server's goodbye
        assert await inbox.accept("after", items) is not None
        assert await inbox.accept("after", items) is None
        assert [item.txn_id for item in await inbox.pending()] == ["before", "after"]
    finally:
        await inbox.close()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgres_commit_whose_answer_was_lost_is_handled_on_the_retry(
    engine: AsyncEngine, registration: Registration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert commits but the connection dies before the answer (mocked: PostgreSQL can't be
    made to do that on demand): that delivery gets a 500, and the homeserver's retry of the
    txnId, "known" by then, still has its events handled, once."""
    real_scalar = sql_inbox._HeldConnection.scalar
    lost: list[str] = []

    async def commit_then_lose_the_answer(self: Any, sql: str, params: dict[str, Any]) -> Any:
        result = await real_scalar(self, sql, params)
        if params["t"] == "t1" and not lost:
            lost.append(params["t"])
            raise ConnectionResetError("connection lost before the answer")
        return result

    monkeypatch.setattr(sql_inbox._HeldConnection, "scalar", commit_then_lose_the_answer)
    seen: list[str] = []
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:
        seen.append(event.id)

    async with svc:
        transport = httpx.ASGITransport(app=svc.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://as") as http:
            body = txn_body([message("!a:x", 1), message("!b:x", 2)])
            headers = {"Authorization": f"Bearer {registration.hs_token}"}
            url = "/_matrix/app/v1/transactions/t1"
            statuses = [(await http.put(url, content=body, headers=headers)).status_code]
            for _ in range(2):  # the retry, then a repeat of it
                statuses.append((await http.put(url, content=body, headers=headers)).status_code)
                await asyncio.wait_for(svc.dispatcher.wait_idle(), 10)
    assert lost == ["t1"]
    assert statuses == [500, 200, 200]
    assert sorted(seen) == ["$ev1-!a:x", "$ev2-!b:x"]
    done = await rows(engine, "SELECT txn_id FROM as_txn WHERE done_at IS NOT NULL")
    assert done == [("t1",)]


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
            ((txn_seq, items),) = (await stored_txns(engine)).values()
            assert len(items) == 3
            ((raw,),) = await rows(engine, "SELECT body FROM as_txn_items")
            assert bytes(raw) == body  # stored as received, not serialised again
            await asyncio.wait_for(first_done.wait(), 10)
            asyncio.get_running_loop().call_later(0.2, gate.set)
    # close waited for the running slow handler; the queued third one stays pending
    base = txn_seq << ITEM_BITS
    states = await rows(engine, "SELECT seq, state FROM inbox ORDER BY seq")
    assert states == [(base, STATE_DONE), (base + 1, STATE_DONE)]
    assert seen == ["$ev1-!fast:x", "$ev2-!slow:x"]
    check = SQLInbox(engine)
    await check.open()
    assert [(i.seq, i.payload["event_id"]) for i in await check.pending()] == [
        (base + 2, "$ev3-!slow:x")
    ]
    await check.close()


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
        assert seqs[5] not in state  # an item not handled yet has no row
        assert await inbox.prune(now_ms() - 60_000) == 0
        # the items of a transaction still open stay until it completes
        assert await inbox.prune(now_ms() + 60_000) == 0
        await inbox.mark_done([accepted[2], accepted[5]], ["t"])
        assert await inbox.prune(now_ms() + 60_000) == 1
        assert await rows(engine, "SELECT seq FROM as_txn_items") == []
        assert await rows(engine, "SELECT seq FROM inbox") == [(seqs[4],)]  # parked stays
        # ... with its own copy of the item, now that its transaction's items are gone
        (still,) = await inbox.failed()
        assert (still.txn_id, still.kind, still.room_id) == ("t", "event", "!a:x")
        assert still.payload == accepted[4].payload
    finally:
        await inbox.close()


async def test_a_body_is_stored_as_received_and_parsed_again_after_a_restart(
    engine: AsyncEngine,
) -> None:
    """With the body given, the items row is those exact bytes (nothing re-serialised), and a
    restart numbers the items parsed from it exactly as intake did: done marks, a parked item
    and the pending rest all land on the right items, of every kind."""
    body = b" " + orjson.dumps(FULL_TXN)  # JSON may start with whitespace
    items = parse_transaction(body)
    assert [kind for kind, _, _ in items] == [
        "event", "event", "ephemeral", "ephemeral", "to_device", "device_lists", "otk",
    ]  # fmt: skip
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        accepted = await inbox.accept("raw", items, body)
        assert accepted is not None
        ((stored,),) = await rows(engine, "SELECT body FROM as_txn_items")
        assert bytes(stored) == body
        await inbox.mark_done([accepted[0], accepted[3]], [])
        await inbox.mark_failed(accepted[5].seq, 3, "RuntimeError: no")
    finally:
        await inbox.close()
    again = SQLInbox(engine)
    await again.open()
    try:
        pending = await again.pending()
        (parked,) = await again.failed()
    finally:
        await again.close()
    left = [accepted[i] for i in (1, 2, 4, 6)]
    assert [(i.seq, i.kind, i.room_id, i.payload) for i in pending] == [
        (i.seq, i.kind, i.room_id, i.payload) for i in left
    ]
    assert (parked.seq, parked.kind, parked.payload) == (
        accepted[5].seq, "device_lists", FULL_TXN["org.matrix.msc3202.device_lists"],
    )  # fmt: skip


@pytest.mark.parametrize("stored", [b'{"events": 5}', b"[[", b"  {oops"])
async def test_a_stored_row_that_does_not_parse_is_a_clear_error(
    engine: AsyncEngine, stored: bytes
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        body = txn_body([message("!a:x", 1)])
        assert await inbox.accept("broken", parse_transaction(body), body) is not None
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE as_txn_items SET body = :b"), {"b": stored})
        with pytest.raises(ValueError, match="stored transaction 'broken' does not parse"):
            await inbox.pending()
    finally:
        await inbox.close()


async def test_parking_an_unknown_item_is_a_clear_error(engine: AsyncEngine) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        accepted = await inbox.accept("t", parse_transaction(txn_body([message("!a:x", 1)])))
        assert accepted is not None
        with pytest.raises(LookupError, match="not in transaction 't'"):
            await inbox.mark_failed(accepted[0].seq + 1, 3, "boom")
        with pytest.raises(LookupError, match="not in any stored transaction"):
            await inbox.mark_failed(accepted[0].seq + (5 << ITEM_BITS), 3, "boom")
        assert await inbox.failed() == []
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


async def test_resumed_items_keep_the_attempts_they_had(
    engine: AsyncEngine, registration: Registration
) -> None:
    inbox = SQLInbox(engine)
    await inbox.open()
    accepted = await inbox.accept(
        "tried", parse_transaction(txn_body([message("!a:x", 1), message("!a:x", 2)]))
    )
    assert accepted is not None
    for item in accepted:  # both failed twice before the restart
        await inbox.record_attempt(item.seq, 2, "ValueError: before")
    await inbox.close()
    svc = AppService(
        registration, "http://127.0.0.1:1", inbox=SQLInbox(engine), max_attempts=3, retry_delay=0
    )
    tries: list[str] = []

    def handler(event: Event) -> None:
        tries.append(event.id)
        if event.id == "$ev1-!a:x":
            raise ValueError("still broken")

    svc.on_event_type("m.room.message")(handler)
    async with svc:
        await asyncio.wait_for(svc.dispatcher.wait_idle(), 10)
        # one try was left for each: the broken one is parked after it, the other handled
        assert tries == ["$ev1-!a:x", "$ev2-!a:x"]
        (parked,) = await svc.inbox.failed()
        assert (parked.seq, parked.attempts) == (accepted[0].seq, 3)
        assert await svc.inbox.pending() == []


def test_sqlite_in_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="MemoryInbox"):
        SQLInbox(create_async_engine("sqlite+aiosqlite:///:memory:"))


async def test_missing_tables_are_a_clear_error(tmp_path: Path) -> None:
    inbox = SQLInbox(create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    with pytest.raises(RuntimeError, match="as_txn/as_txn_items/inbox tables are missing"):
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
        states = await rows(engine, "SELECT seq, state FROM inbox")
        assert states == [(part[0].seq, STATE_DONE)]  # "whole" is done through its transaction
        await inbox.mark_done([], ["part"])
        assert await inbox.pending() == []
        assert await inbox.prune(now_ms() + 60_000) == 2
        assert await rows(engine, "SELECT seq FROM inbox") == []
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
        # what each caller got is what is stored: its transaction's number and items
        stored = await stored_txns(engine)
        for name, result in zip(names, results, strict=True):
            if result is not None:
                txn_seq, items = stored[name]
                assert [i.seq for i in result] == [(txn_seq << ITEM_BITS) + n for n in range(4)]
                assert [i.payload for i in result] == [payload for _, _, payload in items]
    finally:
        await inbox.close()


async def test_resume_reads_open_transactions_through_indexes_not_a_scan(
    engine: AsyncEngine, backend: str
) -> None:
    """A restart finds the open transactions through the partial index, their item rows by
    primary-key range, and parked items through their own partial index."""
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
        assert [i.seq for i in await inbox.pending()] == [open_[1].seq]
        if backend == "sqlite":
            plan = await rows(engine, "EXPLAIN QUERY PLAN " + _OPEN_TXNS)
            steps = " | ".join(str(r[-1]) for r in plan)
            # a walk over the partial index holds only the open transactions
            assert steps == (
                "SCAN t USING INDEX ix_as_txn_open | SEARCH b USING INTEGER PRIMARY KEY (rowid=?)"
            ), steps
            plan = await rows(engine, "EXPLAIN QUERY PLAN " + _ITEM_ROWS, lo=0)
            assert "SEARCH inbox USING INTEGER PRIMARY KEY (rowid>?)" in str(plan[-1][-1])
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
        names = [f"old{i}" for i in range(5)] + ["young", "open"]
        accepted = {}
        for name in names:
            items = await inbox.accept(name, parse_transaction(txn_body([message("!a:x", 1)] * 2)))
            assert items is not None
            accepted[name] = items
        # a done mark of its own and a retry on "old1", handled before it completed
        await inbox.mark_done(accepted["old1"][:1], [])
        await inbox.record_attempt(accepted["old1"][1].seq, 1, "once")
        await inbox.mark_done([], names[:-1])
        async with engine.begin() as conn:  # everything but "young" arrived two hours ago
            await conn.execute(
                text("UPDATE as_txn SET received_at = :t WHERE txn_id <> 'young'"),
                {"t": now_ms() - 7_200_000},
            )
        monkeypatch.setattr(sql_inbox, "_PRUNE_CHUNK_ROWS", 2)
        assert await inbox.prune(now_ms() - 3_600_000) == 5  # in chunks of 2, 2 and 1
        left = await stored_txns(engine)
        assert sorted(left) == ["open", "young"]  # "open" is old but not complete
        assert await rows(engine, "SELECT seq FROM inbox") == []
        assert await inbox.prune(now_ms() - 3_600_000) == 0
        assert [i.txn_id for i in await inbox.pending()] == ["open", "open"]
        assert await rows(engine, "SELECT txn_id FROM as_txn ORDER BY seq") == [
            (name,) for name in names
        ]  # the txnIds stay, for dedup
        # "young" is past the retention once the clock moves on: pruned, though "open" is older
        await inbox.mark_done([], ["open"])
        assert await inbox.prune(now_ms() + 60_000) == 2
        assert await stored_txns(engine) == {}
    finally:
        await inbox.close()


async def test_too_many_items_in_one_transaction_is_413_and_records_nothing(
    engine: AsyncEngine, registration: Registration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item numbers keep ITEM_BITS bits for the index in the transaction: more items than that
    is refused before anything is stored (the bound is lowered here to stay quick)."""
    monkeypatch.setattr(appservice_module, "MAX_TXN_ITEMS", 3)
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))
    async with svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as") as http:
            headers = {"Authorization": f"Bearer {registration.hs_token}"}
            body = txn_body([message("!a:x", i) for i in range(4)])
            resp = await http.put("/_matrix/app/v1/transactions/t1", content=body, headers=headers)
            assert resp.status_code == 413
            assert resp.json()["errcode"] == "M_TOO_LARGE"
            assert "at most 3 items" in resp.json()["error"]
    assert await rows(engine, "SELECT txn_id FROM as_txn") == []
    monkeypatch.setattr(sql_inbox, "MAX_TXN_ITEMS", 3)  # the inbox guards itself as well
    inbox = SQLInbox(engine)
    await inbox.open()
    try:
        with pytest.raises(ValueError, match="at most 3 items, not 4"):
            await inbox.accept("t1", parse_transaction(body))
    finally:
        await inbox.close()


async def test_a_request_cancelled_during_the_commit_still_gets_its_items_handled(
    engine: AsyncEngine, registration: Registration
) -> None:
    """Workers are woken when the 200 goes out; a request cancelled before that (the client
    went away) must not leave its committed items waiting for some later wake-up."""
    svc = AppService(registration, "http://127.0.0.1:1", inbox=SQLInbox(engine))
    seen: list[str] = []
    both = asyncio.Event()

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:
        seen.append(event.id)
        if len(seen) == 2:
            both.set()

    async with svc:
        request = asyncio.ensure_future(
            svc.receive_transaction("t1", txn_body([message("!a:x", 1), message("!b:x", 2)]))
        )
        await asyncio.sleep(0)  # the commit has started
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(both.wait(), 10)  # the commit ends after the cancellation
        assert sorted(seen) == ["$ev1-!a:x", "$ev2-!b:x"]
    # and close, which sets the dispatcher closing and then cancels its tasks, returned: on
    # Python 3.11 asyncio.wait_for could swallow that cancellation and hang it
