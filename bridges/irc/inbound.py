"""IRC -> Matrix: what the relay bot's connection (and our users' private messages) report,
handled in arrival order by one worker.

pydle reports each line from a task of its own; the client hands every event here synchronously,
so a nick change, a join and the message after them reach Matrix in that order. A failed event
is retried (with the same remote message ID, so a retried send is not doubled). IRC users are
puppets keyed by their casefolded nick; a nick change keeps the puppet (its display name
follows) for as long as the bridge runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appservice.bridge import Portal, RemoteMessage, RemoteUser
from bridges.irc.chats import DM_PREFIX, is_channel, remote_id_for
from bridges.irc.client import (
    Disconnected,
    IrcEvent,
    Joined,
    Kicked,
    Message,
    NickChanged,
    Parted,
    Quit,
    Registered,
    SelfJoined,
    TopicChanged,
)
from bridges.irc.formatting import irc_to_matrix

if TYPE_CHECKING:
    from appservice.bridge import Bridge
    from bridges.irc.connection import Connection
    from bridges.irc.connector import IRCConnector

__all__ = ["Inbound"]

log = logging.getLogger("bridges.irc.inbound")

_MSGTYPES = {"text": "m.text", "action": "m.emote", "notice": "m.notice"}
_ATTEMPTS = 4
_RETRY_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class _Private:
    """``message`` was sent privately to Matrix user ``user_id``'s nick."""

    user_id: str
    message: Message


@dataclass(frozen=True, slots=True)
class _SyncMembers:
    """Bring the room's puppets in line with the channel's members."""

    channel: str


_Item = IrcEvent | _SyncMembers | _Private


