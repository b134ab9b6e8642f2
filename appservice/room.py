"""Room: the current state of one Matrix room, keyed by event type and state key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from appservice._fields import as_object, get_list, req_str
from appservice.events import Event


class Room:
    """A room's current state: ``state[event_type][state_key] -> Event``.

    The syncer and the appservice server feed state events in with ``update_state``; a later
    event for the same (type, state_key) replaces the earlier one.
    """

    id: str
    state: dict[str, dict[str, Event]]

    def __init__(self, room_id: str) -> None:
        if not isinstance(room_id, str):
            raise TypeError(f"Room: room_id must be a string, got {type(room_id).__name__}")
        self.id = room_id
        self.state = {}

    def __repr__(self) -> str:
        count = sum(len(by_key) for by_key in self.state.values())
        return f"Room(id={self.id!r}, state_events={count})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Room):
            return NotImplemented
        return self.id == other.id and self.state == other.state

    __hash__ = None  # type: ignore[assignment]

    def update_state(self, event: Event) -> None:
        """Store ``event`` as the current state for its (type, state_key).

        ``ValueError`` when the event is not a state event (``state_key`` is ``None``) or
        names another room in its ``room_id``; the room is left unchanged then.
        """
        if event.state_key is None:
            raise ValueError(
                f"Room {self.id}: cannot store {event.type} event {event.id or '(no event_id)'} "
                "as state: it has no state_key"
            )
        if event.room_id and event.room_id != self.id:
            raise ValueError(
                f"Room {self.id}: cannot store {event.type} event {event.id or '(no event_id)'} "
                f"as state: it belongs to room {event.room_id}"
            )
        self.state.setdefault(event.type, {})[event.state_key] = event

    def get_state_event(self, event_type: str, state_key: str) -> Event | None:
        """The current state event for (type, state_key), or ``None``."""
        return self.state.get(event_type, {}).get(state_key)

    def get_membership_state(self, user_id: str) -> str:
        """The user's ``m.room.member`` ``content.membership``; ``"leave"`` when unknown."""
        event = self.get_state_event("m.room.member", user_id)
        if event is not None:
            membership = event.content.get("membership")
            if isinstance(membership, str):
                return membership
        return "leave"

    def state_events(self) -> Iterator[Event]:
        """Every current state event, grouped by type."""
        for by_key in self.state.values():
            yield from by_key.values()

    def to_dict(self) -> dict[str, Any]:
        """``{"room_id": ..., "state": [event JSON, ...]}`` for storing the room."""
        return {"room_id": self.id, "state": [e.to_dict() for e in self.state_events()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "Room") -> Room:
        """Rebuild a room from ``to_dict()`` output; ``ValueError`` naming the bad entry."""
        d = as_object(d, where)
        room = cls(req_str(d, "room_id", where))
        for i, raw in enumerate(get_list(d, "state", where)):
            event = Event.from_dict(raw, where=f"{where}.state[{i}]")
            if event.state_key is None:
                raise ValueError(f"{where}.state[{i}]: a state event needs a state_key")
            room.update_state(event)
        return room
