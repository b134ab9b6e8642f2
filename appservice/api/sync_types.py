"""The ``/sync`` response: ``RespSync`` and the room sections it is made of.

Events inside ``rooms.*`` get their ``room_id`` filled from the rooms map key when the server
left it out (the client-server API omits it there), so handlers always know the room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from appservice._fields import as_object, get_bool, get_list, get_object, get_str, req_str
from appservice.events import Event

_T = TypeVar("_T")


@dataclass
class EventList:
    """An object holding a list of events (``{"events": [...]}``)."""

    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "EventList", room_id: str = ""
    ) -> Self:
        """Parse ``{"events": [...]}``; events without ``room_id`` get ``room_id`` when given."""
        d = as_object(d, where)
        events: list[Event] = []
        for i, raw in enumerate(get_list(d, "events", where)):
            event = Event.from_dict(raw, where=f"{where}.events[{i}]")
            if room_id and not event.room_id:
                event.room_id = room_id
            events.append(event)
        return cls(events)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"events": [e.to_dict() for e in self.events]}


@dataclass
class SyncTimeline:
    """A room's timeline slice: events, whether it was ``limited`` (gappy) and ``prev_batch``."""

    events: list[Event] = field(default_factory=list)
    limited: bool = False
    prev_batch: str = ""

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncTimeline", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            events=EventList.from_dict(d, where=where, room_id=room_id).events,
            limited=get_bool(d, "limited", where),
            prev_batch=get_str(d, "prev_batch", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form; an empty ``prev_batch`` is left out."""
        out: dict[str, Any] = {"events": [e.to_dict() for e in self.events]}
        out["limited"] = self.limited
        if self.prev_batch:
            out["prev_batch"] = self.prev_batch
        return out


def _event_list(d: Mapping[str, Any], key: str, where: str, room_id: str) -> EventList:
    return EventList.from_dict(get_object(d, key, where), where=f"{where}.{key}", room_id=room_id)


def _timeline(d: Mapping[str, Any], where: str, room_id: str) -> SyncTimeline:
    raw = get_object(d, "timeline", where)
    return SyncTimeline.from_dict(raw, where=f"{where}.timeline", room_id=room_id)


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
        d = as_object(d, where)
        return cls(
            state=_event_list(d, "state", where, room_id),
            timeline=_timeline(d, where, room_id),
            ephemeral=_event_list(d, "ephemeral", where, room_id),
            account_data=_event_list(d, "account_data", where, room_id),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "state": self.state.to_dict(),
            "timeline": self.timeline.to_dict(),
            "ephemeral": self.ephemeral.to_dict(),
            "account_data": self.account_data.to_dict(),
        }


@dataclass
class SyncInvitedRoom:
    """A room the user is invited to: the stripped ``invite_state`` events."""

    invite_state: EventList = field(default_factory=EventList)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncInvitedRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(invite_state=_event_list(d, "invite_state", where, room_id))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"invite_state": self.invite_state.to_dict()}


@dataclass
class SyncKnockedRoom:
    """A room the user has knocked on: the stripped ``knock_state`` events."""

    knock_state: EventList = field(default_factory=EventList)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, where: str = "SyncKnockedRoom", room_id: str = ""
    ) -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(knock_state=_event_list(d, "knock_state", where, room_id))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"knock_state": self.knock_state.to_dict()}


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
        d = as_object(d, where)
        return cls(
            state=_event_list(d, "state", where, room_id),
            timeline=_timeline(d, where, room_id),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"state": self.state.to_dict(), "timeline": self.timeline.to_dict()}


def _rooms(
    d: Mapping[str, Any],
    key: str,
    where: str,
    parse: Callable[..., _T],
) -> dict[str, _T]:
    """Parse a map of room ID -> section with ``parse(raw, where=..., room_id=...)``."""
    out: dict[str, _T] = {}
    for room_id, raw in get_object(d, key, where).items():
        out[room_id] = parse(raw, where=f"{where}.{key}[{room_id}]", room_id=room_id)
    return out


@dataclass
class SyncRooms:
    """The ``rooms`` section of a sync: joined, invited, left and knocked rooms by room ID."""

    join: dict[str, SyncJoinedRoom] = field(default_factory=dict)
    invite: dict[str, SyncInvitedRoom] = field(default_factory=dict)
    leave: dict[str, SyncLeftRoom] = field(default_factory=dict)
    knock: dict[str, SyncKnockedRoom] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "SyncRooms") -> Self:
        """Parse from JSON; ``ValueError`` naming the room and field on a wrong type."""
        d = as_object(d, where)
        return cls(
            join=_rooms(d, "join", where, SyncJoinedRoom.from_dict),
            invite=_rooms(d, "invite", where, SyncInvitedRoom.from_dict),
            leave=_rooms(d, "leave", where, SyncLeftRoom.from_dict),
            knock=_rooms(d, "knock", where, SyncKnockedRoom.from_dict),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form; empty sections are left out."""
        out: dict[str, Any] = {}
        if self.join:
            out["join"] = {rid: r.to_dict() for rid, r in self.join.items()}
        if self.invite:
            out["invite"] = {rid: r.to_dict() for rid, r in self.invite.items()}
        if self.leave:
            out["leave"] = {rid: r.to_dict() for rid, r in self.leave.items()}
        if self.knock:
            out["knock"] = {rid: r.to_dict() for rid, r in self.knock.items()}
        return out


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
        d = as_object(d, where)
        return cls(
            next_batch=req_str(d, "next_batch", where),
            account_data=_event_list(d, "account_data", where, ""),
            presence=_event_list(d, "presence", where, ""),
            to_device=_event_list(d, "to_device", where, ""),
            rooms=SyncRooms.from_dict(get_object(d, "rooms", where), where=f"{where}.rooms"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "next_batch": self.next_batch,
            "account_data": self.account_data.to_dict(),
            "presence": self.presence.to_dict(),
            "to_device": self.to_device.to_dict(),
            "rooms": self.rooms.to_dict(),
        }
