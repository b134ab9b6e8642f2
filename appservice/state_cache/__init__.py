"""The room state cache: what the homeserver told us, so intents skip requests they don't need.

An ``Intent`` asks it "is this puppet registered?" and "is it joined to this room?" before every
send; the appservice server feeds it the state events it receives (``update_from_event`` /
``update_from_events``) and intents record their own successful calls. ``membership()``
answers ``None`` for UNKNOWN, which is not the same as "not joined" (``"leave"``).

``SQLStateCache`` (durable, on an open ``SQLStore``), ``MemoryStateCache`` (bounded LRU) and
``CachedStateCache`` (memory answers over a durable cache; what the server uses on SQL)
implement the ``StateCache`` protocol; ``RoomPower`` answers "may X do Y", room version 12
creators included.
"""

from appservice.state_cache.base import (
    KEEP,
    MEMBERSHIPS,
    TRACKED_EVENT_TYPES,
    Keep,
    Member,
    ProfileValue,
    StateCache,
)
from appservice.state_cache.cached import CachedStateCache
from appservice.state_cache.memory import MemoryStateCache
from appservice.state_cache.power import ACTIONS, RoomPower, creators_are_privileged
from appservice.state_cache.sql import SQLStateCache

__all__ = [
    "ACTIONS",
    "KEEP",
    "MEMBERSHIPS",
    "TRACKED_EVENT_TYPES",
    "CachedStateCache",
    "Keep",
    "Member",
    "MemoryStateCache",
    "ProfileValue",
    "RoomPower",
    "SQLStateCache",
    "StateCache",
    "creators_are_privileged",
]
