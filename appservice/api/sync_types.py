"""The ``/sync`` response: ``RespSync`` and the room sections it is made of.

Events inside ``rooms.*`` get their ``room_id`` filled from the rooms map key when the server
left it out (the client-server API omits it there), so handlers always know the room.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from appservice.codec import decode, encode, wire
from appservice.events import Event


def _events_in(section: Any) -> Iterator[Event]:
    """Every event of a room section (an ``EventList``, a timeline, or a room made of them)."""
    if isinstance(section, EventList | SyncTimeline):
        yield from section.events
    else:
        for f in dataclasses.fields(section):
            yield from _events_in(getattr(section, f.name))


_S = TypeVar("_S")


def _in_room(section: _S, room_id: str) -> _S:
    """Give the section's events without a ``room_id`` this one; returns ``section``."""
    if room_id:
        for event in _events_in(section):
            if not event.room_id:
                event.room_id = room_id
    return section


@dataclass
class EventList:
    """An object holding a list of events (``{"events": [...]}``)."""

    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "EventList", room_id: str = ""
    ) -> Self:
        """Parse ``{"events": [...]}``; events without ``room_id`` get ``room_id`` when given."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class SyncTimeline:
    """A room's timeline slice: events, whether it was ``limited`` (gappy) and ``prev_batch``."""

    events: list[Event] = field(default_factory=list)
    limited: bool = False
    prev_batch: str = field(default="", metadata=wire(omit_empty=True))

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncTimeline", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; an empty ``prev_batch`` is left out."""
        return encode(self)


@dataclass
class SyncJoinedRoom:
    """A joined room's changes: state, timeline, ephemeral events and room account data."""

    state: EventList = field(default_factory=EventList)
    timeline: SyncTimeline = field(default_factory=SyncTimeline)
    ephemeral: EventList = field(default_factory=EventList)
    account_data: EventList = field(default_factory=EventList)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncJoinedRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class SyncInvitedRoom:
    """A room the user is invited to: the stripped ``invite_state`` events."""

    invite_state: EventList = field(default_factory=EventList)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncInvitedRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class SyncKnockedRoom:
    """A room the user has knocked on: the stripped ``knock_state`` events."""

    knock_state: EventList = field(default_factory=EventList)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncKnockedRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class SyncLeftRoom:
    """A room the user left or was removed from: final state and timeline."""

    state: EventList = field(default_factory=EventList)
    timeline: SyncTimeline = field(default_factory=SyncTimeline)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncLeftRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return _in_room(decode(cls, d, where), room_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class SyncRooms:
    """The ``rooms`` section of a sync: joined, invited, left and knocked rooms by room ID."""

    join: dict[str, SyncJoinedRoom] = field(default_factory=dict, metadata=wire(omit_empty=True))
    invite: dict[str, SyncInvitedRoom] = field(default_factory=dict, metadata=wire(omit_empty=True))
    leave: dict[str, SyncLeftRoom] = field(default_factory=dict, metadata=wire(omit_empty=True))
    knock: dict[str, SyncKnockedRoom] = field(default_factory=dict, metadata=wire(omit_empty=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "SyncRooms") -> Self:
        """Parse from JSON; ``ValueError`` naming the room and field on a wrong type."""
        rooms = decode(cls, d, where)
        for section in (rooms.join, rooms.invite, rooms.leave, rooms.knock):
            for room_id, room in section.items():
                _in_room(room, room_id)
        return rooms

    def to_dict(self) -> dict[str, Any]:
        """JSON form; empty sections are left out."""
        return encode(self)


@dataclass
class RespSync:
    """The ``/sync`` response: the ``next_batch`` token and everything that changed since."""

    next_batch: str
    account_data: EventList = field(default_factory=EventList)
    presence: EventList = field(default_factory=EventList)
    to_device: EventList = field(default_factory=EventList)
    rooms: SyncRooms = field(default_factory=SyncRooms)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespSync") -> Self:
        """Parse a decoded ``/sync`` body; ``ValueError`` naming the path of a bad field."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)
