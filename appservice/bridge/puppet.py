"""Puppet: a remote user's Matrix ghost, ``@<user_prefix><encoded remote id>:<domain>``.

The user ID comes from the config's template and ``encode_user_localpart``, so it never changes
for a remote ID. The row in ``bridge_puppet`` is made without any homeserver request; the puppet
is registered lazily by its ``Intent`` on its first action. The profile is pushed only when it
differs from what ``bridge_puppet`` says was last set, so a steady chat costs no profile traffic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from appservice.bridge.lru import LRU
from appservice.intent import Intent, KeyedLocks
from appservice.store.schema import bridge_puppet

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge

__all__ = ["Puppet", "Puppets"]

log = logging.getLogger("appservice.bridge.puppet")

_COLUMNS = (
    bridge_puppet.c.remote_id,
    bridge_puppet.c.user_id,
    bridge_puppet.c.displayname,
    bridge_puppet.c.avatar_url,
    bridge_puppet.c.name_set,
    bridge_puppet.c.avatar_set,
)


@dataclass(slots=True, eq=False)
class Puppet:
    """A remote user and their Matrix puppet, with the profile last set on Matrix."""

    remote_id: str
    user_id: str
    displayname: str | None = None
    avatar_url: str | None = None
    name_set: bool = False
    avatar_set: bool = False
    _bridge: Bridge | None = field(default=None, repr=False)

    @property
    def intent(self) -> Intent:
        """The puppet's intent (made per use: cheap, and it keeps no state of its own)."""
        if self._bridge is None:
            raise RuntimeError(f"puppet {self.user_id} is not attached to a bridge")
        return self._bridge.bot.user(self.user_id)

    async def update_info(
        self, displayname: str | None = None, avatar_url: str | None = None
    ) -> bool:
        """Push the profile to Matrix where it changed (``None``: not known, left as is).

        Returns whether anything was sent. Each changed field costs one request (plus the
        puppet's registration the first time).
        """
        if self._bridge is None:
            raise RuntimeError(f"puppet {self.user_id} is not attached to a bridge")
        changed = False
        if displayname is not None and (not self.name_set or displayname != self.displayname):
            await self.intent.set_display_name(displayname)
            self.displayname, self.name_set, changed = displayname, True, True
        if avatar_url is not None and (not self.avatar_set or avatar_url != self.avatar_url):
            await self.intent.set_avatar_url(avatar_url)
            self.avatar_url, self.avatar_set, changed = avatar_url, True, True
        if changed:
            await self._bridge.puppets.save(self)
            log.info("puppet %s (remote %s): profile updated", self.user_id, self.remote_id)
        return changed


class Puppets:
    """Puppets by remote ID or Matrix ID: a bounded cache in front of ``bridge_puppet``."""

    def __init__(self, bridge: Bridge, *, max_cached: int = 4096) -> None:
        self._bridge = bridge
        self._cache: LRU[str, Puppet] = LRU(max_cached)
        self._locks = KeyedLocks()

    def __len__(self) -> int:
        return len(self._cache)

    def user_id_for(self, remote_id: str) -> str:
        """The puppet user ID of a remote user (pure: no lookup)."""
        return self._bridge.config.puppet_user_id(remote_id)

    async def get(self, remote_id: str, *, create: bool = True) -> Puppet | None:
        """The puppet of ``remote_id``; made (a row, no request) when missing and ``create``."""
        if not isinstance(remote_id, str) or not remote_id:
            raise ValueError(f"Puppets.get: remote_id must be a non-empty str, got {remote_id!r}")
        puppet = self._cache.get(remote_id)
        if puppet is not None:
            return puppet
        async with self._locks.hold(remote_id):
            puppet = self._cache.get(remote_id)
            if puppet is None:
                puppet = await self._load(remote_id)
            if puppet is None and create:
                puppet = Puppet(remote_id, self.user_id_for(remote_id), _bridge=self._bridge)
                await self.save(puppet)
                log.debug("new puppet %s for remote user %s", puppet.user_id, remote_id)
            if puppet is not None:
                self._cache.put(remote_id, puppet)
        return puppet

    async def by_user_id(self, user_id: str) -> Puppet | None:
        """The puppet with this Matrix ID, or ``None`` (not a puppet, or never made)."""
        remote_id = self._bridge.config.puppet_remote_name(user_id)
        if remote_id is None:
            return None
        return await self.get(remote_id, create=False)

    async def save(self, puppet: Puppet) -> None:
        """Write the puppet's row."""
        store = self._bridge.store
        stmt = store.upsert(
            bridge_puppet,
            ("remote_id",),
            ("displayname", "avatar_url", "name_set", "avatar_set"),
        )
        row = {
            "remote_id": puppet.remote_id,
            "user_id": puppet.user_id,
            "displayname": puppet.displayname,
            "avatar_url": puppet.avatar_url,
            "name_set": puppet.name_set,
            "avatar_set": puppet.avatar_set,
            "created_at": int(time.time() * 1000),
        }
        async with store.transaction() as conn:
            await conn.execute(stmt, row)

    async def _load(self, remote_id: str) -> Puppet | None:
        query = select(*_COLUMNS).where(bridge_puppet.c.remote_id == remote_id)
        async with self._bridge.store.reading() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        _, user_id, name, avatar, name_set, avatar_set = row
        return Puppet(
            remote_id, user_id, name, avatar, bool(name_set), bool(avatar_set), _bridge=self._bridge
        )
