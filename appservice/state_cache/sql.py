"""``SQLStateCache``: the state cache on the ``cache_*`` tables of an open ``SQLStore``.

Durable across restarts and shared by processes using the same database. ``cache_room`` has no
column for the create event, so ``cache_room.power_levels`` holds one JSON object
``{"power_levels": {...} | null, "creators": [...], "room_version": "12" | null}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from appservice.events import Event
from appservice.state_cache.base import (
    KEEP,
    Keep,
    Member,
    ProfileValue,
    StateChange,
    change_of,
    check_content,
    check_creators,
    check_id,
    check_member,
    check_membership,
    check_profile,
    member_row,
    now_ms,
)
from appservice.state_cache.power import RoomPower
from appservice.store import SQLStore
from appservice.store.schema import cache_member, cache_registered, cache_room

__all__ = ["SQLStateCache"]


def _encode_power(power: RoomPower) -> bytes:
    return orjson.dumps(
        {
            "power_levels": power.power_levels,
            "creators": list(power.creators),
            "room_version": power.room_version,
        }
    )


def _decode_power(raw: bytes | None, room_id: str) -> RoomPower:
    if raw is None:
        return RoomPower()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"cache_room {room_id}: power_levels is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"cache_room {room_id}: power_levels is not a JSON object")
    levels = data.get("power_levels")
    creators = data.get("creators")
    version = data.get("room_version")
    return RoomPower(
        levels if isinstance(levels, dict) else None,
        tuple(c for c in creators if isinstance(c, str)) if isinstance(creators, list) else (),
        version if isinstance(version, str) else None,
    )


class SQLStateCache:
    """A ``StateCache`` on the ``cache_room``/``cache_member``/``cache_registered`` tables of an
    open ``SQLStore``; durable across restarts. Each call is one short transaction.
    """

    def __init__(self, store: SQLStore) -> None:
        if not isinstance(store, SQLStore):
            raise TypeError(f"SQLStateCache: store must be a SQLStore, got {type(store).__name__}")
        self.store = store

    async def is_registered(self, user_id: str) -> bool:
        """Whether ``user_id`` is known to be registered."""
        check_id(user_id, "user_id", "is_registered")
        table = cache_registered
        async with self.store.reading() as conn:
            found = await conn.scalar(select(table.c.user_id).where(table.c.user_id == user_id))
        return found is not None

    async def mark_registered(self, user_id: str) -> None:
        """Remember that ``user_id`` is registered."""
        check_id(user_id, "user_id", "mark_registered")
        row = {"user_id": user_id, "registered_at": now_ms()}
        async with self.store.transaction() as conn:
            await conn.execute(
                self.store.upsert(cache_registered, ["user_id"], ["registered_at"]), [row]
            )

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's membership, ``None`` if unknown."""
        found = await self.member(room_id, user_id)
        return found.membership if found is not None else None

    async def member(self, room_id: str, user_id: str) -> Member | None:
        """The user's membership with profile, ``None`` if unknown."""
        check_id(room_id, "room_id", "member")
        check_id(user_id, "user_id", "member")
        t = cache_member
        query = select(t.c.membership, t.c.displayname, t.c.avatar_url).where(
            t.c.room_id == room_id, t.c.user_id == user_id
        )
        async with self.store.reading() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Member(row[0], row[1], row[2])

    async def members(self, room_id: str) -> dict[str, Member]:
        """Every known member of the room (one query)."""
        check_id(room_id, "room_id", "members")
        t = cache_member
        query = select(t.c.user_id, t.c.membership, t.c.displayname, t.c.avatar_url).where(
            t.c.room_id == room_id
        )
        async with self.store.reading() as conn:
            rows = (await conn.execute(query)).all()
        return {r[0]: Member(r[1], r[2], r[3]) for r in rows}

    async def members_complete(self, room_id: str) -> bool:
        """Whether ``set_members`` stored the whole member list."""
        check_id(room_id, "room_id", "members_complete")
        t = cache_room
        async with self.store.reading() as conn:
            found = await conn.scalar(select(t.c.members_complete).where(t.c.room_id == room_id))
        return bool(found)

    async def set_membership(
        self,
        room_id: str,
        user_id: str,
        membership: str,
        *,
        displayname: ProfileValue = KEEP,
        avatar_url: ProfileValue = KEEP,
    ) -> None:
        """Record a membership; ``KEEP`` profile fields stay as stored."""
        where = "set_membership"
        row: dict[str, Any] = {
            "room_id": check_id(room_id, "room_id", where),
            "user_id": check_id(user_id, "user_id", where),
            "membership": check_membership(membership, where),
        }
        changed = ["membership"]
        for name, value in (("displayname", displayname), ("avatar_url", avatar_url)):
            value = check_profile(value, name, where)
            row[name] = None if isinstance(value, Keep) else value
            if not isinstance(value, Keep):
                changed.append(name)
        keys = ["room_id", "user_id"]
        async with self.store.transaction() as conn:
            await conn.execute(self.store.upsert(cache_member, keys, changed), [row])

    async def set_members(self, room_id: str, members: Mapping[str, Member]) -> None:
        """Replace the room's member list and mark it complete, in one transaction."""
        check_id(room_id, "room_id", "set_members")
        rows = [
            member_row(
                room_id, check_id(u, "members key", "set_members"), check_member(m, "set_members")
            )
            for u, m in members.items()
        ]
        async with self.store.transaction() as conn:
            await conn.execute(delete(cache_member).where(cache_member.c.room_id == room_id))
            if rows:
                await conn.execute(cache_member.insert(), rows)
            await self._touch_room(conn, room_id, members_complete=True)

    async def set_profile(
        self, user_id: str, *, displayname: ProfileValue = KEEP, avatar_url: ProfileValue = KEEP
    ) -> None:
        """Apply a profile change to the user's joined rooms (one UPDATE)."""
        check_id(user_id, "user_id", "set_profile")
        values = {
            name: value
            for name, value in (
                ("displayname", check_profile(displayname, "displayname", "set_profile")),
                ("avatar_url", check_profile(avatar_url, "avatar_url", "set_profile")),
            )
            if not isinstance(value, Keep)
        }
        if not values:
            return
        t = cache_member
        async with self.store.transaction() as conn:
            await conn.execute(
                update(t).where(t.c.user_id == user_id, t.c.membership == "join").values(values)
            )

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        """The cached power levels, ``None`` if unknown."""
        found = await self.power(room_id)
        return found.power_levels if found is not None else None

    async def set_power_levels(self, room_id: str, content: Mapping[str, Any]) -> None:
        """Record the power levels."""
        check_id(room_id, "room_id", "set_power_levels")
        levels = check_content(content, "set_power_levels")
        change = StateChange("power_levels", room_id, content=levels)
        async with self.store.transaction() as conn:
            await self._apply(conn, [change])

    async def set_creators(
        self, room_id: str, creators: Iterable[str], room_version: str | None
    ) -> None:
        """Record creators and room version from ``m.room.create``."""
        check_id(room_id, "room_id", "set_creators")
        checked = check_creators(creators, room_version)
        change = StateChange("create", room_id, creators=checked, room_version=room_version)
        async with self.store.transaction() as conn:
            await self._apply(conn, [change])

    async def power(self, room_id: str) -> RoomPower | None:
        """Power levels and creators, ``None`` when neither is known."""
        check_id(room_id, "room_id", "power")
        t = cache_room
        async with self.store.reading() as conn:
            raw = await conn.scalar(select(t.c.power_levels).where(t.c.room_id == room_id))
        found = _decode_power(None if raw is None else bytes(raw), room_id)
        if found.power_levels is None and not found.creators:
            return None
        return found

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether the room is known to be encrypted."""
        check_id(room_id, "room_id", "is_encrypted")
        t = cache_room
        async with self.store.reading() as conn:
            found = await conn.scalar(select(t.c.encrypted).where(t.c.room_id == room_id))
        return bool(found)

    async def set_encrypted(self, room_id: str, encrypted: bool = True) -> None:
        """Record the room's encryption flag."""
        check_id(room_id, "room_id", "set_encrypted")
        async with self.store.transaction() as conn:
            await self._touch_room(conn, room_id, encrypted=bool(encrypted))

    async def update_from_event(self, event: Event) -> None:
        """Apply one state event (others are ignored)."""
        await self.update_from_events([event])

    async def update_from_events(self, events: Iterable[Event]) -> None:
        """Apply state events in order, in one transaction (members in one batch)."""
        changes = [c for c in map(change_of, events) if c is not None]
        if changes:
            async with self.store.transaction() as conn:
                await self._apply(conn, changes)

    async def _apply(self, conn: AsyncConnection, changes: list[StateChange]) -> None:
        members: dict[tuple[str, str], dict[str, Any]] = {}
        for change in changes:
            if change.kind == "member" and change.member is not None:
                key = (change.room_id, change.user_id)
                members.pop(key, None)  # keep the last one, in order
                members[key] = member_row(change.room_id, change.user_id, change.member)
            elif change.kind == "encryption":
                await self._touch_room(conn, change.room_id, encrypted=True)
            else:
                await self._update_power(conn, change)
        if members:
            keys, changed = ["room_id", "user_id"], ["membership", "displayname", "avatar_url"]
            await conn.execute(
                self.store.upsert(cache_member, keys, changed), list(members.values())
            )

    async def _update_power(self, conn: AsyncConnection, change: StateChange) -> None:
        """Read-modify-write the power blob (row-locked on PostgreSQL)."""
        t = cache_room
        query = select(t.c.power_levels).where(t.c.room_id == change.room_id)
        if self.store.dialect == "postgresql":
            query = query.with_for_update()
        raw = await conn.scalar(query)
        old = _decode_power(None if raw is None else bytes(raw), change.room_id)
        if change.kind == "power_levels":
            new = RoomPower(change.content, old.creators, old.room_version)
        else:
            new = RoomPower(old.power_levels, change.creators, change.room_version)
        await self._touch_room(conn, change.room_id, power_levels=_encode_power(new))

    async def _touch_room(self, conn: AsyncConnection, room_id: str, **values: Any) -> None:
        row = {"room_id": room_id, "updated_at": now_ms(), **values}
        changed = [*values, "updated_at"]
        await conn.execute(self.store.upsert(cache_room, ["room_id"], changed), [row])
