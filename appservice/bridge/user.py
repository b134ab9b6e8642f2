"""User: a real Matrix user of the bridge, with the permission level the config gives them.

Levels, from least to most: ``none`` (ignored), ``relay`` (messages bridged, basic commands),
``user`` (may open a management room with the bot), ``admin``. A user gets a ``bridge_user`` row
only once there is something to keep (a management room, a remote login); everyone else is a
cheap object made from the config on demand.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sqlalchemy import select

from appservice.bridge.config import PERMISSION_LEVELS
from appservice.bridge.lru import LRU
from appservice.store.schema import bridge_user

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge

__all__ = ["LEVELS", "User", "Users", "has_level", "level_rank"]

log = logging.getLogger("appservice.bridge.user")

LEVELS: Final = PERMISSION_LEVELS
"""Permission levels from least to most."""


def level_rank(level: str) -> int:
    """The position of ``level`` in ``LEVELS``; ValueError naming the known levels."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(
            f"unknown permission level {level!r}; known: {', '.join(LEVELS)}"
        ) from None


def has_level(level: str, needed: str) -> bool:
    """Whether ``level`` is at least ``needed``."""
    return level_rank(level) >= level_rank(needed)


@dataclass(slots=True, eq=False)
class User:
    """A Matrix user of the bridge: level from the config, remote login and management room."""

    user_id: str
    level: str
    remote_id: str | None = None
    management_room: str | None = None
    stored: bool = False
    _bridge: Bridge | None = field(default=None, repr=False)

    def has_level(self, needed: str) -> bool:
        """Whether the user's level is at least ``needed``."""
        return has_level(self.level, needed)

    async def set_management_room(self, room_id: str) -> None:
        """Remember ``room_id`` as the user's management room (DM with the bot)."""
        if self.management_room == room_id:
            return
        self.management_room = room_id
        await self.save()
        log.info("user %s: management room is now %s", self.user_id, room_id)

    async def set_remote_id(self, remote_id: str | None) -> None:
        """Remember (or forget) the user's identity on the remote network (a login)."""
        if self.remote_id == remote_id:
            return
        self.remote_id = remote_id
        await self.save()

    async def save(self) -> None:
        """Write the user's row."""
        if self._bridge is None:
            raise RuntimeError(f"user {self.user_id} is not attached to a bridge")
        store = self._bridge.store
        stmt = store.upsert(bridge_user, ("user_id",), ("remote_id", "management_room"))
        row = {
            "user_id": self.user_id,
            "remote_id": self.remote_id,
            "management_room": self.management_room,
            "created_at": int(time.time() * 1000),
        }
        async with store.transaction() as conn:
            await conn.execute(stmt, row)
        self.stored = True


class Users:
    """Users by Matrix ID: a bounded cache in front of ``bridge_user``."""

    def __init__(self, bridge: Bridge, *, max_cached: int = 1024) -> None:
        self._bridge = bridge
        self._cache: LRU[str, User] = LRU(max_cached)

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, user_id: str) -> User:
        """The user (a row is read when there is one; none is written)."""
        if not isinstance(user_id, str) or not user_id.startswith("@"):
            raise ValueError(f"Users.get: expected a Matrix user ID, got {user_id!r}")
        user = self._cache.get(user_id)
        if user is not None:
            return user
        query = select(bridge_user.c.remote_id, bridge_user.c.management_room).where(
            bridge_user.c.user_id == user_id
        )
        async with self._bridge.store.reading() as conn:
            row = (await conn.execute(query)).first()
        level = self._bridge.config.permission_level(user_id)
        if row is None:
            user = User(user_id, level, _bridge=self._bridge)
        else:
            user = User(user_id, level, row[0], row[1], stored=True, _bridge=self._bridge)
        self._cache.put(user_id, user)
        return user

    async def by_remote_id(self, remote_id: str) -> User | None:
        """The Matrix user logged in as ``remote_id`` on the remote network, if any."""
        query = select(bridge_user.c.user_id).where(bridge_user.c.remote_id == remote_id)
        async with self._bridge.store.reading() as conn:
            user_id = (await conn.execute(query)).scalar()
        return None if user_id is None else await self.get(user_id)
