"""A memory layer in front of a durable state cache: repeated questions skip the database.

Intents ask the state cache before every puppet action ("registered?", "joined?") and bridges
ask for the sender's display name on every message; on ``SQLStateCache`` each answer is a
database round trip. ``CachedStateCache`` keeps the answers to those two questions in bounded
LRU maps. Every write goes to the durable cache first and then drops the answers it may change,
so the layer is exact as long as it is the only writer of the durable cache (one process per
database, which the store requires anyway). A read that raced a write is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from appservice.events import Event
from appservice.state_cache.base import KEEP, Member, ProfileValue, StateCache
from appservice.state_cache.power import RoomPower

_MEMBER_EVENT = "m.room.member"


class CachedStateCache:
    """``StateCache`` answering ``is_registered`` and ``member`` from memory over ``durable``.

    Known registrations (they never become unknown) and looked-up members, ``None`` included,
    are kept up to ``max_registered`` and ``max_members`` entries, least recently used first out.
    """

    def __init__(
        self, durable: StateCache, *, max_registered: int = 50_000, max_members: int = 50_000
    ) -> None:
        if max_registered < 1 or max_members < 1:
            raise ValueError("CachedStateCache: max_registered and max_members must be >= 1")
        self.durable = durable
        self._max_registered = max_registered
        self._max_members = max_members
        self._registered: OrderedDict[str, None] = OrderedDict()
        self._members: OrderedDict[tuple[str, str], Member | None] = OrderedDict()
        self._writes = 0  # bumped by every member write: a lookup that saw it change is not kept

    def sizes(self) -> dict[str, int]:
        """How many registrations and members are held in memory."""
        return {"registered": len(self._registered), "members": len(self._members)}

    # --- the two cached questions -------------------------------------------------------------

    async def is_registered(self, user_id: str) -> bool:
        """Whether ``user_id`` is known to be registered (from memory once known)."""
        if user_id in self._registered:
            self._registered.move_to_end(user_id)
            return True
        if not await self.durable.is_registered(user_id):
            return False
        self._remember_registered(user_id)
        return True

    async def mark_registered(self, user_id: str) -> None:
        """Remember that ``user_id`` is registered, durably and in memory."""
        await self.durable.mark_registered(user_id)
        self._remember_registered(user_id)

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's membership, ``None`` if unknown."""
        found = await self.member(room_id, user_id)
        return found.membership if found is not None else None

    async def member(self, room_id: str, user_id: str) -> Member | None:
        """The user's membership with profile, ``None`` if unknown (from memory once asked)."""
        key = (room_id, user_id)
        members = self._members
        if key in members:
            members.move_to_end(key)
            return members[key]
        writes = self._writes
        found = await self.durable.member(room_id, user_id)
        if writes == self._writes:
            members[key] = found
            if len(members) > self._max_members:
                members.popitem(last=False)
        return found

    # --- member writes: durable first, then forget what they change ---------------------------

    async def set_membership(
        self,
        room_id: str,
        user_id: str,
        membership: str,
        *,
        displayname: ProfileValue = KEEP,
        avatar_url: ProfileValue = KEEP,
    ) -> None:
        """Record a membership; profile fields left at ``KEEP`` are not changed."""
        try:
            await self.durable.set_membership(
                room_id, user_id, membership, displayname=displayname, avatar_url=avatar_url
            )
        finally:
            self._forget_keys([(room_id, user_id)])

    async def set_members(self, room_id: str, members: Mapping[str, Member]) -> None:
        """Replace the room's member list with ``members`` (the complete list)."""
        try:
            await self.durable.set_members(room_id, members)
        finally:
            self._forget_keys([key for key in self._members if key[0] == room_id])

    async def set_profile(
        self, user_id: str, *, displayname: ProfileValue = KEEP, avatar_url: ProfileValue = KEEP
    ) -> None:
        """Apply a global profile change to every room the user is known to have joined."""
        try:
            await self.durable.set_profile(user_id, displayname=displayname, avatar_url=avatar_url)
        finally:
            self._forget_keys([key for key in self._members if key[1] == user_id])

    async def update_from_event(self, event: Event) -> None:
        """Apply a tracked state event (see ``StateCache.update_from_event``)."""
        try:
            await self.durable.update_from_event(event)
        finally:
            self._forget_keys(_member_keys([event]))

    async def update_from_events(self, events: Iterable[Event]) -> None:
        """Apply many events in order."""
        events = list(events)
        try:
            await self.durable.update_from_events(events)
        finally:
            self._forget_keys(_member_keys(events))

    # --- not cached: asked rarely, answered by the durable cache -----------------------------

    async def members(self, room_id: str) -> dict[str, Member]:
        """Every known member of the room (any membership), by user ID."""
        return await self.durable.members(room_id)

    async def members_complete(self, room_id: str) -> bool:
        """Whether ``members()`` holds the whole member list."""
        return await self.durable.members_complete(room_id)

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        """The ``m.room.power_levels`` content, or ``None`` if unknown."""
        return await self.durable.power_levels(room_id)

    async def set_power_levels(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Record the ``m.room.power_levels`` content."""
        await self.durable.set_power_levels(room_id, content)

    async def set_creators(
        self, room_id: str, creators: Iterable[str], room_version: str | None
    ) -> None:
        """Record the creators and room version from ``m.room.create``."""
        await self.durable.set_creators(room_id, creators, room_version)

    async def power(self, room_id: str) -> RoomPower | None:
        """Power levels and creators together, or ``None`` when neither is known."""
        return await self.durable.power(room_id)

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether the room is known to be encrypted (unknown counts as not)."""
        return await self.durable.is_encrypted(room_id)

    async def set_encrypted(self, room_id: str, encrypted: bool = True) -> None:
        """Record the room's encryption flag."""
        await self.durable.set_encrypted(room_id, encrypted)

    # --- internals -----------------------------------------------------------------------------

    def _remember_registered(self, user_id: str) -> None:
        registered = self._registered
        registered[user_id] = None
        registered.move_to_end(user_id)
        if len(registered) > self._max_registered:
            registered.popitem(last=False)

    def _forget_keys(self, keys: Iterable[tuple[str, str]]) -> None:
        """Drop these (room, user) member answers and count a write (see ``member``)."""
        self._writes += 1
        members = self._members
        for key in keys:
            members.pop(key, None)


def _member_keys(events: Iterable[Event]) -> list[tuple[str, str]]:
    """The (room, user) of each membership event among ``events`` (anything else skipped: the
    durable cache has already rejected what is not an event)."""
    return [
        (e.room_id, e.state_key)
        for e in events
        if isinstance(e, Event) and e.type == _MEMBER_EVENT and isinstance(e.state_key, str)
    ]
