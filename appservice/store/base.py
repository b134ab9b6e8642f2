"""The ``Storer`` protocol: what the syncer and client keep between runs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from appservice.room import Room


@runtime_checkable
class Storer(Protocol):
    """Durable client state: per-user filter IDs and next-batch tokens, and room state.

    Every ``load_*`` returns ``None`` for a key that was never saved. ``save_room`` replaces the
    stored state of that room with ``room.state``; the syncer calls it after changing a room.
    """

    async def save_filter_id(self, user_id: str, filter_id: str) -> None:
        """Remember the server-side filter ID created for ``user_id``."""
        ...

    async def load_filter_id(self, user_id: str) -> str | None:
        """The filter ID saved for ``user_id``, or ``None``."""
        ...

    async def save_next_batch(self, user_id: str, next_batch_token: str) -> None:
        """Remember the ``next_batch`` token the next /sync of ``user_id`` starts from."""
        ...

    async def load_next_batch(self, user_id: str) -> str | None:
        """The saved ``next_batch`` token of ``user_id``, or ``None``."""
        ...

    async def save_room(self, room: Room) -> None:
        """Store ``room`` and its current state, replacing what was stored for that room."""
        ...

    async def load_room(self, room_id: str) -> Room | None:
        """The stored room with its state (each entry its own ``Event``), or ``None``."""
        ...


def check_str(where: str, name: str, value: object) -> str:
    """``value`` when it is a string; a ``TypeError`` naming the method and argument otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a string, got {type(value).__name__}")
    return value


def check_room(where: str, room: object) -> Room:
    """``room`` when it is a ``Room``; a ``TypeError`` naming the method otherwise."""
    if not isinstance(room, Room):
        raise TypeError(f"{where}: room must be an appservice.room.Room, got {type(room).__name__}")
    return room
