"""Client.sync(): the /sync loop against a real Synapse, and against loopback servers that fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appservice.api.requests import ReqCreateRoom
from appservice.client import Client
from appservice.errors import HTTPError
from appservice.events import Event
from appservice.store import InMemoryStore
from appservice.sync import DefaultSyncer
from appservice.testing import SynapseServer
from tests.helpers.loopback import serve

PROMPT = 1.0  # seconds within which a stopped loop must return


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.05)


async def stop_and_time(client: Client, task: asyncio.Task[None]) -> float:
    """stop_sync() and return how long the loop took to end (its result must be None)."""
    started = time.monotonic()
    client.stop_sync()
    assert list(await asyncio.wait_for(asyncio.gather(task), timeout=5.0)) == [None]
    return time.monotonic() - started


@asynccontextmanager
async def user_client(synapse: SynapseServer) -> AsyncIterator[tuple[Client, InMemoryStore]]:
    user = await synapse.register_user()
    store = InMemoryStore()
    syncer = DefaultSyncer(user.user_id, store)
    async with Client(
        synapse.url, user.user_id, user.access_token, store=store, syncer=syncer
    ) as client:
        yield client, store


def default_syncer(client: Client) -> DefaultSyncer:
    assert isinstance(client.syncer, DefaultSyncer)
    return client.syncer


async def test_sync_loop_delivers_a_message_from_another_user_then_stops(
    synapse: SynapseServer,
) -> None:
    async with user_client(synapse) as (alice, store), user_client(synapse) as (bob, _):
        room_id = (await bob.create_room(ReqCreateRoom(preset="public_chat"))).room_id
        await alice.join_room(room_id)
        await bob.send_text(room_id, "before alice started syncing")

        received: asyncio.Queue[Event] = asyncio.Queue()
        default_syncer(alice).on_event_type("m.room.message", received.put_nowait)
        task = asyncio.create_task(alice.sync())
        try:
            await wait_until(
                lambda: _has_next_batch(store, alice.user_id), "the first sync to finish"
            )
            # the first sync is history: nothing dispatched, but the room state was recorded
            assert received.empty()
            room = await store.load_room(room_id)
            assert room is not None
            assert room.get_membership_state(alice.user_id) == "join"
            assert room.get_membership_state(bob.user_id) == "join"

            sent = await bob.send_text(room_id, "hello alice")
            event = await asyncio.wait_for(received.get(), timeout=20.0)
            assert (event.id, event.room_id, event.sender) == (
                sent.event_id,
                room_id,
                bob.user_id,
            )
            assert event.body() == "hello alice"

            # the filter sync() created is the syncer's, stored for the next run
            filter_id = await store.load_filter_id(alice.user_id)
            assert filter_id
            uploaded = await alice.make_request(
                "GET", alice.build_url("user", alice.user_id, "filter", filter_id)
            )
            assert uploaded["room"]["timeline"]["limit"] == 50
        finally:
            # the loop is now waiting in a 30 s long-poll: stopping must not wait for it
            elapsed = await stop_and_time(alice, task)
        assert elapsed < PROMPT
        assert received.empty()


async def test_joined_room_history_is_not_dispatched_but_later_messages_are(
    synapse: SynapseServer,
) -> None:
    async with user_client(synapse) as (alice, store), user_client(synapse) as (bob, _):
        room_id = (await bob.create_room(ReqCreateRoom(preset="public_chat"))).room_id
        await bob.send_text(room_id, "history")
        bodies: list[str | None] = []
        default_syncer(alice).on_event_type("m.room.message", lambda e: bodies.append(e.body()))
        task = asyncio.create_task(alice.sync())
        try:
            await wait_until(lambda: _has_next_batch(store, alice.user_id), "the first sync")
            await alice.join_room(room_id)  # the next /sync replays "history" with the join

            async def joined_seen() -> bool:
                room = await store.load_room(room_id)
                return room is not None and room.get_membership_state(alice.user_id) == "join"

            await wait_until(joined_seen, "the sync holding alice's own join")
            await bob.send_text(room_id, "fresh")
            await wait_until(lambda: _truthy(bodies), "the fresh message")
            await asyncio.sleep(0.3)  # room for a wrongly repeated or late dispatch
        finally:
            await stop_and_time(alice, task)
        assert bodies == ["fresh"]


async def test_a_second_sync_supersedes_the_first(synapse: SynapseServer) -> None:
    async with user_client(synapse) as (alice, store), user_client(synapse) as (bob, _):
        room_id = (await bob.create_room(ReqCreateRoom(preset="public_chat"))).room_id
        await alice.join_room(room_id)
        bodies: list[str | None] = []
        default_syncer(alice).on_event_type("m.room.message", lambda e: bodies.append(e.body()))

        first = asyncio.create_task(alice.sync())
        await wait_until(lambda: _has_next_batch(store, alice.user_id), "the first sync")
        await asyncio.sleep(0.2)  # first is now in its long-poll
        started = time.monotonic()
        second = asyncio.create_task(alice.sync())
        try:
            assert list(await asyncio.wait_for(asyncio.gather(first), timeout=5.0)) == [None]
            assert time.monotonic() - started < PROMPT
            assert not second.done()
            await bob.send_text(room_id, "to the second loop")
            await wait_until(lambda: _truthy(bodies), "the message")
            await asyncio.sleep(0.3)
        finally:
            await stop_and_time(alice, second)
        assert bodies == ["to the second loop"]  # dispatched once, by the one running loop


async def test_an_unknown_token_ends_sync_with_the_error(synapse: SynapseServer) -> None:
    user = await synapse.register_user()
    store = InMemoryStore()
    await store.save_filter_id(user.user_id, "0")
    syncer = DefaultSyncer(user.user_id, store, retry_delay=0.01)
    async with Client(synapse.url, user.user_id, "not-a-token", store=store, syncer=syncer) as c:
        with pytest.raises(HTTPError) as info:
            await asyncio.wait_for(c.sync(), timeout=10.0)
    assert info.value.code == 401
    assert info.value.wrapped_error is not None
    assert info.value.wrapped_error.errcode == "M_UNKNOWN_TOKEN"
    assert await store.load_next_batch(user.user_id) is None


class FailingHomeserver:
    """A loopback homeserver whose filter upload works and whose /sync fails or hangs."""

    def __init__(self, sync_status: int | None) -> None:
        self.sync_status = sync_status  # None: /sync hangs like a long-poll with no news
        self.sync_calls = 0

    async def filter(self, request: Request) -> Response:
        return JSONResponse({"filter_id": "f1"})

    async def sync(self, request: Request) -> Response:
        self.sync_calls += 1
        if self.sync_status is None:  # a long-poll with no news, until the client hangs up
            while (await request.receive())["type"] != "http.disconnect":
                pass
            return JSONResponse({"next_batch": "never"})
        return JSONResponse(
            {"errcode": "M_UNKNOWN", "error": "internal error"}, status_code=self.sync_status
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/_matrix/client/v3/user/{user_id}/filter", self.filter, methods=["POST"]),
                Route("/_matrix/client/v3/sync", self.sync, methods=["GET"]),
            ]
        )


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("retry_delay", [10.0, 0.02])
async def test_stop_sync_ends_the_loop_while_the_server_keeps_failing(
    status: int, retry_delay: float
) -> None:
    """500: the loop sleeps between failures; 503: the transport itself is retrying."""
    hs = FailingHomeserver(status)
    async with serve(hs.app()) as base_url:
        store = InMemoryStore()
        syncer = DefaultSyncer("@bot:loop", store, retry_delay=retry_delay)
        async with Client(base_url, "@bot:loop", "tok", store=store, syncer=syncer) as client:
            task = asyncio.create_task(client.sync())
            wanted = 3 if retry_delay < 1 and status == 500 else 1
            await wait_until(_at_least(hs, wanted), f"{wanted} failed /sync requests", 10.0)
            await asyncio.sleep(0.1)
            assert not task.done()
            elapsed = await stop_and_time(client, task)
            calls = hs.sync_calls
            await asyncio.sleep(0.2)
            assert hs.sync_calls == calls  # nothing keeps running after stop
        assert elapsed < PROMPT
        assert await store.load_filter_id("@bot:loop") == "f1"
        assert await store.load_next_batch("@bot:loop") is None


async def test_stop_sync_ends_a_long_poll_in_flight() -> None:
    hs = FailingHomeserver(None)
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, "@bot:loop", "tok", store=InMemoryStore()) as client,
    ):
        task = asyncio.create_task(client.sync())
        await wait_until(_at_least(hs, 1), "the long-poll to start", 10.0)
        elapsed = await stop_and_time(client, task)
        assert elapsed < PROMPT


async def test_stop_sync_without_a_running_loop_is_harmless() -> None:
    hs = FailingHomeserver(None)
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, "@bot:loop", "tok", store=InMemoryStore()) as client,
    ):
        client.stop_sync()
        task = asyncio.create_task(client.sync())  # a stop before start does not stick
        await wait_until(_at_least(hs, 1), "the long-poll to start", 10.0)
        assert not task.done()
        await stop_and_time(client, task)


def _at_least(hs: FailingHomeserver, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return hs.sync_calls >= n

    return check


async def _has_next_batch(store: InMemoryStore, user_id: str) -> bool:
    return await store.load_next_batch(user_id) is not None


async def _truthy(items: list[Any]) -> bool:
    return bool(items)
