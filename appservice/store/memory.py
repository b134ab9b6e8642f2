"""InMemoryStore: a ``Storer`` that keeps everything in dicts and forgets it on exit."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from appservice.room import Room
from appservice.store.base import check_room, check_str


def _copy_room(room: Room) -> Room:
    """A deep copy: no event object is shared between the caller and the store."""
    out = Room(room.id)
    out.state = {
        event_type: {key: copy.deepcopy(event) for key, event in by_key.items()}
        for event_type, by_key in room.state.items()
    }
    return out


class InMemoryStore:
    """A ``Storer`` for bots and tests; rooms are saved and loaded as copies, like a SQL store."""

    def __init__(self) -> None:
        self._filter_ids: dict[str, str] = {}
        self._next_batches: dict[str, str] = {}
        self._rooms: dict[str, Room] = {}

    async def save_filter_id(self, user_id: str, filter_id: str) -> None:
        """Remember the filter ID of ``user_id``."""
        check_str("save_filter_id", "user_id", user_id)
        self._filter_ids[user_id] = check_str("save_filter_id", "filter_id", filter_id)

    async def load_filter_id(self, user_id: str) -> str | None:
        """The filter ID of ``user_id``, or ``None``."""
        return self._filter_ids.get(check_str("load_filter_id", "user_id", user_id))

    async def save_next_batch(self, user_id: str, next_batch_token: str) -> None:
        """Remember the next-batch token of ``user_id``."""
        check_str("save_next_batch", "user_id", user_id)
        token = check_str("save_next_batch", "next_batch_token", next_batch_token)
        self._next_batches[user_id] = token

    async def load_next_batch(self, user_id: str) -> str | None:
        """The next-batch token of ``user_id``, or ``None``."""
        return self._next_batches.get(check_str("load_next_batch", "user_id", user_id))

    async def save_room(self, room: Room) -> None:
        """Store a copy of ``room``; later changes to ``room`` need another save."""
        room = check_room("save_room", room)
        self._rooms[room.id] = _copy_room(room)

    async def load_room(self, room_id: str) -> Room | None:
        """A copy of the stored room, or ``None``."""
        room = self._rooms.get(check_str("load_room", "room_id", room_id))
        return None if room is None else _copy_room(room)

    async def load_rooms(self, room_ids: Iterable[str]) -> dict[str, Room]:
        """The stored rooms among ``room_ids`` (missing ones left out), keyed by room ID."""
        out: dict[str, Room] = {}
        for room_id in room_ids:
            room = await self.load_room(room_id)
            if room is not None:
                out[room_id] = room
        return out
