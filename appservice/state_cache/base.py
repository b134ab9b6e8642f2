"""The ``StateCache`` protocol, its value types, and what a state event changes in it.

``membership()`` answers ``None`` for UNKNOWN, which is not the same as "not joined"
(``"leave"``): unknown means "ask the homeserver".
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal, Protocol, runtime_checkable

from appservice.events import Event
from appservice.state_cache.power import RoomPower

__all__ = [
    "KEEP",
    "MEMBERSHIPS",
    "TRACKED_EVENT_TYPES",
    "Keep",
    "Member",
    "ProfileValue",
    "StateCache",
    "StateChange",
    "change_of",
]

log = logging.getLogger("appservice.state_cache")

MEMBERSHIPS: Final = frozenset({"join", "invite", "leave", "ban", "knock"})
"""The membership values the spec defines."""

TRACKED_EVENT_TYPES: Final = (
    "m.room.member",
    "m.room.power_levels",
    "m.room.encryption",
    "m.room.create",
)
"""The state event types ``update_from_event`` applies (every other event is ignored)."""


class Keep(Enum):
    """Marker type of ``KEEP``."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""Profile argument meaning "leave the stored value as it is" (``None`` clears it)."""

ProfileValue = str | None | Keep


@dataclass(frozen=True, slots=True)
class Member:
    """A user's membership in a room with the profile the room shows for them."""

    membership: str
    displayname: str | None = None
    avatar_url: str | None = None


