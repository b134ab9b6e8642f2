"""Per-user mode: one IRC connection per Matrix user who talks, closed again when idle.

A Matrix user's nick comes from their display name (``nick_from_matrix`` + ``nick_suffix``);
the server's 433 answers walk pydle's fallback nicks. The connections only send: what IRC says
is read from the relay bot's connection, which must leave our users' own lines out (``is_ours``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from appservice.ids import extract_user_localpart
from bridges.irc.client import IrcEvent, Message
from bridges.irc.config import IrcConfig
from bridges.irc.connection import Connection
from bridges.irc.nicks import nick_candidates, nick_from_matrix

__all__ = ["UserConnections"]

log = logging.getLogger("bridges.irc.users")

_USERNAME_JUNK = re.compile(r"[^a-z0-9_-]")

NICK_LENGTH = 30
"""Nick length used for Matrix users (ngIRCd's and most networks' limit is at least this)."""


@dataclass(eq=False)
class _Entry:
    conn: Connection
    last_used: float


class UserConnections:
    """The IRC connections of Matrix users, by Matrix user ID. Private messages to a user's
    nick go to ``on_private(user_id, message)``; everything else on these connections is left
    to the relay bot's connection, which sees the channels too."""

    def __init__(self, config: IrcConfig, on_private: Callable[[str, Message], None]) -> None:
        self.config = config
        self._on_private = on_private
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def start(self) -> None:
        """Start closing idle connections (when ``idle_timeout`` is set)."""
        if self.config.idle_timeout > 0 and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="irc-idle-reaper")

    async def stop(self) -> None:
        """Close every connection."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await entry.conn.stop()

    def is_ours(self, fold: str) -> bool:
        """Whether the (casefolded) nick belongs to one of our users' connections."""
        return any(e.conn.client.fold(e.conn.current_nick) == fold for e in self._entries.values())

    def get(self, user_id: str) -> Connection | None:
        """The user's connection, if open."""
        entry = self._entries.get(user_id)
        return None if entry is None else entry.conn

    async def connection(self, user_id: str, displayname: str | None) -> Connection:
        """The user's connection, opened (and registered, or retrying) when missing."""
        async with self._lock:
            entry = self._entries.get(user_id)
            if entry is None:
                nick = nick_from_matrix(
                    user_id, displayname, max_len=NICK_LENGTH, suffix=self.config.nick_suffix
                )
                fallbacks = list(nick_candidates(nick, max_len=NICK_LENGTH, user_id=user_id))[1:]
                localpart = extract_user_localpart(user_id).lower()
                username = _USERNAME_JUNK.sub("", localpart)[:10] or "matrix"
                conn = Connection(
                    self.config,
                    nick,
                    self._listener(user_id),
                    username=username,
                    realname=f"{user_id} (Matrix)",
                    fallback_nicks=fallbacks,
                )
                entry = self._entries[user_id] = _Entry(conn, time.monotonic())
                log.info("user %s: opening an IRC connection as %s", user_id, nick)
                await conn.start()
            entry.last_used = time.monotonic()
            return entry.conn

    def _listener(self, user_id: str) -> Callable[[IrcEvent], None]:
        def on_event(event: IrcEvent) -> None:
            if isinstance(event, Message) and event.target[:1] not in "#&+!":
                self._on_private(user_id, event)

        return on_event

    async def close(self, user_id: str, reason: str) -> bool:
        """Close the user's connection; whether there was one."""
        async with self._lock:
            entry = self._entries.pop(user_id, None)
        if entry is None:
            return False
        log.info("user %s: closing the IRC connection of %s (%s)", user_id,
                 entry.conn.current_nick, reason)  # fmt: skip
        await entry.conn.stop()
        return True

    async def _reap(self) -> None:
        idle = self.config.idle_timeout
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.05), 30.0))
            now = time.monotonic()
            for user_id, entry in list(self._entries.items()):
                if now - entry.last_used >= idle:
                    await self.close(user_id, f"idle for {idle:.0f} s")
