"""Portals by remote chat, by room and by alias: a bounded cache in front of ``bridge_portal``.

There is one ``Portal`` object per portal in the cache (keyed by ``(remote_id, receiver)``); the
room index maps room IDs to those keys, and rooms known NOT to be portals are remembered in
another bounded LRU so every event in a management or unrelated room does not cost a query.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from appservice.bridge.lru import LRU
from appservice.bridge.portal import Portal
from appservice.ids import decode_user_localpart, encode_user_localpart, parse_room_alias
from appservice.intent import KeyedLocks
from appservice.store.schema import bridge_portal

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge

__all__ = ["Portals"]

log = logging.getLogger("appservice.bridge.portal")

_COLUMNS = (
    bridge_portal.c.remote_id,
    bridge_portal.c.receiver,
    bridge_portal.c.room_id,
    bridge_portal.c.name,
    bridge_portal.c.topic,
    bridge_portal.c.avatar_url,
    bridge_portal.c.extra,
)


def _flags(raw: bytes | None) -> tuple[bool, bool]:
    if not raw:
        return False, False
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False, False
    if not isinstance(data, dict):
        return False, False
    return bool(data.get("public")), bool(data.get("direct"))


class Portals:
    """Finds, makes and saves portals; ``locks`` serialises room creation per portal."""

    def __init__(self, bridge: Bridge, *, max_cached: int = 1024) -> None:
        self._bridge = bridge
        self._cache: LRU[tuple[str, str], Portal] = LRU(max_cached)
        self._by_room: LRU[str, tuple[str, str]] = LRU(max_cached)
        self._not_portal: LRU[str, bool] = LRU(max_cached * 4)
        self.locks = KeyedLocks()

    def __len__(self) -> int:
        return len(self._cache)

    # --- aliases ------------------------------------------------------------------------------

    def alias_localpart(self, remote_id: str) -> str | None:
        """``<alias_prefix><encoded remote id>``, or None when the config has no alias prefix."""
        prefix = self._bridge.config.appservice.alias_prefix
        return None if prefix is None else prefix + encode_user_localpart(remote_id)

    def alias_for(self, remote_id: str) -> str | None:
        """The portal's full alias ``#...:domain``, or None without an alias prefix."""
        localpart = self.alias_localpart(remote_id)
        domain = self._bridge.config.homeserver.domain
        return None if localpart is None else f"#{localpart}:{domain}"

    def remote_id_for_alias(self, alias: str) -> str | None:
        """The remote chat ID an alias of ours names, or None when it is not one of ours."""
        prefix = self._bridge.config.appservice.alias_prefix
        if prefix is None:
            return None
        try:
            localpart, server = parse_room_alias(alias)
        except ValueError:
            return None
        if server != self._bridge.config.homeserver.domain or not localpart.startswith(prefix):
            return None
        encoded = localpart[len(prefix) :]
        try:
            return decode_user_localpart(encoded) if encoded else None
        except ValueError:
            return None

    # --- lookups ------------------------------------------------------------------------------

    async def get(
        self, remote_id: str, receiver: str = "", *, create: bool = True
    ) -> Portal | None:
        """The portal of a remote chat; made (a row, no request, no room yet) when missing and
        ``create``."""
        if not isinstance(remote_id, str) or not remote_id:
            raise ValueError(f"Portals.get: remote_id must be a non-empty str, got {remote_id!r}")
        if not isinstance(receiver, str):
            raise TypeError(f"Portals.get: receiver must be a str, got {type(receiver).__name__}")
        key = (remote_id, receiver)
        portal = self._cache.get(key)
        if portal is not None:
            return portal
        async with self.locks.hold("row", *key):
            portal = self._cache.get(key)
            if portal is None:
                portal = await self._load(
                    (bridge_portal.c.remote_id == remote_id)
                    & (bridge_portal.c.receiver == receiver)
                )
            if portal is None and create:
                portal = Portal(remote_id, receiver, _bridge=self._bridge)
                await self.save(portal)
                log.debug("new portal row for remote chat %s (receiver %r)", remote_id, receiver)
            if portal is not None:
                self._remember(portal)
        return portal

    async def by_room(self, room_id: str) -> Portal | None:
        """The portal whose room is ``room_id``, or None when the room is not a portal."""
        key = self._by_room.get(room_id)
        if key is not None:
            portal = self._cache.get(key)
            if portal is not None:
                return portal
        elif room_id in self._not_portal:
            return None
        portal = await self._load(bridge_portal.c.room_id == room_id)
        if portal is None:
            self._not_portal.put(room_id, True)
            return None
        cached = self._cache.get(portal.key)
        if cached is not None and cached.room_id == room_id:
            return cached
        self._remember(portal)
        return portal

    async def save(self, portal: Portal) -> None:
        """Write the portal's row (and index its room)."""
        store = self._bridge.store
        stmt = store.upsert(
            bridge_portal,
            ("remote_id", "receiver"),
            ("room_id", "name", "topic", "avatar_url", "extra"),
        )
        row = {
            "remote_id": portal.remote_id,
            "receiver": portal.receiver,
            "room_id": portal.room_id,
            "name": portal.name,
            "topic": portal.topic,
            "avatar_url": portal.avatar_url,
            "extra": orjson.dumps(dict(portal.extra())),
            "created_at": int(time.time() * 1000),
        }
        async with store.transaction() as conn:
            await conn.execute(stmt, row)
        if portal.room_id is not None:
            self._not_portal.pop(portal.room_id)
            self._by_room.put(portal.room_id, portal.key)

    def _remember(self, portal: Portal) -> None:
        self._cache.put(portal.key, portal)
        if portal.room_id is not None:
            self._by_room.put(portal.room_id, portal.key)

    async def _load(self, where: Any) -> Portal | None:
        async with self._bridge.store.reading() as conn:
            row = (await conn.execute(select(*_COLUMNS).where(where))).first()
        if row is None:
            return None
        remote_id, receiver, room_id, name, topic, avatar, extra = row
        public, direct = _flags(extra)
        return Portal(
            remote_id, receiver, room_id, name, topic, avatar, public, direct, _bridge=self._bridge
        )