@runtime_checkable
class StateCache(Protocol):
    """What intents and the server read and write about puppets and rooms.

    Every read answers from the cache only (no request); ``None`` means unknown.
    """

    async def is_registered(self, user_id: str) -> bool:
        """Whether ``user_id`` is known to be registered on the homeserver."""
        ...

    async def mark_registered(self, user_id: str) -> None:
        """Remember that ``user_id`` is registered."""
        ...

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """``"join"``, ``"invite"``, ``"leave"``, ``"ban"``, ``"knock"``, or ``None`` if unknown."""
        ...

    async def member(self, room_id: str, user_id: str) -> Member | None:
        """The user's membership with profile, or ``None`` if unknown."""
        ...

    async def members(self, room_id: str) -> dict[str, Member]:
        """Every known member of the room (any membership), by user ID."""
        ...

    async def members_complete(self, room_id: str) -> bool:
        """Whether ``members()`` holds the whole member list (set by ``set_members``)."""
        ...

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
        ...

    async def set_members(self, room_id: str, members: Mapping[str, Member]) -> None:
        """Replace the room's member list with ``members`` (the complete list)."""
        ...

    async def set_profile(
        self, user_id: str, *, displayname: ProfileValue = KEEP, avatar_url: ProfileValue = KEEP
    ) -> None:
        """Apply a global profile change to every room the user is known to have joined."""
        ...

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        """The ``m.room.power_levels`` content, or ``None`` if unknown."""
        ...

    async def set_power_levels(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Record the ``m.room.power_levels`` content."""
        ...

    async def set_creators(
        self, room_id: str, creators: Iterable[str], room_version: str | None
    ) -> None:
        """Record the creators and room version from ``m.room.create``."""
        ...

    async def power(self, room_id: str) -> RoomPower | None:
        """Power levels and creators together, or ``None`` when neither is known."""
        ...

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether the room is known to be encrypted (unknown counts as not)."""
        ...

    async def set_encrypted(self, room_id: str, encrypted: bool = True) -> None:
        """Record the room's encryption flag."""
        ...

    async def update_from_event(self, event: Event) -> None:
        """Apply an ``m.room.member``/``power_levels``/``encryption``/``create`` state event."""
        ...

    async def update_from_events(self, events: Iterable[Event]) -> None:
        """Apply many events in order (one database transaction in the SQL cache)."""
        ...


# --- what an event changes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChange:
    """One cache update read from a state event."""

    kind: Literal["member", "power_levels", "encryption", "create"]
    room_id: str
    user_id: str = ""
    member: Member | None = None
    content: dict[str, Any] = field(default_factory=dict)
    creators: tuple[str, ...] = ()
    room_version: str | None = None


def _opt_text(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) else None


def change_of(event: Event) -> StateChange | None:
    """The update ``event`` implies, or ``None`` for an event the cache does not track."""
    if not isinstance(event, Event):
        raise TypeError(f"update_from_event: expected an Event, got {type(event).__name__}")
    kind = event.type
    if event.state_key is None or kind not in TRACKED_EVENT_TYPES:
        return None
    if not event.room_id:
        raise ValueError(f"update_from_event: {kind} event {event.id or '(no id)'} has no room_id")
    room_id, content = event.room_id, event.content
    if kind == "m.room.member":
        membership = content.get("membership")
        if membership not in MEMBERSHIPS or not event.state_key:
            log.warning(
                "room %s: ignoring m.room.member %s for %r with membership %r",
                room_id,
                event.id,
                event.state_key,
                membership,
            )
            return None
        member = Member(
            str(membership), _opt_text(content, "displayname"), _opt_text(content, "avatar_url")
        )
        return StateChange("member", room_id, user_id=event.state_key, member=member)
    if event.state_key:  # the other three are only meaningful with the empty state key
        return None
    if kind == "m.room.power_levels":
        return StateChange("power_levels", room_id, content=copy.deepcopy(dict(content)))
    if kind == "m.room.encryption":
        return StateChange("encryption", room_id)
    extra = content.get("additional_creators")
    creators = [event.sender] if event.sender else []
    if isinstance(extra, list):
        creators += [c for c in extra if isinstance(c, str) and c not in creators]
    version = content.get("room_version", "1")
    return StateChange(
        "create",
        room_id,
        creators=tuple(creators),
        room_version=version if isinstance(version, str) else None,
    )


def check_id(value: object, name: str, where: str) -> str:
    """``value`` when it is a non-empty str; TypeError/ValueError naming it and ``where``."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{where}: {name} must not be empty")
    return value


def check_membership(membership: object, where: str) -> str:
    """``membership`` when the spec defines it; ValueError otherwise."""
    if membership not in MEMBERSHIPS:
        raise ValueError(
            f"{where}: membership must be one of {sorted(MEMBERSHIPS)}, got {membership!r}"
        )
    return str(membership)


def check_profile(value: object, name: str, where: str) -> ProfileValue:
    """A display name or avatar argument: a str, ``None`` (clear) or ``KEEP``."""
    if value is KEEP or value is None or isinstance(value, str):
        return value
    raise TypeError(f"{where}: {name} must be a str, None or KEEP, got {type(value).__name__}")


def check_member(value: object, where: str) -> Member:
    """``value`` when it is a ``Member`` with a valid membership."""
    if not isinstance(value, Member):
        raise TypeError(f"{where}: members values must be Member, got {type(value).__name__}")
    check_membership(value.membership, where)
    return value


def now_ms() -> int:
    """Milliseconds since the epoch (the unit of ``updated_at``/``registered_at``)."""
    return int(time.time() * 1000)


def check_content(content: object, where: str) -> dict[str, Any]:
    """A deep copy of an event content mapping (the cache never shares the caller's dicts)."""
    if not isinstance(content, Mapping):
        raise TypeError(f"{where}: content must be a mapping, got {type(content).__name__}")
    out: dict[str, Any] = copy.deepcopy(dict(content))
    return out


def check_creators(creators: Iterable[str], room_version: str | None) -> tuple[str, ...]:
    """Creators as a tuple of non-empty user IDs, and a checked room version."""
    if isinstance(creators, str):
        raise TypeError("set_creators: creators must be an iterable of user IDs, not a str")
    checked = tuple(check_id(c, "creators[]", "set_creators") for c in creators)
    if room_version is not None and not isinstance(room_version, str):
        raise TypeError(f"set_creators: room_version must be a str or None, got {room_version!r}")
    return checked


def member_row(room_id: str, user_id: str, member: Member) -> dict[str, Any]:
    """The ``cache_member`` row of ``member``."""
    return {
        "room_id": room_id,
        "user_id": user_id,
        "membership": member.membership,
        "displayname": member.displayname,
        "avatar_url": member.avatar_url,
    }
