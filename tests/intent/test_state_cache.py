"""The state cache on every backend: unknown vs not joined, events, batches, power, bounds."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from appservice.events import Event
from appservice.state_cache import (
    KEEP,
    CachedStateCache,
    Member,
    MemoryStateCache,
    RoomPower,
    SQLStateCache,
    StateCache,
)
from appservice.store import SQLStore

ROOM = "!room:localhost"
ROOM2 = "!other"  # v12 room IDs have no server part
ALICE = "@alice:localhost"
BOB = "@bob:localhost"
PUPPET = "@_test_p1:localhost"


def member_event(user_id: str, membership: str, room_id: str = ROOM, **profile: Any) -> Event:
    content = {"membership": membership, **profile}
    return Event("m.room.member", user_id, content, user_id, room_id=room_id, id="$m")


def create_event(sender: str, version: str, extra: list[str] | None = None) -> Event:
    content: dict[str, Any] = {"room_version": version}
    if extra is not None:
        content["additional_creators"] = extra
    return Event("m.room.create", sender, content, "", room_id=ROOM, id="$c")


def pl_event(content: dict[str, Any]) -> Event:
    return Event("m.room.power_levels", ALICE, content, "", room_id=ROOM, id="$pl")


# --- registration and membership ------------------------------------------------------------


async def test_registration_is_remembered(state_cache: StateCache) -> None:
    assert await state_cache.is_registered(PUPPET) is False
    await state_cache.mark_registered(PUPPET)
    await state_cache.mark_registered(PUPPET)  # twice is fine
    assert await state_cache.is_registered(PUPPET) is True
    assert await state_cache.is_registered(BOB) is False


async def test_unknown_is_not_the_same_as_not_joined(state_cache: StateCache) -> None:
    assert await state_cache.membership(ROOM, PUPPET) is None
    assert await state_cache.member(ROOM, PUPPET) is None
    await state_cache.set_membership(ROOM, PUPPET, "leave")
    assert await state_cache.membership(ROOM, PUPPET) == "leave"
    assert await state_cache.membership(ROOM2, PUPPET) is None  # other room still unknown
    await state_cache.set_membership(ROOM, PUPPET, "join")
    assert await state_cache.membership(ROOM, PUPPET) == "join"


async def test_set_membership_keeps_or_clears_profile(state_cache: StateCache) -> None:
    await state_cache.set_membership(ROOM, BOB, "join", displayname="Bob", avatar_url="mxc://a/b")
    await state_cache.set_membership(ROOM, BOB, "leave")  # KEEP by default
    assert await state_cache.member(ROOM, BOB) == Member("leave", "Bob", "mxc://a/b")
    await state_cache.set_membership(ROOM, BOB, "join", displayname=None, avatar_url=KEEP)
    assert await state_cache.member(ROOM, BOB) == Member("join", None, "mxc://a/b")


async def test_set_profile_changes_joined_rooms_only(state_cache: StateCache) -> None:
    await state_cache.set_membership(ROOM, PUPPET, "join", displayname="old")
    await state_cache.set_membership(ROOM2, PUPPET, "leave", displayname="old")
    await state_cache.set_profile(PUPPET, displayname="new")
    assert await state_cache.member(ROOM, PUPPET) == Member("join", "new", None)
    assert await state_cache.member(ROOM2, PUPPET) == Member("leave", "old", None)
    await state_cache.set_profile(PUPPET, avatar_url="mxc://x/y")
    assert await state_cache.member(ROOM, PUPPET) == Member("join", "new", "mxc://x/y")


async def test_set_members_replaces_and_marks_complete(state_cache: StateCache) -> None:
    await state_cache.set_membership(ROOM, BOB, "join")
    assert await state_cache.members_complete(ROOM) is False
    await state_cache.set_members(ROOM, {ALICE: Member("join", "Alice"), PUPPET: Member("invite")})
    assert await state_cache.members(ROOM) == {
        ALICE: Member("join", "Alice"),
        PUPPET: Member("invite"),
    }
    assert await state_cache.membership(ROOM, BOB) is None  # replaced, so unknown again
    assert await state_cache.members_complete(ROOM) is True


# --- events ---------------------------------------------------------------------------------


async def test_update_from_member_events(state_cache: StateCache) -> None:
    await state_cache.update_from_event(
        member_event(BOB, "join", displayname="Bob", avatar_url="mxc://s/bob")
    )
    assert await state_cache.member(ROOM, BOB) == Member("join", "Bob", "mxc://s/bob")
    await state_cache.update_from_event(member_event(BOB, "leave"))
    assert await state_cache.member(ROOM, BOB) == Member("leave", None, None)


async def test_update_from_events_batch_is_applied_in_order(state_cache: StateCache) -> None:
    await state_cache.update_from_events(
        [
            member_event(BOB, "invite"),
            member_event(ALICE, "join", displayname="Alice"),
            member_event(BOB, "join", displayname="Bob"),  # same key again: the last one wins
            member_event(PUPPET, "join", room_id=ROOM2),
            Event(
                "m.room.encryption", ALICE, {"algorithm": "m.megolm.v1.aes-sha2"}, "", room_id=ROOM2
            ),
        ]
    )
    assert await state_cache.members(ROOM) == {
        ALICE: Member("join", "Alice"),
        BOB: Member("join", "Bob"),
    }
    assert await state_cache.members(ROOM2) == {PUPPET: Member("join")}
    assert await state_cache.is_encrypted(ROOM2) is True
    assert await state_cache.is_encrypted(ROOM) is False


async def test_update_from_event_ignores_what_it_does_not_track(state_cache: StateCache) -> None:
    await state_cache.update_from_events(
        [
            Event("m.room.message", BOB, {"body": "hi"}, room_id=ROOM),
            Event("m.room.member", BOB, {"membership": "join"}, None, room_id=ROOM),  # no key
            member_event(BOB, "dancing"),  # not a membership
            Event("m.room.power_levels", BOB, {"users": {BOB: 100}}, "x", room_id=ROOM),
            Event("m.room.topic", BOB, {"topic": "t"}, "", room_id=ROOM),
        ]
    )
    assert await state_cache.membership(ROOM, BOB) is None
    assert await state_cache.power_levels(ROOM) is None
    assert await state_cache.power(ROOM) is None


async def test_update_from_event_rejects_bad_input(state_cache: StateCache) -> None:
    with pytest.raises(ValueError, match="has no room_id"):
        await state_cache.update_from_event(member_event(BOB, "join", room_id=""))
    with pytest.raises(TypeError, match="expected an Event"):
        await state_cache.update_from_event({"type": "m.room.member"})  # type: ignore[arg-type]


async def test_bad_arguments_raise_clear_errors(state_cache: StateCache) -> None:
    with pytest.raises(ValueError, match="room_id must not be empty"):
        await state_cache.membership("", BOB)
    with pytest.raises(ValueError, match="membership must be one of"):
        await state_cache.set_membership(ROOM, BOB, "joined")
    with pytest.raises(TypeError, match="displayname must be a str, None or KEEP"):
        await state_cache.set_membership(ROOM, BOB, "join", displayname=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="creators must be an iterable"):
        await state_cache.set_creators(ROOM, ALICE, "12")
    assert await state_cache.membership(ROOM, BOB) is None  # nothing half-written


async def test_power_levels_from_events(state_cache: StateCache) -> None:
    levels = {"users": {BOB: 50}, "events": {"m.room.name": 50}, "users_default": 0}
    await state_cache.update_from_event(pl_event(levels))
    assert await state_cache.power_levels(ROOM) == levels
    got = await state_cache.power_levels(ROOM)
    assert got is not None
    got["users"][BOB] = 100  # a copy: the cache is not changed through it
    assert await state_cache.power_levels(ROOM) == levels
    await state_cache.set_power_levels(ROOM, {"users": {BOB: 10}})
    assert await state_cache.power_levels(ROOM) == {"users": {BOB: 10}}


# --- v12 creators ---------------------------------------------------------------------------


async def test_v12_creators_have_unlimited_power(state_cache: StateCache) -> None:
    # The create event and power levels arrive in either order; neither overwrites the other.
    levels = {"users": {PUPPET: 50}, "events": {"m.room.power_levels": 100}}
    await state_cache.update_from_event(pl_event(levels))
    await state_cache.update_from_event(create_event(ALICE, "12", extra=[BOB]))
    power = await state_cache.power(ROOM)
    assert power is not None
    assert power.creators == (ALICE, BOB)
    assert power.power_levels == levels
    assert power.user_level(ALICE) == math.inf
    assert power.user_level(BOB) == math.inf
    assert power.user_level(PUPPET) == 50
    assert power.may_send(ALICE, "m.room.power_levels", state=True)
    assert power.may(BOB, "ban")
    assert power.may_send(PUPPET, "m.room.topic", state=True)
    assert not power.may_send(PUPPET, "m.room.power_levels", state=True)
    assert power.may(PUPPET, "ban")  # 50 >= the default 50
    await state_cache.update_from_event(pl_event({"users": {PUPPET: 0}}))
    power = await state_cache.power(ROOM)
    assert power is not None
    assert power.creators == (ALICE, BOB)  # kept across a PL change
    assert not power.may_send(PUPPET, "m.room.topic", state=True)


async def test_creators_before_v12_are_not_privileged(state_cache: StateCache) -> None:
    await state_cache.update_from_event(create_event(ALICE, "11"))
    power = await state_cache.power(ROOM)
    assert power is not None
    assert power.user_level(ALICE) == 100  # no power levels yet: the creator has 100
    assert power.user_level(BOB) == 0
    await state_cache.update_from_event(pl_event({"users": {BOB: 100}}))
    power = await state_cache.power(ROOM)
    assert power is not None
    assert power.user_level(ALICE) == 0  # from now on only power levels count
    assert not power.may_send(ALICE, "m.room.name", state=True)


def test_room_power_defaults_and_odd_values() -> None:
    power = RoomPower({"users": {BOB: "75"}, "kick": "x", "events_default": 10})
    assert power.user_level(BOB) == 75  # digit strings of old rooms
    assert power.action_level("kick") == 50  # unusable value: the spec default
    assert power.action_level("invite") == 0
    assert power.event_level("m.room.message") == 10
    assert power.event_level("m.room.name", state=True) == 50
    assert RoomPower(None).event_level("m.room.name", state=True) == 0
    with pytest.raises(ValueError, match="unknown action 'fly'"):
        power.action_level("fly")
    assert RoomPower({}, (ALICE,), "org.matrix.hydra.11").user_level(ALICE) == math.inf


# --- durability and bounds ------------------------------------------------------------------


async def test_sql_cache_survives_a_restart(sql_url: str) -> None:
    async with SQLStore(sql_url) as store:
        cache = SQLStateCache(store)
        await cache.mark_registered(PUPPET)
        await cache.set_membership(ROOM, PUPPET, "join", displayname="P")
        await cache.update_from_events([create_event(ALICE, "12"), pl_event({"ban": 60})])
        await cache.set_encrypted(ROOM)
    async with SQLStore(sql_url) as store:
        cache = SQLStateCache(store)
        assert await cache.is_registered(PUPPET)
        assert await cache.member(ROOM, PUPPET) == Member("join", "P", None)
        assert await cache.power(ROOM) == RoomPower({"ban": 60}, (ALICE,), "12")
        assert await cache.is_encrypted(ROOM)


async def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryStateCache(max_users=2, max_rooms=2, max_members=3)
    for user in ("@_test_a:l", "@_test_b:l"):
        await cache.mark_registered(user)
    assert await cache.is_registered("@_test_a:l")  # a is now the most recently used
    await cache.mark_registered("@_test_c:l")
    assert await cache.is_registered("@_test_a:l")
    assert not await cache.is_registered("@_test_b:l")  # evicted: unknown, so register again

    await cache.set_members(ROOM, {"@a:l": Member("join"), "@b:l": Member("join")})
    await cache.set_membership(ROOM2, "@c:l", "join")
    assert await cache.membership(ROOM, "@a:l") == "join"
    await cache.set_membership(ROOM2, "@d:l", "join")  # evicts @b, the least recently used
    assert await cache.membership(ROOM, "@b:l") is None
    assert await cache.members(ROOM) == {"@a:l": Member("join")}
    assert await cache.members_complete(ROOM) is False  # it lost a member

    await cache.set_encrypted("!r1")
    await cache.set_encrypted("!r2")
    await cache.set_encrypted("!r3")
    assert await cache.is_encrypted("!r1") is False  # room info evicted: unknown again
    assert cache.sizes() == {"users": 2, "rooms": 2, "members": 3}


async def test_memory_cache_stays_bounded_with_many_puppets() -> None:
    cache = MemoryStateCache(max_users=1000, max_rooms=100, max_members=5000)
    for i in range(20_000):
        user = f"@_test_{i}:localhost"
        await cache.mark_registered(user)
        await cache.set_membership(f"!room{i % 500}", user, "join")
    assert cache.sizes() == {"users": 1000, "rooms": 0, "members": 5000}
    assert await cache.is_registered("@_test_19999:localhost")
    assert not await cache.is_registered("@_test_0:localhost")
    # the per-room and per-user indexes shrink with the LRU too
    total = 0
    for r in range(500):
        total += len(await cache.members(f"!room{r}"))
    assert total == 5000


def test_memory_cache_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_members must be a positive int"):
        MemoryStateCache(max_members=0)


# --- CachedStateCache: answers from memory, exact after writes ------------------------------


class CountingCache(MemoryStateCache):
    """A durable cache stand-in that counts lookups and can hold one ``member`` lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.member_reads = 0
        self.registered_reads = 0
        self.hold: asyncio.Event | None = None

    async def member(self, room_id: str, user_id: str) -> Member | None:
        self.member_reads += 1
        found = await super().member(room_id, user_id)
        if self.hold is not None:
            await self.hold.wait()
        return found

    async def is_registered(self, user_id: str) -> bool:
        self.registered_reads += 1
        return await super().is_registered(user_id)


