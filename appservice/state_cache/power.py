"""Who may do what in a room: power levels combined with the room's creators.

Room version 12 creators have unlimited power and are not listed in ``m.room.power_levels``
``users``; they are named by ``m.room.create`` (its ``sender`` and ``content.additional_creators``).
``RoomPower`` answers "may X do Y" from both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ACTIONS", "RoomPower", "creators_are_privileged"]

ACTIONS: Final = {"invite": 0, "kick": 50, "ban": 50, "redact": 50}
"""Power-level actions and their spec defaults."""


def creators_are_privileged(room_version: str | None) -> bool:
    """Whether creators of a room of this version have unlimited power (v12 and later)."""
    if room_version is None:
        return False
    if room_version == "org.matrix.hydra.11":
        return True
    return room_version.isdigit() and int(room_version) >= 12


def _level(value: object, default: int) -> int:
    """A power level from JSON: ints, and the digit strings old rooms may hold; else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value.strip()):
        return int(value)
    return default


@dataclass(frozen=True)
class RoomPower:
    """Who may do what in a room: ``m.room.power_levels`` plus the ``m.room.create`` creators.

    ``creators`` is the create event's sender followed by ``content.additional_creators``.
    """

    power_levels: dict[str, Any] | None = None
    creators: tuple[str, ...] = ()
    room_version: str | None = None

    def user_level(self, user_id: str) -> float:
        """The user's power: ``math.inf`` for a v12 creator, else from the power levels."""
        if user_id in self.creators and creators_are_privileged(self.room_version):
            return math.inf
        levels = self.power_levels
        if levels is None:  # spec: without power levels the creator has 100, others 0
            return 100 if self.creators[:1] == (user_id,) else 0
        users = levels.get("users")
        if isinstance(users, dict) and user_id in users:
            return _level(users[user_id], 0)
        return _level(levels.get("users_default"), 0)

    def event_level(self, event_type: str, *, state: bool = False) -> int:
        """The power needed to send ``event_type`` (as a state event when ``state``)."""
        levels = self.power_levels or {}
        events = levels.get("events")
        if isinstance(events, dict) and event_type in events:
            return _level(events[event_type], 0)
        if state:
            return _level(levels.get("state_default"), 50 if self.power_levels is not None else 0)
        return _level(levels.get("events_default"), 0)

    def action_level(self, action: str) -> int:
        """The power needed for ``invite``, ``kick``, ``ban`` or ``redact``."""
        if action not in ACTIONS:
            raise ValueError(f"RoomPower: unknown action {action!r} (one of {sorted(ACTIONS)})")
        return _level((self.power_levels or {}).get(action), ACTIONS[action])

    def may_send(self, user_id: str, event_type: str, *, state: bool = False) -> bool:
        """Whether ``user_id`` has the power to send ``event_type``."""
        return self.user_level(user_id) >= self.event_level(event_type, state=state)

    def may(self, user_id: str, action: str) -> bool:
        """Whether ``user_id`` has the power for ``action`` (invite/kick/ban/redact)."""
        return self.user_level(user_id) >= self.action_level(action)
