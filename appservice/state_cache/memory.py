"""``MemoryStateCache``: the state cache in process memory, bounded by LRU.

Each of registered users, rooms and member entries is an LRU that forgets its least recently used
entry past its maximum; a forgotten entry is just unknown again, which costs one idempotent
request, never a wrong answer.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appservice.events import Event
from appservice.state_cache.base import (
    KEEP,
    Keep,
    Member,
    ProfileValue,
    change_of,
    check_content,
    check_creators,
    check_id,
    check_member,
    check_membership,
    check_profile,
)
from appservice.state_cache.power import RoomPower

__all__ = ["MemoryStateCache"]


@dataclass(slots=True)
class _RoomInfo:
    power_levels: dict[str, Any] | None = None
    creators: tuple[str, ...] = ()
    room_version: str | None = None
    encrypted: bool = False
    members_complete: bool = False


class MemoryStateCache:
    """A ``StateCache`` in process memory, bounded: each of registered users, rooms and member
    entries is an LRU that forgets its least recently used entry past its maximum.
    """

    def __init__(
        self, *, max_users: int = 100_000, max_rooms: int = 10_000, max_members: int = 200_000
    ) -> None:
        for name, value in (
            ("max_users", max_users),
            ("max_rooms", max_rooms),
            ("max_members", max_members),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MemoryStateCache: {name} must be a positive int, got {value!r}")
        self.max_users, self.max_rooms, self.max_members = max_users, max_rooms, max_members
        self._registered: OrderedDict[str, None] = OrderedDict()
        self._rooms: OrderedDict[str, _RoomInfo] = OrderedDict()
        self._members: OrderedDict[tuple[str, str], Member] = OrderedDict()
        self._room_users: dict[str, set[str]] = {}
        self._user_rooms: dict[str, set[str]] = {}

    def sizes(self) -> dict[str, int]:
        """How many entries each LRU holds now (for metrics and tests)."""
        return {
            "users": len(self._registered),
            "rooms": len(self._rooms),
            "members": len(self._members),
        }

    async def is_registered(self, user_id: str) -> bool:
        """Whether ``user_id`` is known to be registered."""
        check_id(user_id, "user_id", "is_registered")
        if user_id in self._registered:
            self._registered.move_to_end(user_id)
            return True
        return False

    async def mark_registered(self, user_id: str) -> None:
        """Remember that ``user_id`` is registered."""
        check_id(user_id, "user_id", "mark_registered")
        self._registered[user_id] = None
        self._registered.move_to_end(user_id)
        while len(self._registered) > self.max_users:
            self._registered.popitem(last=False)

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's membership, ``None`` if unknown."""
        found = await self.member(room_id, user_id)
        return found.membership if found is not None else None

    async def member(self, room_id: str, user_id: str) -> Member | None:
        """The user's membership with profile, ``None`` if unknown."""
        key = (check_id(room_id, "room_id", "member"), check_id(user_id, "user_id", "member"))
        found = self._members.get(key)
        if found is not None:
            self._members.move_to_end(key)
        return found

    async def members(self, room_id: str) -> dict[str, Member]:
        """Every known member of the room."""
        check_id(room_id, "room_id", "members")
        return {u: self._members[(room_id, u)] for u in self._room_users.get(room_id, ())}

    async def members_complete(self, room_id: str) -> bool:
        """Whether the room's whole member list is held (and none of it evicted)."""
        info = self._rooms.get(check_id(room_id, "room_id", "members_complete"))
        return info is not None and info.members_complete

    async def set_membership(
        self,
        room_id: str,
        user_id: str,
        membership: str,
        *,
        displayname: ProfileValue = KEEP,
        avatar_url: ProfileValue = KEEP,
    ) -> None:
        """Record a membership; ``KEEP`` profile fields stay as stored."""
        where = "set_membership"
        check_id(room_id, "room_id", where)
        check_id(user_id, "user_id", where)
        membership = check_membership(membership, where)
        displayname = check_profile(displayname, "displayname", where)
        avatar_url = check_profile(avatar_url, "avatar_url", where)
        old = self._members.get((room_id, user_id)) or Member(membership)
        self._put_member(
            room_id,
            user_id,
            Member(
                membership,
                old.displayname if isinstance(displayname, Keep) else displayname,
                old.avatar_url if isinstance(avatar_url, Keep) else avatar_url,
            ),
        )

    async def set_members(self, room_id: str, members: Mapping[str, Member]) -> None:
        """Replace the room's member list and mark it complete."""
        check_id(room_id, "room_id", "set_members")
        checked = {
            check_id(u, "members key", "set_members"): check_member(m, "set_members")
            for u, m in members.items()
        }
        for user_id in list(self._room_users.get(room_id, ())):
            self._drop_member(room_id, user_id)
        for user_id, member in checked.items():
            self._put_member(room_id, user_id, member)
        if len(checked) <= self.max_members:
            self._room(room_id).members_complete = True

    async def set_profile(
        self, user_id: str, *, displayname: ProfileValue = KEEP, avatar_url: ProfileValue = KEEP
    ) -> None:
        """Apply a profile change to the user's joined rooms."""
        check_id(user_id, "user_id", "set_profile")
        displayname = check_profile(displayname, "displayname", "set_profile")
        avatar_url = check_profile(avatar_url, "avatar_url", "set_profile")
        for room_id in self._user_rooms.get(user_id, ()):
            key = (room_id, user_id)
            old = self._members[key]
            if old.membership == "join":
                self._members[key] = Member(
                    "join",
                    old.displayname if isinstance(displayname, Keep) else displayname,
                    old.avatar_url if isinstance(avatar_url, Keep) else avatar_url,
                )

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        """A copy of the cached power levels, ``None`` if unknown."""
        info = self._peek(check_id(room_id, "room_id", "power_levels"))
        if info is None or info.power_levels is None:
            return None
        return copy.deepcopy(info.power_levels)

    async def set_power_levels(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Record the power levels (a copy)."""
        check_id(room_id, "room_id", "set_power_levels")
        self._room(room_id).power_levels = check_content(content, "set_power_levels")

    async def set_creators(
        self, room_id: str, creators: Iterable[str], room_version: str | None
    ) -> None:
        """Record creators and room version from ``m.room.create``."""
        check_id(room_id, "room_id", "set_creators")
        checked = check_creators(creators, room_version)
        info = self._room(room_id)
        info.creators, info.room_version = checked, room_version

    async def power(self, room_id: str) -> RoomPower | None:
        """Power levels and creators, ``None`` when neither is known."""
        info = self._peek(check_id(room_id, "room_id", "power"))
        if info is None or (info.power_levels is None and not info.creators):
            return None
        levels = copy.deepcopy(info.power_levels)
        return RoomPower(levels, info.creators, info.room_version)

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether the room is known to be encrypted."""
        info = self._peek(check_id(room_id, "room_id", "is_encrypted"))
        return info is not None and info.encrypted

    async def set_encrypted(self, room_id: str, encrypted: bool = True) -> None:
        """Record the room's encryption flag."""
        check_id(room_id, "room_id", "set_encrypted")
        self._room(room_id).encrypted = bool(encrypted)

    async def update_from_event(self, event: Event) -> None:
        """Apply one state event (others are ignored)."""
        await self.update_from_events([event])

    async def update_from_events(self, events: Iterable[Event]) -> None:
        """Apply state events in order."""
        for change in [c for c in map(change_of, events) if c is not None]:
            if change.kind == "member" and change.member is not None:
                self._put_member(change.room_id, change.user_id, change.member)
            elif change.kind == "power_levels":
                self._room(change.room_id).power_levels = change.content
            elif change.kind == "encryption":
                self._room(change.room_id).encrypted = True
            else:
                info = self._room(change.room_id)
                info.creators, info.room_version = change.creators, change.room_version

    # --- LRU bookkeeping ----------------------------------------------------------------------

    def _peek(self, room_id: str) -> _RoomInfo | None:
        info = self._rooms.get(room_id)
        if info is not None:
            self._rooms.move_to_end(room_id)
        return info

    def _room(self, room_id: str) -> _RoomInfo:
        info = self._peek(room_id)
        if info is None:
            info = self._rooms[room_id] = _RoomInfo()
            while len(self._rooms) > self.max_rooms:
                self._rooms.popitem(last=False)
        return info

    def _put_member(self, room_id: str, user_id: str, member: Member) -> None:
        key = (room_id, user_id)
        self._members[key] = member
        self._members.move_to_end(key)
        self._room_users.setdefault(room_id, set()).add(user_id)
        self._user_rooms.setdefault(user_id, set()).add(room_id)
        while len(self._members) > self.max_members:
            old_room, old_user = next(iter(self._members))
            self._drop_member(old_room, old_user)
            info = self._rooms.get(old_room)
            if info is not None:
                info.members_complete = False

    def _drop_member(self, room_id: str, user_id: str) -> None:
        self._members.pop((room_id, user_id), None)
        for index, key, value in (
            (self._room_users, room_id, user_id),
            (self._user_rooms, user_id, room_id),
        ):
            found = index.get(key)
            if found is not None:
                found.discard(value)
                if not found:
                    del index[key]
