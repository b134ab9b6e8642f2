"""The ``Storer`` contract, run unchanged against InMemoryStore, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from appservice.events import Event
from appservice.room import Room
from appservice.store import InMemoryStore, SQLStore, Storer

ROOM = "!room:example.org"
ALICE = "@alice:example.org"
BOB = "@bob:example.org"


def member(user_id: str, membership: str = "join", **extra: Any) -> Event:
    return Event(
        type="m.room.member",
        sender=user_id,
        state_key=user_id,
        content={"membership": membership, **extra},
        id=f"${user_id}-{membership}",
        room_id=ROOM,
        timestamp=1_700_000_000_000,
    )


def sample_room() -> Room:
    room = Room(ROOM)
    room.update_state(member(ALICE, displayname="Alice ☃"))
    room.update_state(member(BOB, "invite"))
    room.update_state(
        Event(
            type="m.room.name",
            sender=ALICE,
            state_key="",
            content={"name": "Tea \u00e9 \U0001f375"},
            id="$name",
            room_id=ROOM,
            unsigned={"age": 5},
            prev_content={"name": "old"},
        )
    )
    room.update_state(
        Event(
            type="m.room.power_levels",
            sender=ALICE,
            state_key="",
            content={"users": {ALICE: 100}, "events": {"m.room.name": 50}, "ban": 50},
            id="$pl",
            room_id=ROOM,
        )
    )
    return room


def test_every_store_is_a_storer(storer: Storer) -> None:
    assert isinstance(storer, Storer)


async def test_missing_keys_give_none(storer: Storer) -> None:
    assert await storer.load_filter_id(ALICE) is None
    assert await storer.load_next_batch(ALICE) is None
    assert await storer.load_room(ROOM) is None


async def test_filter_id_round_trip_and_overwrite(storer: Storer) -> None:
    await storer.save_filter_id(ALICE, "f1")
    await storer.save_filter_id(BOB, "f-bob")
    assert await storer.load_filter_id(ALICE) == "f1"
    await storer.save_filter_id(ALICE, "f2")
    assert await storer.load_filter_id(ALICE) == "f2"
    assert await storer.load_filter_id(BOB) == "f-bob"


async def test_next_batch_round_trip_and_independent_of_filter(storer: Storer) -> None:
    await storer.save_filter_id(ALICE, "f1")
    await storer.save_next_batch(ALICE, "s72594_4483_1934")
    assert await storer.load_next_batch(ALICE) == "s72594_4483_1934"
    assert await storer.load_filter_id(ALICE) == "f1"
    await storer.save_next_batch(ALICE, "s72595_4483_1934")
    assert await storer.load_next_batch(ALICE) == "s72595_4483_1934"
    assert await storer.load_filter_id(ALICE) == "f1"
    assert await storer.load_next_batch(BOB) is None
    await storer.save_next_batch(BOB, "b1")
    assert await storer.load_filter_id(BOB) is None


async def test_room_round_trip(storer: Storer) -> None:
    room = sample_room()
    await storer.save_room(room)
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    assert loaded is not room
    assert loaded.id == ROOM
    assert loaded == room
    assert loaded.get_membership_state(ALICE) == "join"
    assert loaded.get_membership_state(BOB) == "invite"
    name = loaded.get_state_event("m.room.name", "")
    assert name is not None
    assert name.content == {"name": "Tea \u00e9 \U0001f375"}
    assert name.prev_content == {"name": "old"}
    assert name.unsigned == {"age": 5}
    assert name.timestamp == 0
    member_event = loaded.get_state_event("m.room.member", ALICE)
    assert member_event is not None
    assert member_event.timestamp == 1_700_000_000_000
    assert member_event.id == f"${ALICE}-join"


async def test_each_loaded_state_entry_is_its_own_event(storer: Storer) -> None:
    await storer.save_room(sample_room())
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    events = [e for by_key in loaded.state.values() for e in by_key.values()]
    assert len(events) == 4
    assert len({id(e) for e in events}) == 4
    assert len({id(e.content) for e in events}) == 4


async def test_room_without_state_is_kept(storer: Storer) -> None:
    await storer.save_room(Room(ROOM))
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    assert loaded.id == ROOM
    assert loaded.state == {}


async def test_save_room_replaces_the_stored_state(storer: Storer) -> None:
    room = sample_room()
    await storer.save_room(room)
    room.update_state(member(ALICE, "leave"))
    del room.state["m.room.power_levels"]
    room.update_state(member("@carol:example.org"))
    await storer.save_room(room)
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    assert loaded == room
    assert loaded.get_membership_state(ALICE) == "leave"
    assert loaded.get_state_event("m.room.power_levels", "") is None
    assert loaded.get_membership_state("@carol:example.org") == "join"


async def test_saved_room_is_a_snapshot(storer: Storer) -> None:
    room = sample_room()
    await storer.save_room(room)
    room.update_state(member(ALICE, "ban"))
    bob_event = room.get_state_event("m.room.member", BOB)
    assert bob_event is not None
    bob_event.content["membership"] = "leave"
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    assert loaded.get_membership_state(ALICE) == "join"
    assert loaded.get_membership_state(BOB) == "invite"
    loaded.update_state(member(BOB, "join"))
    again = await storer.load_room(ROOM)
    assert again is not None
    assert again.get_membership_state(BOB) == "invite"


async def test_rooms_are_independent(storer: Storer) -> None:
    await storer.save_room(sample_room())
    other = Room("!other:example.org")
    other.update_state(
        Event(type="m.room.member", state_key=ALICE, content={"membership": "leave"})
    )
    await storer.save_room(other)
    loaded_other = await storer.load_room("!other:example.org")
    loaded = await storer.load_room(ROOM)
    assert loaded_other is not None
    assert loaded is not None
    assert loaded_other.get_membership_state(ALICE) == "leave"
    assert loaded.get_membership_state(ALICE) == "join"
    assert len(loaded_other.state["m.room.member"]) == 1


async def test_large_room(storer: Storer) -> None:
    room = Room(ROOM)
    for i in range(1500):
        room.update_state(member(f"@user{i}:example.org", displayname=f"User {i}"))
    await storer.save_room(room)
    room.update_state(member("@user7:example.org", "leave"))
    await storer.save_room(room)
    loaded = await storer.load_room(ROOM)
    assert loaded is not None
    assert len(loaded.state["m.room.member"]) == 1500
    assert loaded.get_membership_state("@user7:example.org") == "leave"
    assert loaded.get_membership_state("@user8:example.org") == "join"


async def test_load_rooms_batch(storer: Storer) -> None:
    if not isinstance(storer, InMemoryStore | SQLStore):
        pytest.skip("load_rooms is an extra of the toolkit's stores")
    await storer.save_room(sample_room())
    await storer.save_room(Room("!empty:example.org"))
    rooms = await storer.load_rooms([ROOM, "!empty:example.org", "!missing:example.org"])
    assert set(rooms) == {ROOM, "!empty:example.org"}
    assert rooms[ROOM] == sample_room()
    assert rooms["!empty:example.org"].state == {}


async def test_concurrent_writers_all_land(storer: Storer) -> None:
    users = [f"@u{i}:example.org" for i in range(40)]
    await asyncio.gather(*(storer.save_next_batch(u, f"tok-{u}") for u in users))
    await asyncio.gather(*(storer.save_filter_id(u, f"f-{u}") for u in users))
    for u in users:
        assert await storer.load_next_batch(u) == f"tok-{u}"
        assert await storer.load_filter_id(u) == f"f-{u}"


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("save_filter_id", (None, "f")),
        ("save_filter_id", (ALICE, 5)),
        ("load_filter_id", (b"@alice",)),
        ("save_next_batch", (ALICE, None)),
        ("load_next_batch", (1,)),
        ("save_room", ("!room:example.org",)),
        ("load_room", (None,)),
    ],
)
async def test_wrong_argument_types_raise_type_error(
    storer: Storer, method: str, args: tuple[Any, ...]
) -> None:
    with pytest.raises(TypeError, match=method):
        await getattr(storer, method)(*args)


async def test_unstorable_content_raises_and_keeps_the_old_room(store_url: str) -> None:
    # SQL only: InMemoryStore keeps Python objects and has nothing to serialise.
    async with SQLStore(store_url) as storer:
        await _check_unstorable_content_is_refused(storer)


async def _check_unstorable_content_is_refused(storer: Storer) -> None:
    await storer.save_room(sample_room())
    bad = sample_room()
    bad.update_state(
        Event(type="m.room.topic", state_key="", content={"topic": {1, 2}}, room_id=ROOM)
    )
    with pytest.raises(TypeError, match=r"m\.room\.topic"):
        await storer.save_room(bad)
    loaded = await storer.load_room(ROOM)
    assert loaded == sample_room()
