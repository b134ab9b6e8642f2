"""The message map: which Matrix event stands for which remote message, in ``bridge_message``.

Replies, edits and redactions name their target by ID on one side; the map translates it to the
other side. One remote message may become several Matrix events (``part`` tells them apart,
``""`` for the main one); each Matrix event maps to exactly one (remote message, part).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.sql.dml import Insert

from appservice.store import SQLStore
from appservice.store.schema import bridge_message

__all__ = ["MessageMap", "MessageRef"]

log = logging.getLogger("appservice.bridge.messages")


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One row of the map: a remote message (part) in a portal and its Matrix event."""

    remote_chat: str
    receiver: str
    remote_id: str
    event_id: str
    room_id: str
    part: str = ""
    sender: str = ""
    sent_at: int = 0


def _ref(row: Row[Any, Any, Any, Any, Any, Any, Any, Any]) -> MessageRef:
    chat, receiver, remote_id, part, event_id, room_id, sender, sent_at = row
    return MessageRef(chat, receiver, remote_id, event_id, room_id, part, sender, sent_at)


_COLUMNS = (
    bridge_message.c.remote_chat,
    bridge_message.c.receiver,
    bridge_message.c.remote_id,
    bridge_message.c.part,
    bridge_message.c.event_id,
    bridge_message.c.room_id,
    bridge_message.c.sender,
    bridge_message.c.sent_at,
)


class MessageMap:
    """Reads and writes ``bridge_message`` on an open ``SQLStore`` (one short transaction each)."""

    def __init__(self, store: SQLStore) -> None:
        if not isinstance(store, SQLStore):
            raise TypeError(f"MessageMap: store must be a SQLStore, got {type(store).__name__}")
        self.store = store
        self._upsert: Insert | None = None

    async def add(self, ref: MessageRef) -> MessageRef:
        """Record ``ref`` (``sent_at`` 0 means now); the same remote (part) again replaces it."""
        for name in ("remote_chat", "remote_id", "event_id", "room_id"):
            value = getattr(ref, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"MessageMap.add: {name} must be a non-empty str, got {value!r}")
        if ref.sent_at == 0:
            ref = MessageRef(
                ref.remote_chat,
                ref.receiver,
                ref.remote_id,
                ref.event_id,
                ref.room_id,
                ref.part,
                ref.sender,
                int(time.time() * 1000),
            )
        if self._upsert is None:
            self._upsert = self.store.upsert(
                bridge_message,
                ("remote_chat", "receiver", "remote_id", "part"),
                ("event_id", "room_id", "sender", "sent_at"),
            )
        row = {
            "remote_chat": ref.remote_chat,
            "receiver": ref.receiver,
            "remote_id": ref.remote_id,
            "part": ref.part,
            "event_id": ref.event_id,
            "room_id": ref.room_id,
            "sender": ref.sender,
            "sent_at": ref.sent_at,
        }
        async with self.store.transaction() as conn:
            await conn.execute(self._upsert, row)
        part = f" part {ref.part}" if ref.part else ""
        log.debug("room %s: event %s <-> remote %s/%s%s", ref.room_id, ref.event_id,
                  ref.remote_chat, ref.remote_id, part)  # fmt: skip
        return ref

    async def by_remote(
        self, remote_chat: str, receiver: str, remote_id: str, part: str = ""
    ) -> MessageRef | None:
        """The Matrix side of a remote message (part), or ``None`` when never bridged."""
        query = select(*_COLUMNS).where(
            bridge_message.c.remote_chat == remote_chat,
            bridge_message.c.receiver == receiver,
            bridge_message.c.remote_id == remote_id,
            bridge_message.c.part == part,
        )
        async with self.store.reading() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _ref(row)

    async def parts(self, remote_chat: str, receiver: str, remote_id: str) -> list[MessageRef]:
        """Every part of a remote message, main part first."""
        query = (
            select(*_COLUMNS)
            .where(
                bridge_message.c.remote_chat == remote_chat,
                bridge_message.c.receiver == receiver,
                bridge_message.c.remote_id == remote_id,
            )
            .order_by(bridge_message.c.part)
        )
        async with self.store.reading() as conn:
            rows = (await conn.execute(query)).all()
        return [_ref(row) for row in rows]

    async def by_event(self, event_id: str) -> MessageRef | None:
        """The remote side of a Matrix event, or ``None`` when it is not in the map."""
        query = select(*_COLUMNS).where(bridge_message.c.event_id == event_id)
        async with self.store.reading() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _ref(row)

    async def delete_event(self, event_id: str) -> bool:
        """Forget the row of a Matrix event (after a redaction); whether there was one."""
        async with self.store.transaction() as conn:
            result = await conn.execute(
                delete(bridge_message).where(bridge_message.c.event_id == event_id)
            )
        return bool(result.rowcount)
