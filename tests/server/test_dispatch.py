"""Dispatch: order within a room, rooms in parallel up to the bound, failing handlers retried then
parked, echo marking, the non-room parts of a transaction, and resume at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from appservice.events import Event
from appservice.registration import Registration
from appservice.server import (
    AppService,
    DeviceLists,
    MemoryInbox,
    OTKCounts,
    SQLInbox,
    ToDeviceEvent,
)
from appservice.server.inbox import STATE_FAILED
from tests.server.conftest import message, txn_body


def service(registration: Registration, **kw: Any) -> AppService:
    kw.setdefault("inbox", MemoryInbox())
    kw.setdefault("retry_delay", 0.01)
    return AppService(registration, "http://127.0.0.1:1", **kw)


async def deliver(svc: AppService, txn_id: str, body: dict[str, Any] | bytes) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    await svc.receive_transaction(txn_id, raw)


async def idle(svc: AppService) -> None:
    await asyncio.wait_for(svc.dispatcher.wait_idle(), 10)


async def test_order_within_each_room_with_uneven_handlers(registration: Registration) -> None:
    svc = service(registration, max_parallel_rooms=4)
    seen: dict[str, list[int]] = defaultdict(list)
    rng = random.Random(7)

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        await asyncio.sleep(rng.random() / 500)
        seen[event.room_id].append(event.timestamp)

    rooms = [f"!r{i}:x" for i in range(6)]
    async with svc:
        n = 0
        for t in range(10):
            events = []
            for _ in range(30):
                events.append(message(rng.choice(rooms), n))
                n += 1
            await deliver(svc, f"t{t}", txn_body(events))
        await idle(svc)
    assert sum(len(v) for v in seen.values()) == 300
    for stamps in seen.values():
        assert stamps == sorted(stamps)
    assert svc.dispatcher.stats.handled == 300


async def test_rooms_run_in_parallel_up_to_the_bound(registration: Registration) -> None:
    svc = service(registration, max_parallel_rooms=2)
    running: set[str] = set()
    most = 0
    release = asyncio.Event()

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        nonlocal most
        running.add(event.room_id)
        most = max(most, len(running))
        await release.wait()
        running.discard(event.room_id)

    async with svc:
        await deliver(svc, "t", txn_body([message(f"!r{i}:x", i) for i in range(4)]))
        for _ in range(100):
            if len(running) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(running) == 2  # two rooms are inside their handlers at the same time
        await asyncio.sleep(0.05)
        assert len(running) == 2  # and no third one while both are busy
        release.set()
        await idle(svc)
    assert most == 2


async def test_slow_plain_handlers_let_the_loop_run_between_items(
    registration: Registration,
) -> None:
    """Plain handlers that take a while do not hold the event loop for a whole transaction:
    other tasks (the next delivery, a health check) run between items, and rooms keep order."""
    svc = service(registration)
    seen: list[tuple[str, int, int]] = []
    ticks = 0

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:
        seen.append((event.room_id, event.timestamp, ticks))
        busy_until = time.perf_counter() + 0.002  # twice the dispatcher's turn
        while time.perf_counter() < busy_until:
            pass

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with svc:
        ticking = asyncio.create_task(ticker())
        await deliver(svc, "t", txn_body([message(f"!r{n % 2}:x", n) for n in range(20)]))
        await idle(svc)
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    assert len(seen) == 20
    for room in ("!r0:x", "!r1:x"):
        stamps = [stamp for r, stamp, _ in seen if r == room]
        assert stamps == sorted(stamps)
    # between two turns of the loop, at most one handler per room (the two rooms may each have
    # a worker)
    ticks_seen = [tick for _, _, tick in seen]
    assert all(later > tick for tick, later in zip(ticks_seen, ticks_seen[2:], strict=False))


async def test_a_room_waiting_to_retry_does_not_hold_up_the_others(
    registration: Registration,
) -> None:
    svc = service(registration, retry_delay=30.0)
    seen: list[str] = []
    others_done = asyncio.Event()

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:  # plain handlers: rooms still run beside the waiting one
        if event.room_id == "!bad:x":
            raise ConnectionError("remote down")
        seen.append(event.room_id)
        if len(seen) == 4:
            others_done.set()

    rooms = ["!bad:x", "!a:x", "!b:x", "!c:x"]
    async with asyncio.timeout(10), svc:
        await deliver(svc, "t0", txn_body([message("!a:x", 0)]))
        await idle(svc)  # every worker is idle now: each room needs one woken for it
        await deliver(svc, "t1", txn_body([message(room, i) for i, room in enumerate(rooms, 1)]))
        await others_done.wait()
        assert svc.dispatcher.pending == 1  # the failed item waits out its retry delay
    assert seen == ["!a:x", *rooms[1:]]
    assert await svc.inbox.pending() != []  # closing ended the wait; the item stays pending


async def test_failing_handler_is_retried_then_parked_and_the_room_goes_on(
    registration: Registration, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    svc = service(registration, inbox=SQLInbox(engine), max_attempts=3)
    calls: list[str] = []

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        calls.append(event.id)
        if event.content["body"] == "message 1":
            raise ValueError("cannot bridge this")

    caplog.set_level(logging.WARNING, logger="appservice")
    async with svc:
        await deliver(svc, "t", txn_body([message("!r:x", i) for i in range(3)]))
        await idle(svc)
        failed = await svc.inbox.failed()
    assert calls == ["$ev0-!r:x", "$ev1-!r:x", "$ev1-!r:x", "$ev1-!r:x", "$ev2-!r:x"]
    assert svc.dispatcher.stats.failed == 1
    assert svc.dispatcher.stats.retries == 2
    assert svc.dispatcher.stats.handled == 2
    assert [f.payload["event_id"] for f in failed] == ["$ev1-!r:x"]
    assert failed[0].attempts == 3
    assert failed[0].last_error == "ValueError: cannot bridge this"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT state, attempts, last_error FROM inbox WHERE seq = :s"),
                {"s": failed[0].seq},
            )
        ).one()
    assert tuple(row) == (STATE_FAILED, 3, "ValueError: cannot bridge this")
    logged = [r.getMessage() for r in caplog.records]
    assert any("$ev1-!r:x" in m and "!r:x" in m and "attempt 1 of 3" in m for m in logged)
    assert any("parked" in m and "$ev1-!r:x" in m for m in logged)
    text_metrics = svc.metrics_text()
    assert "appservice_items_failed_total 1.0\n" in text_metrics


async def test_retry_resumes_at_the_failing_handler(registration: Registration) -> None:
    svc = service(registration)
    first: list[str] = []
    second: list[str] = []

    @svc.on_event_type("m.room.message")
    def one(event: Event) -> None:  # a plain function handler
        first.append(event.id)

    @svc.on_event_type("m.room.message")
    async def two(event: Event) -> None:
        second.append(event.id)
        if len(second) == 1:
            raise ConnectionError("remote down for a moment")

    async with svc:
        await deliver(svc, "t", txn_body([message("!r:x", 1)]))
        await idle(svc)
    assert first == ["$ev1-!r:x"]
    assert second == ["$ev1-!r:x", "$ev1-!r:x"]
    assert svc.dispatcher.stats.failed == 0


async def test_echo_events_are_marked(registration: Registration) -> None:
    svc = service(registration)
    everything: list[str] = []
    not_echo: list[str] = []
    svc.on_event_type("*")(lambda e: everything.append(e.sender))
    svc.on_event_type("m.room.message", ignore_echo=True)(lambda e: not_echo.append(e.sender))
    senders = ["@alice:localhost", "@bot:localhost", "@_t_puppet:localhost", "@bot:elsewhere"]
    async with svc:
        await deliver(
            svc, "t", txn_body([message("!r:x", i, sender=s) for i, s in enumerate(senders)])
        )
        await idle(svc)
    assert everything == senders
    assert not_echo == ["@alice:localhost", "@bot:elsewhere"]
    assert svc.is_echo(Event(type="m.room.message", sender="@bot:localhost"))
    assert svc.is_echo(Event(type="m.room.message", sender="@_t_x:localhost"))
    assert not svc.is_echo(Event(type="m.room.message", sender="@_t_x:evil.example"))


@pytest.mark.parametrize("prefix", ["", "de.sorunome.msc2409."])
async def test_ephemeral_and_to_device_stable_and_unstable(
    registration: Registration, prefix: str
) -> None:
    svc = service(registration)
    ephemeral: list[Event] = []
    to_device: list[ToDeviceEvent] = []
    svc.on_ephemeral(ephemeral.append)
    svc.on_to_device(to_device.append)
    body = {
        "events": [],
        f"{prefix}ephemeral": [
            {"type": "m.typing", "room_id": "!r:x", "content": {"user_ids": ["@a:x"]}},
            {"type": "m.receipt", "room_id": "!r:x", "content": {"$e": {"m.read": {}}}},
            {"type": "m.presence", "sender": "@a:x", "content": {"presence": "online"}},
        ],
        f"{prefix}to_device": [
            {
                "type": "m.dummy",
                "sender": "@a:x",
                "to_user_id": "@_t_p:localhost",
                "to_device_id": "D",
                "content": {"k": 1},
            }
        ],
    }
    async with svc:
        await deliver(svc, "t", body)
        await idle(svc)
    assert [(e.type, e.room_id) for e in ephemeral] == [
        ("m.typing", "!r:x"),
        ("m.receipt", "!r:x"),
        ("m.presence", ""),
    ]
    assert to_device == [ToDeviceEvent("m.dummy", "@a:x", "@_t_p:localhost", "D", {"k": 1})]


@pytest.mark.parametrize("prefix", ["", "org.matrix.msc3202."])
async def test_msc3202_device_lists_and_key_counts(registration: Registration, prefix: str) -> None:
    svc = service(registration)
    lists: list[DeviceLists] = []
    counts: list[OTKCounts] = []
    svc.on_device_lists(lists.append)
    svc.on_otk_counts(counts.append)
    body = {
        "events": [],
        f"{prefix}device_lists": {"changed": ["@a:x"], "left": ["@b:x"]},
        f"{prefix}device_one_time_keys_count": {"@_t_p:localhost": {"D": {"signed_curve25519": 3}}},
        f"{prefix}device_unused_fallback_key_types": {
            "@_t_p:localhost": {"D": ["signed_curve25519"]}
        },
    }
    async with svc:
        await deliver(svc, "t", body)
        await deliver(
            svc, "t2", {"events": [], f"{prefix}device_lists": {"changed": [], "left": []}}
        )
        await idle(svc)
    assert lists == [DeviceLists(changed=["@a:x"], left=["@b:x"])]
    assert counts == [
        OTKCounts(
            {"@_t_p:localhost": {"D": {"signed_curve25519": 3}}},
            {"@_t_p:localhost": {"D": ["signed_curve25519"]}},
        )
    ]


async def test_stable_key_wins_over_unstable_duplicate(registration: Registration) -> None:
    svc = service(registration)
    ephemeral: list[Event] = []
    svc.on_ephemeral(ephemeral.append)
    typing = {"type": "m.typing", "room_id": "!r:x", "content": {}}
    async with svc:
        await deliver(
            svc,
            "t",
            {"events": [], "ephemeral": [typing], "de.sorunome.msc2409.ephemeral": [typing]},
        )
        await idle(svc)
    assert len(ephemeral) == 1


async def test_resume_at_start_in_room_order(registration: Registration) -> None:
    inbox = MemoryInbox()
    from appservice.server.transaction import parse_transaction

    await inbox.accept("a", parse_transaction(txn_body([message("!a:x", 0), message("!b:x", 1)])))
    await inbox.accept("b", parse_transaction(txn_body([message("!a:x", 2)])))
    svc = service(registration, inbox=inbox)
    seen: list[str] = []
    svc.on_event_type("m.room.message")(lambda e: seen.append(e.id))
    async with svc:
        await idle(svc)
    assert sorted(seen) == ["$ev0-!a:x", "$ev1-!b:x", "$ev2-!a:x"]
    assert seen.index("$ev0-!a:x") < seen.index("$ev2-!a:x")
    assert await inbox.pending() == []


async def test_memory_inbox_bookkeeping_of_single_items() -> None:
    """Items marked one by one, retried and parked, before and after their transaction ends."""
    from appservice.server.transaction import parse_transaction

    inbox = MemoryInbox()
    a = await inbox.accept("a", parse_transaction(txn_body([message("!a:x", i) for i in range(4)])))
    b = await inbox.accept("b", parse_transaction(txn_body([message("!b:x", 9)])))
    assert a is not None
    assert b is not None
    assert await inbox.accept("a", []) is None
    assert await inbox.accept("empty", []) == []
    assert "empty" not in inbox._open  # complete at once: nothing left to mark
    await inbox.mark_done([a[0]], [])
    await inbox.record_attempt(a[1].seq, 2, "ValueError: twice")
    await inbox.mark_failed(a[2].seq, 3, "ValueError: thrice")
    pending = await inbox.pending()
    assert [i.seq for i in pending] == [a[1].seq, a[3].seq, b[0].seq]
    assert (pending[0].attempts, pending[0].last_error) == (2, "ValueError: twice")
    assert [(i.seq, i.attempts) for i in await inbox.failed()] == [(a[2].seq, 3)]
    await inbox.mark_done([a[1]], ["b"])
    assert [i.seq for i in await inbox.pending()] == [a[3].seq]
    await inbox.mark_done([], ["a"])
    assert await inbox.pending() == []
    assert [i.seq for i in await inbox.failed()] == [a[2].seq]


async def test_events_without_handlers_are_marked_done(registration: Registration) -> None:
    inbox = MemoryInbox()
    svc = service(registration, inbox=inbox)
    async with svc:
        await deliver(svc, "t", txn_body([message("!a:x", 0)]))
        await idle(svc)
    assert svc.dispatcher.stats.handled == 1
    assert await inbox.pending() == []


async def test_starts_and_accepts_while_the_homeserver_is_down(
    registration: Registration, tmp_path: Any
) -> None:
    from tests.helpers.loopback import free_port

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    svc = AppService(registration, down, database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    seen: list[str] = []
    svc.on_event_type("m.room.message")(lambda e: seen.append(e.id))
    async with asyncio.timeout(10), svc:
        await deliver(svc, "t", txn_body([message("!r:x", 1)]))
        await idle(svc)
    assert seen == ["$ev1-!r:x"]


async def test_a_running_service_prunes_handled_items(
    registration: Registration, engine: AsyncEngine
) -> None:
    """No restart needed: the pruner deletes what the retention no longer keeps."""
    svc = service(registration, inbox=SQLInbox(engine), done_retention_ms=0, prune_interval=0.05)
    svc.on_event_type("m.room.message")(lambda event: None)
    async with svc:
        await deliver(svc, "t", txn_body([message("!r:x", i) for i in range(3)]))
        await idle(svc)
        async with asyncio.timeout(10):
            while True:
                async with engine.connect() as conn:
                    query = text("SELECT COUNT(*) FROM as_txn_items")
                    left = (await conn.execute(query)).scalar()
                if left == 0:
                    break
                await asyncio.sleep(0.05)
    with pytest.raises(ValueError, match="prune_interval"):
        service(registration, prune_interval=0)


async def test_handler_latency_times_plain_and_async_handlers(registration: Registration) -> None:
    svc = service(registration)

    @svc.on_event_type("m.room.message")
    async def slow(event: Event) -> None:
        await asyncio.sleep(0.02)

    svc.on_event_type("m.room.topic")(lambda event: None)
    async with svc:
        topic = {**message("!r:x", 9), "type": "m.room.topic", "state_key": ""}
        await deliver(svc, "t", txn_body([message("!r:x", 1), message("!s:x", 2), topic]))
        await idle(svc)
    latency = svc.metrics.handler_latency
    assert latency.count == 3
    assert latency.sum >= 0.04  # the two slow handlers' sleeps at least