async def test_cached_cache_asks_the_durable_cache_once() -> None:
    durable = CountingCache()
    cache = CachedStateCache(durable)
    await durable.set_membership(ROOM, "@p:x", "join", displayname="P")
    await durable.mark_registered("@p:x")
    for _ in range(3):
        assert await cache.membership(ROOM, "@p:x") == "join"
        assert await cache.member(ROOM, "@q:x") is None  # unknown is remembered too
        assert await cache.is_registered("@p:x")
        assert not await cache.is_registered("@q:x")  # never remembered: may change elsewhere
    assert durable.member_reads == 2
    assert durable.registered_reads == 4


async def test_cached_cache_writes_through_and_forgets_what_they_change() -> None:
    durable = CountingCache()
    cache = CachedStateCache(durable)
    assert await cache.membership(ROOM, "@p:x") is None
    await cache.set_membership(ROOM, "@p:x", "join", displayname="P")
    assert await durable.membership(ROOM, "@p:x") == "join"
    assert await cache.member(ROOM, "@p:x") == Member("join", "P")
    await cache.set_profile("@p:x", displayname="Q")
    assert await cache.member(ROOM, "@p:x") == Member("join", "Q")
    await cache.update_from_event(member_event("@p:x", "leave"))
    assert await cache.membership(ROOM, "@p:x") == "leave"
    await cache.set_members(ROOM, {"@p:x": Member("invite")})
    assert await cache.membership(ROOM, "@p:x") == "invite"
    await cache.mark_registered("@p:x")
    assert await durable.is_registered("@p:x")
    reads = durable.registered_reads
    assert await cache.is_registered("@p:x")
    assert durable.registered_reads == reads


async def test_cached_cache_does_not_keep_a_read_that_raced_a_write() -> None:
    durable = CountingCache()
    cache = CachedStateCache(durable)
    durable.hold = asyncio.Event()
    reading = asyncio.create_task(cache.membership(ROOM, "@p:x"))
    await asyncio.sleep(0)  # the lookup has read "unknown" and waits
    durable.hold.set()
    durable.hold = None
    await cache.set_membership(ROOM, "@p:x", "join")
    assert await reading is None  # the answer from before the write...
    assert await cache.membership(ROOM, "@p:x") == "join"  # ...was not kept


async def test_cached_cache_is_bounded() -> None:
    cache = CachedStateCache(CountingCache(), max_registered=2, max_members=3)
    for i in range(10):
        await cache.mark_registered(f"@p{i}:x")
        await cache.member(ROOM, f"@p{i}:x")
    assert cache.sizes() == {"registered": 2, "members": 3}
    with pytest.raises(ValueError, match="must be >= 1"):
        CachedStateCache(CountingCache(), max_members=0)
