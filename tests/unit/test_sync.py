"""DefaultSyncer: what a /sync response updates and dispatches (built from /sync-shaped JSON)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appservice.api.responses import RespSync
from appservice.client import Client
from appservice.client.syncing import SyncAPI
from appservice.errors import HTTPError, RespError
from appservice.events import Event
from appservice.filter import Filter, FilterPart, RoomFilter
from appservice.room import Room
from appservice.store import InMemoryStore
from appservice.sync import DefaultSyncer, Syncer, SyncError
from tests.helpers.loopback import serve

ME = "@bot:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM_A = "!aaa:example.org"
ROOM_B = "!bbb:example.org"


class RecordingStore(InMemoryStore):
    """An InMemoryStore that logs each call (name, argument) in order."""

    def __init__(self, log: list[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = log if log is not None else []

    async def save_room(self, room: Room) -> None:
        self.calls.append(("save_room", room.id))
        await super().save_room(room)

    async def save_next_batch(self, user_id: str, next_batch_token: str) -> None:
        self.calls.append(("save_next_batch", next_batch_token))
        await super().save_next_batch(user_id, next_batch_token)


_counter = 0


def ev(
    type_: str,
    sender: str = ALICE,
    content: dict[str, Any] | None = None,
    state_key: str | None = None,
) -> dict[str, Any]:
    """A client-format event as /sync sends it (no room_id: that comes from the map key)."""
    global _counter
    _counter += 1
    d: dict[str, Any] = {
        "type": type_,
        "sender": sender,
        "content": content if content is not None else {},
        "event_id": f"$ev{_counter}",
        "origin_server_ts": 1_700_000_000_000 + _counter,
    }
    if state_key is not None:
        d["state_key"] = state_key
    return d


def member(user: str, membership: str, sender: str | None = None) -> dict[str, Any]:
    return ev("m.room.member", sender or user, {"membership": membership}, state_key=user)


def text(body: str, sender: str = ALICE) -> dict[str, Any]:
    return ev("m.room.message", sender, {"msgtype": "m.text", "body": body})


def joined(
    state: list[dict[str, Any]] | None = None,
    timeline: list[dict[str, Any]] | None = None,
    ephemeral: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "state": {"events": state or []},
        "timeline": {"events": timeline or [], "limited": False, "prev_batch": "p0"},
        "ephemeral": {"events": ephemeral or []},
        "account_data": {"events": []},
    }


def sync_resp(
    join: dict[str, Any] | None = None,
    invite: dict[str, Any] | None = None,
    leave: dict[str, Any] | None = None,
    presence: list[dict[str, Any]] | None = None,
    account_data: list[dict[str, Any]] | None = None,
    next_batch: str = "s2",
) -> RespSync:
    return RespSync.from_dict(
        {
            "next_batch": next_batch,
            "rooms": {"join": join or {}, "invite": invite or {}, "leave": leave or {}},
            "presence": {"events": presence or []},
            "account_data": {"events": account_data or []},
        }
    )


class Recorder:
    """Registers itself for event types and records (type, room_id, event_id) of dispatches."""

    def __init__(self, syncer: DefaultSyncer, *types: str) -> None:
        self.seen: list[Event] = []
        for t in types:
            syncer.on_event_type(t, self.seen.append)

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        return [(e.type, e.room_id, e.id) for e in self.seen]


ALL_TYPES = (
    "m.room.message",
    "m.room.member",
    "m.room.name",
    "m.room.create",
    "m.typing",
    "m.presence",
    "m.direct",
)


def make() -> tuple[DefaultSyncer, RecordingStore, Recorder]:
    store = RecordingStore()
    syncer = DefaultSyncer(ME, store)
    return syncer, store, Recorder(syncer, *ALL_TYPES)


def test_default_syncer_satisfies_the_protocol() -> None:
    assert isinstance(DefaultSyncer(ME, InMemoryStore()), Syncer)


async def test_first_sync_dispatches_nothing_but_records_room_state() -> None:
    syncer, store, rec = make()
    resp = sync_resp(
        join={
            ROOM_A: joined(
                state=[ev("m.room.name", content={"name": "Lobby"}, state_key="")],
                timeline=[member(ALICE, "join"), text("old news")],
            )
        },
        invite={ROOM_B: {"invite_state": {"events": [member(ME, "invite", sender=BOB)]}}},
        presence=[ev("m.presence", ALICE, {"presence": "online"})],
    )
    await syncer.process_response(resp, "")

    assert rec.seen == []
    room = await store.load_room(ROOM_A)
    assert room is not None
    name = room.get_state_event("m.room.name", "")
    assert name is not None
    assert name.content == {"name": "Lobby"}
    assert room.get_membership_state(ALICE) == "join"
    invited = await store.load_room(ROOM_B)
    assert invited is not None
    assert invited.get_membership_state(ME) == "invite"
    assert ("save_room", ROOM_A) in store.calls
    assert ("save_room", ROOM_B) in store.calls


async def test_later_sync_dispatches_state_then_timeline_with_room_ids() -> None:
    syncer, store, rec = make()
    name = ev("m.room.name", content={"name": "Lobby"}, state_key="")
    msg1, msg2 = text("one"), text("two", sender=BOB)
    typing = {"type": "m.typing", "content": {"user_ids": [ALICE]}}
    resp = sync_resp(join={ROOM_A: joined(state=[name], timeline=[msg1, msg2], ephemeral=[typing])})
    await syncer.process_response(resp, "s1")

    assert rec.keys == [
        ("m.room.name", ROOM_A, name["event_id"]),
        ("m.room.message", ROOM_A, msg1["event_id"]),
        ("m.room.message", ROOM_A, msg2["event_id"]),
        ("m.typing", ROOM_A, ""),
    ]
    assert [e.body() for e in rec.seen[1:3]] == ["one", "two"]
    assert ("save_room", ROOM_A) in store.calls


async def test_timeline_state_events_update_room_state() -> None:
    syncer, store, _ = make()
    resp = sync_resp(
        join={ROOM_A: joined(timeline=[ev("m.room.name", content={"name": "New"}, state_key="")])}
    )
    await syncer.process_response(resp, "s1")
    room = await store.load_room(ROOM_A)
    assert room is not None
    name = room.get_state_event("m.room.name", "")
    assert name is not None
    assert name.content == {"name": "New"}


async def test_own_join_in_timeline_skips_only_that_room() -> None:
    syncer, store, rec = make()
    other = text("in B")
    resp = sync_resp(
        join={
            ROOM_A: joined(
                state=[ev("m.room.create", content={"room_version": "12"}, state_key="")],
                timeline=[text("history before I joined"), member(ME, "join"), text("after")],
            ),
            ROOM_B: joined(timeline=[other]),
        },
        # an invite to the same room in the same response is not re-dispatched either
        invite={ROOM_A: {"invite_state": {"events": [member(ME, "invite", sender=BOB)]}}},
    )
    await syncer.process_response(resp, "s1")

    assert rec.keys == [("m.room.message", ROOM_B, other["event_id"])]
    # the skipped room's state is still recorded: we are in it now
    room = await store.load_room(ROOM_A)
    assert room is not None
    assert room.get_membership_state(ME) == "join"
    assert room.get_state_event("m.room.create", "") is not None


async def test_someone_elses_join_or_own_leave_does_not_skip() -> None:
    syncer, _, rec = make()
    j_alice = member(ALICE, "join")
    own_profile = member(ME, "leave")
    resp = sync_resp(join={ROOM_A: joined(timeline=[j_alice, own_profile])})
    await syncer.process_response(resp, "s1")
    assert rec.keys == [
        ("m.room.member", ROOM_A, j_alice["event_id"]),
        ("m.room.member", ROOM_A, own_profile["event_id"]),
    ]


async def test_invite_updates_state_and_dispatches_stripped_state() -> None:
    syncer, store, rec = make()
    stripped_name = {
        "type": "m.room.name",
        "sender": BOB,
        "state_key": "",
        "content": {"name": "Secret"},
    }
    invite = member(ME, "invite", sender=BOB)
    resp = sync_resp(invite={ROOM_B: {"invite_state": {"events": [stripped_name, invite]}}})
    await syncer.process_response(resp, "s1")

    assert [(e.type, e.room_id, e.sender) for e in rec.seen] == [
        ("m.room.name", ROOM_B, BOB),
        ("m.room.member", ROOM_B, BOB),
    ]
    assert rec.seen[1].content["membership"] == "invite"
    room = await store.load_room(ROOM_B)
    assert room is not None
    assert room.get_membership_state(ME) == "invite"
    assert ("save_room", ROOM_B) in store.calls


async def test_leave_dispatches_timeline_and_records_membership() -> None:
    syncer, store, rec = make()
    await syncer.process_response(
        sync_resp(join={ROOM_A: joined(timeline=[member(ME, "join")])}), ""
    )
    last_words = text("bye")
    kicked = ev("m.room.member", BOB, {"membership": "leave"}, state_key=ME)
    resp = sync_resp(
        leave={ROOM_A: {"state": {"events": []}, "timeline": {"events": [last_words, kicked]}}}
    )
    await syncer.process_response(resp, "s1")

    assert rec.keys == [
        ("m.room.message", ROOM_A, last_words["event_id"]),
        ("m.room.member", ROOM_A, kicked["event_id"]),
    ]
    room = await store.load_room(ROOM_A)
    assert room is not None
    assert room.get_membership_state(ME) == "leave"
    member_ev = room.get_state_event("m.room.member", ME)
    assert member_ev is not None
    assert member_ev.sender == BOB


async def test_presence_and_account_data_are_dispatched() -> None:
    syncer, _, rec = make()
    presence = ev("m.presence", ALICE, {"presence": "online"})
    direct = {"type": "m.direct", "content": {ALICE: [ROOM_A]}}
    await syncer.process_response(sync_resp(presence=[presence], account_data=[direct]), "s1")
    assert [(e.type, e.sender) for e in rec.seen] == [("m.presence", ALICE), ("m.direct", "")]
    assert rec.seen[1].content == {ALICE: [ROOM_A]}


async def test_plain_and_async_callbacks_both_run_in_registration_order() -> None:
    store = InMemoryStore()
    syncer = DefaultSyncer(ME, store)
    order: list[str] = []

    def plain(event: Event) -> None:
        order.append(f"plain:{event.body()}")

    async def asynchronous(event: Event) -> None:
        order.append(f"async-start:{event.body()}")
        await store.load_room(event.room_id)  # a real suspension point
        order.append(f"async-end:{event.body()}")

    syncer.on_event_type("m.room.message", asynchronous)
    syncer.on_event_type("m.room.message", plain)
    resp = sync_resp(join={ROOM_A: joined(timeline=[text("x"), text("y")])})
    await syncer.process_response(resp, "s1")
    assert order == [
        "async-start:x",
        "async-end:x",
        "plain:x",
        "async-start:y",
        "async-end:y",
        "plain:y",
    ]


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_listener_error_stops_processing_with_sync_error(kind: str) -> None:
    syncer, _, _ = make()
    later: list[str | None] = []
    boom = RuntimeError("listener exploded")

    def plain(event: Event) -> None:
        if event.body() == "bad":
            raise boom

    async def asynchronous(event: Event) -> None:
        plain(event)

    syncer.on_event_type("m.room.message", plain if kind == "plain" else asynchronous)
    syncer.on_event_type("m.room.message", lambda e: later.append(e.body()))
    resp = sync_resp(join={ROOM_A: joined(timeline=[text("ok"), text("bad"), text("never")])})

    with pytest.raises(SyncError) as info:
        await syncer.process_response(resp, "s_since_42")

    message = str(info.value)
    assert ME in message
    assert "s_since_42" in message
    assert "listener exploded" in message
    assert info.value.__cause__ is boom
    assert info.value.user_id == ME
    assert info.value.since == "s_since_42"
    assert later == ["ok"]  # processing stopped at the failing event


async def test_state_entries_are_distinct_objects_with_their_own_content() -> None:
    syncer, store, rec = make()
    resp = sync_resp(
        join={
            ROOM_A: joined(
                state=[
                    member(ALICE, "join"),
                    member(BOB, "invite", sender=ALICE),
                    ev("m.room.name", content={"name": "Lobby"}, state_key=""),
                ]
            )
        }
    )
    await syncer.process_response(resp, "s1")
    room = await store.load_room(ROOM_A)
    assert room is not None
    a = room.get_state_event("m.room.member", ALICE)
    b = room.get_state_event("m.room.member", BOB)
    n = room.get_state_event("m.room.name", "")
    assert a is not None
    assert b is not None
    assert n is not None
    assert len({id(a), id(b), id(n)}) == 3
    assert (a.state_key, a.content["membership"]) == (ALICE, "join")
    assert (b.state_key, b.content["membership"]) == (BOB, "invite")
    assert n.content == {"name": "Lobby"}
    assert a.content is not b.content
    # a listener mutating the event it got does not corrupt the room state cache
    dispatched_alice = next(e for e in rec.seen if e.state_key == ALICE)
    dispatched_alice.content["membership"] = "ban"
    assert room.get_membership_state(ALICE) == "join"
    assert all(e.room_id == ROOM_A for e in (a, b, n))


async def test_rooms_are_loaded_from_the_store_and_extended() -> None:
    store = RecordingStore()
    existing = Room(ROOM_A)
    existing.update_state(Event.from_dict({**member(ALICE, "join"), "room_id": ROOM_A}))
    await store.save_room(existing)
    syncer = DefaultSyncer(ME, store)
    await syncer.process_response(sync_resp(join={ROOM_A: joined(state=[member(BOB, "join")])}), "")
    room = await store.load_room(ROOM_A)
    assert room is not None
    assert room.get_membership_state(ALICE) == "join"
    assert room.get_membership_state(BOB) == "join"


async def test_on_failed_sync_waits_ten_seconds_by_default_and_is_configurable() -> None:
    err = HTTPError(502, "bad gateway", b"", None)
    assert await DefaultSyncer(ME, InMemoryStore()).on_failed_sync(None, err) == 10.0
    fast = DefaultSyncer(ME, InMemoryStore(), retry_delay=0.25)
    assert await fast.on_failed_sync(None, ConnectionError("refused")) == 0.25
    with pytest.raises(ValueError, match="retry_delay"):
        DefaultSyncer(ME, InMemoryStore(), retry_delay=-1)


async def test_on_failed_sync_honours_retry_after() -> None:
    limited = RespError("M_LIMIT_EXCEEDED", "slow down", retry_after_ms=12_500)
    err = HTTPError(429, "too many", b"{}", limited)
    syncer = DefaultSyncer(ME, InMemoryStore(), retry_delay=1.0)
    assert await syncer.on_failed_sync(None, err) == 12.5


@pytest.mark.parametrize(
    ("code", "errcode"),
    [(401, "M_UNKNOWN_TOKEN"), (401, None), (403, "M_FORBIDDEN"), (400, "M_USER_DEACTIVATED")],
)
async def test_on_failed_sync_reraises_errors_that_cannot_improve(
    code: int, errcode: str | None
) -> None:
    wrapped = RespError(errcode, "nope") if errcode else None
    err = HTTPError(code, "failed", b"", wrapped)
    with pytest.raises(HTTPError) as info:
        await DefaultSyncer(ME, InMemoryStore()).on_failed_sync(None, err)
    assert info.value is err


def test_get_filter_json_is_gomatrix_default_and_a_fresh_copy() -> None:
    syncer = DefaultSyncer(ME, InMemoryStore())
    first = syncer.get_filter_json(ME)
    assert first == {"room": {"timeline": {"limit": 50}}}
    first["room"]["timeline"]["limit"] = 1
    assert syncer.get_filter_json(ME) == {"room": {"timeline": {"limit": 50}}}


def test_on_event_type_rejects_bad_arguments() -> None:
    syncer = DefaultSyncer(ME, InMemoryStore())
    with pytest.raises(ValueError, match="event_type"):
        syncer.on_event_type("", lambda e: None)
    with pytest.raises(TypeError, match="not callable"):
        syncer.on_event_type("m.room.message", "nope")  # type: ignore[arg-type]


# --- Client side: request building (MockTransport) and the loop's order (loopback server) ---


def recording_transport(seen: list[httpx.Request], body: dict[str, Any]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("args", "query"),
    [
        ((30000, "", "", False, ""), {"timeout": "30000"}),
        (
            (0, "s72_1", "f9", True, "offline"),
            {
                "timeout": "0",
                "since": "s72_1",
                "filter": "f9",
                "full_state": "true",
                "set_presence": "offline",
            },
        ),
    ],
)
async def test_sync_request_builds_the_query_and_a_long_enough_http_timeout(
    args: tuple[int, str, str, bool, str], query: dict[str, str]
) -> None:
    seen: list[httpx.Request] = []
    http = recording_transport(seen, {"next_batch": "s73"})
    async with Client("https://hs.example", ME, "secret", http=http) as client:
        resp = await client.sync_request(*args)
    assert resp.next_batch == "s73"
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/_matrix/client/v3/sync"
    assert dict(request.url.params) == query
    assert request.headers["authorization"] == "Bearer secret"
    read_timeout = request.extensions["timeout"]["read"]
    assert read_timeout == pytest.approx(args[0] / 1000 + SyncAPI.sync_timeout_margin)


async def test_sync_request_rejects_a_bad_timeout() -> None:
    async with Client("https://hs.example", ME, "secret") as client:
        with pytest.raises(ValueError, match="timeout"):
            await client.sync_request(-1, "", "", False, "")


async def test_create_filter_posts_a_filter_or_dict_for_the_user() -> None:
    seen: list[httpx.Request] = []
    http = recording_transport(seen, {"filter_id": "66"})
    async with Client("https://hs.example", ME, "secret", http=http) as client:
        as_filter = Filter(room=RoomFilter(timeline=FilterPart(limit=5)))
        assert (await client.create_filter(as_filter)).filter_id == "66"
        assert (await client.create_filter({"presence": {"not_types": ["*"]}})).filter_id == "66"
        with pytest.raises(TypeError, match="Filter or a dict"):
            await client.create_filter("{}")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="event_format"):
            await client.create_filter(Filter(event_format="xml"))
    assert [r.method for r in seen] == ["POST", "POST"]
    assert seen[0].url.raw_path == b"/_matrix/client/v3/user/@bot:example.org/filter"
    assert json.loads(seen[0].content) == {"room": {"timeline": {"limit": 5}}}
    assert json.loads(seen[1].content) == {"presence": {"not_types": ["*"]}}


class ScriptedHomeserver:
    """A loopback homeserver answering /sync from a script keyed by the ``since`` token."""

    def __init__(self, script: dict[str, dict[str, Any]], filter_status: int = 200) -> None:
        self.script = script
        self.filter_status = filter_status
        self.sync_queries: list[dict[str, str]] = []
        self.filters: list[dict[str, Any]] = []

    async def filter(self, request: Request) -> Response:
        self.filters.append(json.loads(await request.body()))
        if self.filter_status != 200:
            body = {"errcode": "M_FORBIDDEN", "error": "no filters for you"}
            return JSONResponse(body, status_code=self.filter_status)
        return JSONResponse({"filter_id": "f1"})

    async def sync(self, request: Request) -> Response:
        self.sync_queries.append(dict(request.query_params))
        answer = self.script.get(request.query_params.get("since", ""))
        if answer is None:  # a long-poll with no news, until the client hangs up
            while (await request.receive())["type"] != "http.disconnect":
                pass
            answer = {"next_batch": "never"}
        return JSONResponse(answer)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/_matrix/client/v3/user/{user_id}/filter", self.filter, methods=["POST"]),
                Route("/_matrix/client/v3/sync", self.sync, methods=["GET"]),
            ]
        )


class LoggingSyncer(DefaultSyncer):
    """A DefaultSyncer writing ("process", since) into a shared call log before processing."""

    def __init__(self, store: RecordingStore) -> None:
        super().__init__(ME, store)
        self.calls = store.calls

    async def process_response(self, resp: RespSync, since: str) -> None:
        self.calls.append(("process", since))
        await super().process_response(resp, since)


def two_syncs() -> dict[str, dict[str, Any]]:
    return {
        "": {"next_batch": "s1", "rooms": {"join": {ROOM_A: joined(timeline=[text("m1")])}}},
        "s1": {"next_batch": "s2", "rooms": {"join": {ROOM_A: joined(timeline=[text("m2")])}}},
    }


async def wait_for(check: Any, what: str, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_sync_saves_next_batch_before_processing_each_response() -> None:
    hs = ScriptedHomeserver(two_syncs())
    store = RecordingStore()
    syncer = LoggingSyncer(store)
    bodies: list[str | None] = []
    syncer.on_event_type("m.room.message", lambda e: bodies.append(e.body()))
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, ME, "tok", store=store, syncer=syncer) as client,
    ):
        task = asyncio.create_task(client.sync())
        await wait_for(lambda: len(hs.sync_queries) == 3, "the third /sync (long-poll)")
        client.stop_sync()
        assert list(await asyncio.wait_for(asyncio.gather(task), 2.0)) == [None]

    order = [c for c in store.calls if c[0] in ("save_next_batch", "process")]
    assert order == [
        ("save_next_batch", "s1"),
        ("process", ""),
        ("save_next_batch", "s2"),
        ("process", "s1"),
    ]
    assert bodies == ["m2"]  # the first sync is history
    assert hs.filters == [{"room": {"timeline": {"limit": 50}}}]
    assert await store.load_filter_id(ME) == "f1"
    assert [q.get("since") for q in hs.sync_queries] == [None, "s1", "s2"]
    assert all(q["filter"] == "f1" and q["timeout"] == "30000" for q in hs.sync_queries)


async def test_sync_resumes_from_the_stored_token_and_filter() -> None:
    hs = ScriptedHomeserver(two_syncs())
    store = RecordingStore()
    await store.save_filter_id(ME, "stored-filter")
    await store.save_next_batch(ME, "s1")
    syncer = DefaultSyncer(ME, store)
    bodies: list[str | None] = []
    syncer.on_event_type("m.room.message", lambda e: bodies.append(e.body()))
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, ME, "tok", store=store, syncer=syncer) as client,
    ):
        task = asyncio.create_task(client.sync())
        await wait_for(lambda: len(hs.sync_queries) == 2, "the second /sync")
        client.stop_sync()
        assert list(await asyncio.wait_for(asyncio.gather(task), 2.0)) == [None]
    assert hs.filters == []  # no new filter uploaded
    assert [(q.get("since"), q["filter"]) for q in hs.sync_queries] == [
        ("s1", "stored-filter"),
        ("s2", "stored-filter"),
    ]
    assert bodies == ["m2"]  # not a first sync: dispatched
    assert await store.load_next_batch(ME) == "s2"


async def test_a_failing_listener_ends_sync_after_the_token_was_saved() -> None:
    hs = ScriptedHomeserver(two_syncs())
    store = RecordingStore()
    syncer = DefaultSyncer(ME, store)

    def explode(event: Event) -> None:
        raise KeyError("no such handler state")

    syncer.on_event_type("m.room.message", explode)
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, ME, "tok", store=store, syncer=syncer) as client,
    ):
        with pytest.raises(SyncError) as info:
            await asyncio.wait_for(client.sync(), 5.0)
    assert ME in str(info.value)
    assert "s1" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    # the poisonous response is not fetched again by the next sync()
    assert await store.load_next_batch(ME) == "s2"


async def test_a_filter_that_cannot_be_created_ends_sync_before_any_sync_request() -> None:
    hs = ScriptedHomeserver(two_syncs(), filter_status=403)
    store = RecordingStore()
    async with (
        serve(hs.app()) as base_url,
        Client(base_url, ME, "tok", store=store, syncer=DefaultSyncer(ME, store)) as client,
    ):
        with pytest.raises(HTTPError) as info:
            await asyncio.wait_for(client.sync(), 5.0)
    assert info.value.code == 403
    assert len(hs.filters) == 1
    assert hs.sync_queries == []
    assert await store.load_filter_id(ME) is None