class Inbound:
    """The queue and worker that bridge IRC events into portals."""

    def __init__(self, connector: IRCConnector) -> None:
        self.connector = connector
        self._events: asyncio.Queue[_Item] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._identity: dict[str, str] = {}  # folded current nick -> puppet remote ID
        self._ids = itertools.count()
        self.handled = 0

    @property
    def bridge(self) -> Bridge:
        """The running bridge."""
        return self.connector.bridge

    @property
    def connection(self) -> Connection:
        """The relay bot's connection (it sees every channel)."""
        return self.connector.connection

    def start(self) -> None:
        """Start the worker."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="irc-events")

    async def stop(self) -> None:
        """Stop the worker (events still queued are dropped: IRC has no history to replay)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    def put(self, event: IrcEvent) -> None:
        """Queue an event of the relay bot's connection (called synchronously, in order)."""
        self._events.put_nowait(event)

    def private(self, user_id: str, message: Message) -> None:
        """Queue a private message to Matrix user ``user_id``'s own connection."""
        self._events.put_nowait(_Private(user_id, message))

    def sync_members(self, channel: str) -> None:
        """Queue a member sync of ``channel`` into its room."""
        self._events.put_nowait(_SyncMembers(channel))

    async def _work(self) -> None:
        """Handle IRC events in order; a failed one is retried (with the same remote message
        ID, so a retried send is not doubled) before it is given up."""
        while True:
            event = await self._events.get()
            remote_id = f"irc:{time.time_ns()}:{next(self._ids)}"
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    await self._handle(event, remote_id)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    if attempt == _ATTEMPTS:
                        log.exception("IRC event %s failed %d times; dropped", event, attempt)
                        break
                    log.warning("IRC event %s failed (attempt %d of %d): %s", event, attempt,
                                _ATTEMPTS, err)  # fmt: skip
                    await asyncio.sleep(_RETRY_DELAY * 2 ** (attempt - 1))
            self.handled += 1

    def _fold(self, name: str) -> str:
        return self.connection.client.fold(name)

    def _remote_user(self, nick: str) -> RemoteUser:
        """The puppet identity of ``nick``: its casefolded self, unless someone who renamed
        keeps that puppet now (then ``nick!2``, ``nick!3``... so two people never share one)."""
        folded = self._fold(nick)
        remote_id = self._identity.get(folded)
        if remote_id is None:
            remote_id, taken, n = folded, set(self._identity.values()), 2
            while remote_id in taken:
                remote_id, n = f"{folded}!{n}", n + 1
            if remote_id != folded:
                self._identity[folded] = remote_id
        return RemoteUser(remote_id, displayname=nick)

    async def _portal(self, channel: str) -> Portal | None:
        if not is_channel(channel):
            return None
        portal = await self.bridge.portals.get(
            remote_id_for(channel, self._fold(channel)), create=False
        )
        return portal if portal is not None and portal.room_id is not None else None

    def _ours(self, event: IrcEvent | _SyncMembers | _Private) -> bool:
        """Whether the event is about one of our users' own connections (echo)."""
        if self.connector.users is None or not len(self.connector.users):
            return False
        if isinstance(event, Message | Joined | Parted | Quit):
            nicks = [event.nick]
        elif isinstance(event, Kicked):
            nicks = [event.nick, event.by]
        elif isinstance(event, NickChanged):
            nicks = [event.old, event.new]
        else:
            return False
        return any(self.connector.users.is_ours(self._fold(nick)) for nick in nicks)

    async def _handle(self, event: IrcEvent | _SyncMembers | _Private, remote_id: str) -> None:
        if self._ours(event):
            return
        if isinstance(event, _Private):
            await self._private_message(event, remote_id)
        elif isinstance(event, Message):
            await self._message(event, remote_id)
        elif isinstance(event, Joined):
            await self._joined(event.channel, event.nick)
        elif isinstance(event, Parted):
            await self._left(event.channel, event.nick)
        elif isinstance(event, Kicked):
            await self._kicked(event)
        elif isinstance(event, Quit):
            for channel in event.channels:
                await self._left(channel, event.nick)
            self._identity.pop(self._fold(event.nick), None)
        elif isinstance(event, NickChanged):
            await self._renamed(event.old, event.new)
        elif isinstance(event, TopicChanged):
            portal = await self._portal(event.channel)
            if portal is not None and await portal.update_info(topic=event.topic):
                log.info("%s: topic set by %s on IRC", portal, event.by)
        elif isinstance(event, SelfJoined | _SyncMembers):
            await self._sync(event.channel)
        elif isinstance(event, Registered | Disconnected):
            log.debug("IRC connection event %s", event)

    async def _private_message(self, event: _Private, remote_id: str) -> None:
        """A private message to a Matrix user's nick: into their private chat portal."""
        message = event.message
        sender = self._remote_user(message.nick)
        portal = await self.bridge.portals.get(DM_PREFIX + sender.id, event.user_id)
        assert portal is not None
        body, html = irc_to_matrix(message.text)
        await portal.handle_remote_message(
            RemoteMessage(remote_id, sender, text=body, html=html, msgtype=_MSGTYPES[message.kind])
        )

    async def _message(self, event: Message, remote_id: str) -> None:
        portal = await self._portal(event.target)
        if portal is None:
            where = "channel" if is_channel(event.target) else "private message"
            log.debug("IRC %s %s from %s: no portal; dropped", where, event.target, event.nick)
            return
        body, html = irc_to_matrix(event.text)
        await portal.handle_remote_message(
            RemoteMessage(
                remote_id,
                self._remote_user(event.nick),
                text=body,
                html=html,
                msgtype=_MSGTYPES[event.kind],
            )
        )

    async def _joined(self, channel: str, nick: str) -> None:
        portal = await self._portal(channel)
        if portal is None or portal.room_id is None:
            return
        puppet = await self.bridge.puppets.get(self._remote_user(nick).id)
        assert puppet is not None
        await puppet.update_info(nick)
        await puppet.intent.ensure_joined(portal.room_id)

    async def _left(self, channel: str, nick: str) -> None:
        portal = await self._portal(channel)
        if portal is None or portal.room_id is None:
            return
        puppet = await self.bridge.puppets.get(self._remote_user(nick).id, create=False)
        if puppet is None:
            return
        if await self.bridge.state.membership(portal.room_id, puppet.user_id) == "join":
            await puppet.intent.leave_room(portal.room_id)
            log.info("%s: %s (%s) left", portal, nick, puppet.user_id)

    async def _kicked(self, event: Kicked) -> None:
        if event.own:
            log.warning("channel %s: the relay bot was kicked by %s (%s); rejoining",
                        event.channel, event.by, event.reason)  # fmt: skip
            await self.connection.join(event.channel)
            return
        await self._left(event.channel, event.nick)

    async def _renamed(self, old: str, new: str) -> None:
        remote_id = self._identity.pop(self._fold(old), self._fold(old))
        if remote_id != self._fold(new):
            self._identity[self._fold(new)] = remote_id
        puppet = await self.bridge.puppets.get(remote_id, create=False)
        if puppet is not None:
            await puppet.update_info(new)
            log.info("puppet %s: IRC nick %s is now %s", puppet.user_id, old, new)

    async def _sync(self, channel: str) -> None:
        """Topic and members of ``channel`` into its room (after a join or reconnect)."""
        portal = await self._portal(channel)
        conn = self.connection
        if portal is None or portal.room_id is None:
            return
        topic = conn.channel_topic(channel)
        if topic is not None:
            await portal.update_info(topic=topic)
        if not self.connector.config.sync_members:
            return
        present = set()
        for nick in conn.channel_users(channel):
            if self.connector.users is not None and self.connector.users.is_ours(self._fold(nick)):
                continue
            await self._joined(channel, nick)
            present.add(self.bridge.puppets.user_id_for(self._remote_user(nick).id))
        bridge = self.bridge
        for user_id, member in (await bridge.state.members(portal.room_id)).items():
            if (
                member.membership == "join"
                and user_id != bridge.bot.user_id
                and bridge.is_own_user(user_id)
                and user_id not in present
            ):
                await bridge.bot.user(user_id).leave_room(portal.room_id)
                log.info("%s: %s is no longer in %s; left", portal, user_id, channel)
