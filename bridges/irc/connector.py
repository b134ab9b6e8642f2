"""IRCConnector: the IRC network behind the bridge framework (Matrix -> IRC side here; IRC ->
Matrix in ``bridges.irc.inbound``).

In ``relay`` mode one bot connection carries every Matrix user's messages as ``<name> text``;
in ``per_user`` mode each Matrix user who talks gets a connection of their own (and private
messages to it become a direct chat), while the bot's connection still reads the channels.
IRC channel ``#chan`` is the portal of alias ``#<alias_prefix>chan:<domain>`` (remote ID
``chan``, casefolded); IRC users are puppets keyed by their casefolded nick. Matrix messages
wait (up to ``queue_timeout``) while IRC is away and are sent when it is back; the homeserver
transaction is acknowledged by the framework's durable inbox only once the handler returns, so
a bridge restart loses and doubles nothing.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from sqlalchemy import select

from appservice.bridge import (
    ChatInfo,
    MatrixMessage,
    MessageRef,
    Portal,
    RemoteUser,
    User,
)
from appservice.bridge.config import BridgeConfig
from appservice.ids import extract_user_localpart
from appservice.store.schema import bridge_portal
from bridges.irc.chats import DM_PREFIX, channel_for, is_channel, remote_id_for
from bridges.irc.commands import register_commands
from bridges.irc.config import IrcConfig
from bridges.irc.connection import Connection, NotDelivered
from bridges.irc.direct import register_direct_chats
from bridges.irc.inbound import Inbound
from bridges.irc.render import relay_lines
from bridges.irc.split import line_budget, pessimistic_source
from bridges.irc.users import UserConnections

if TYPE_CHECKING:
    from appservice.bridge import Bridge

__all__ = ["IRCConnector", "channel_for", "create_connector", "remote_id_for"]

log = logging.getLogger("bridges.irc.connector")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_NAME = 32


def _clean_name(name: str) -> str:
    name = _CONTROL.sub("", name).strip()
    return name[:_MAX_NAME] or "someone"


class IRCConnector:
    """The IRC network connector (relay or per-user mode): see the module docstring."""

    def __init__(self, config: IrcConfig, *, homeserver_url: str) -> None:
        self.config = config
        self.media_base_url = config.media_base_url or homeserver_url.rstrip("/")
        self._bridge: Bridge | None = None
        self.conn: Connection | None = None
        self.inbound = Inbound(self)
        self.users = (
            UserConnections(config, self.inbound.private) if config.mode == "per_user" else None
        )

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def bridge(self) -> Bridge:
        """The running bridge."""
        if self._bridge is None:
            raise RuntimeError("IRCConnector is not started")
        return self._bridge

    @property
    def connection(self) -> Connection:
        """The relay bot's connection."""
        if self.conn is None:
            raise RuntimeError("IRCConnector is not started")
        return self.conn

    async def start(self, bridge: Bridge) -> None:
        """Connect the relay bot and join the channel of every portal that has a room."""
        self._bridge = bridge
        register_commands(bridge, self)
        self.conn = conn = Connection(self.config, self.config.nick, self.inbound.put)
        self.inbound.start()
        query = select(bridge_portal.c.remote_id).where(
            bridge_portal.c.receiver == "", bridge_portal.c.room_id.is_not(None)
        )
        async with bridge.store.reading() as db:
            remote_ids = list((await db.execute(query)).scalars())
        for remote_id in remote_ids:
            channel = channel_for(remote_id)
            if channel is not None:
                await conn.join(channel)
        log.info("IRC %s: relay bot %s, %d portal channel(s)", conn.where, self.config.nick,
                 len(conn.wanted))  # fmt: skip
        await conn.start()
        if self.users is not None:
            self.users.start()
            register_direct_chats(bridge)

    async def stop(self) -> None:
        """Quit IRC and stop handling its events."""
        if self.users is not None:
            await self.users.stop()
        if self.conn is not None:
            await self.conn.stop()
        await self.inbound.stop()

    # --- chats --------------------------------------------------------------------------------

    async def get_chat_info(self, remote_id: str) -> ChatInfo | None:
        """Join the channel and describe it; None when the server refuses us."""
        if remote_id.startswith(DM_PREFIX) and len(remote_id) > len(DM_PREFIX):
            nick = remote_id[len(DM_PREFIX) :]
            return ChatInfo(name=nick, direct=True, members=(RemoteUser(nick, nick),))
        channel = channel_for(remote_id)
        conn = self.connection
        if channel is None:
            return None
        await conn.join(channel)
        joined = await conn.wait_joined(channel, self.config.connect_timeout)
        if not joined and conn.registered.is_set():
            log.info("channel %s: could not join; no portal", channel)
            conn.wanted.pop(conn.client.fold(channel), None)
            return None
        return ChatInfo(name=channel, topic=conn.channel_topic(channel), public=True)

    def remote_id(self, channel: str) -> str | None:
        """The portal remote ID of ``channel``, or None when it is not a channel name."""
        if not is_channel(channel) or channel_for(channel[1:] or " ") is None:
            return None
        return remote_id_for(channel, self.connection.client.fold(channel))

    async def linked(self, channel: str) -> None:
        """A room was linked to ``channel`` (the ``link`` command): join it, sync members."""
        await self.connection.join(channel)
        self.inbound.sync_members(channel)

    async def unlinked(self, channel: str) -> None:
        """``channel`` lost its room (the ``unlink`` command): leave the channel."""
        await self.connection.part(channel)

    # --- Matrix -> IRC ------------------------------------------------------------------------

    async def _display_name(self, room_id: str, user_id: str) -> str:
        member = await self.bridge.state.member(room_id, user_id)
        if member is not None and member.displayname:
            return _clean_name(member.displayname)
        puppet = await self.bridge.puppets.by_user_id(user_id)
        if puppet is not None:
            return _clean_name(puppet.displayname or puppet.remote_id)
        return _clean_name(extract_user_localpart(user_id))

    async def _relay(
        self, portal: Portal, sender: User, message: MatrixMessage, *, edit: bool = False
    ) -> bool:
        if portal.remote_id.startswith(DM_PREFIX):
            return await self._relay_private(portal, sender, message, edit=edit)
        channel = channel_for(portal.remote_id)
        if channel is None or portal.receiver or portal.room_id != message.room_id:
            log.info("%s: not an IRC channel portal (any more); %s dropped", portal,
                     message.event_id)  # fmt: skip
            return False
        reply_name = None
        if message.reply_to is not None and message.reply_to.sender:
            reply_name = await self._display_name(message.room_id, message.reply_to.sender)
        name: str | None = await self._display_name(message.room_id, sender.user_id)
        if self.users is not None:
            conn = await self.users.connection(sender.user_id, name)
            name = None
        else:
            conn = self.connection
        out = relay_lines(
            name,
            message.msgtype,
            message.body,
            message.html,
            message.content,
            budget=line_budget(
                pessimistic_source(conn.current_nick, conn.username), "PRIVMSG", channel
            ),
            media_base_url=self.media_base_url,
            reply_to_name=reply_name,
            edit=edit,
        )
        if out is None:
            return False
        await conn.join(channel)
        try:
            await conn.send(channel, out.command, out.lines, self.config.queue_timeout)
        except NotDelivered as err:
            log.warning("%s: %s from %s not delivered: %s", portal, message.event_id,
                        sender.user_id, err)  # fmt: skip
            await self.bridge.reply(
                message.room_id, f"Your message was not delivered to {channel}: {err}"
            )
            return False
        log.debug("%s: %s from %s -> %d IRC line(s)", portal, message.event_id, sender.user_id,
                  len(out.lines))  # fmt: skip
        return True

    async def _relay_private(
        self, portal: Portal, sender: User, message: MatrixMessage, *, edit: bool
    ) -> bool:
        """A message in a private chat portal goes to the nick from the receiver's connection."""
        nick = portal.remote_id[len(DM_PREFIX) :]
        mine = sender.user_id == portal.receiver and portal.room_id == message.room_id
        if self.users is None or not mine:
            log.info("%s: %s is not %s's private chat; %s dropped", portal, sender.user_id,
                     portal.receiver, message.event_id)  # fmt: skip
            return False
        name = await self._display_name(message.room_id, sender.user_id)
        conn = await self.users.connection(sender.user_id, name)
        budget = line_budget(pessimistic_source(conn.current_nick, conn.username), "PRIVMSG", nick)
        out = relay_lines(
            None,
            message.msgtype,
            message.body,
            message.html,
            message.content,
            budget=budget,
            media_base_url=self.media_base_url,
            edit=edit,
        )
        if out is None:
            return False
        try:
            await conn.send(nick, out.command, out.lines, self.config.queue_timeout)
        except NotDelivered as err:
            await self.bridge.reply(message.room_id, f"Your message was not delivered: {err}")
            return False
        return True

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str | None:
        """Relay the message to the portal's channel; its remote ID once it is on IRC."""
        sent = await self._relay(portal, sender, message)
        return f"mx:{message.event_id}" if sent else None

    async def handle_matrix_edit(
        self, portal: Portal, sender: User, target: MessageRef, message: MatrixMessage
    ) -> None:
        """IRC cannot edit: the new text is sent again, marked as a correction."""
        await self._relay(portal, sender, message, edit=True)

    async def handle_matrix_membership(self, portal: Portal, user: User, membership: str) -> None:
        """A Matrix user joined a portal: make sure the channel's people are in the room."""
        channel = channel_for(portal.remote_id)
        if channel is None or portal.receiver:
            return
        if membership != "join":
            own = self.users.get(user.user_id) if self.users is not None else None
            if own is not None:
                await own.part(channel)
            return
        await self.connection.join(channel)
        if self.config.sync_members:
            self.inbound.sync_members(channel)

    async def handle_matrix_room_name(self, portal: Portal, sender: User, name: str) -> None:
        """IRC channels have no name to change."""
        log.debug("%s: room renamed by %s; IRC channels have no name", portal, sender.user_id)

    async def handle_matrix_room_topic(self, portal: Portal, sender: User, topic: str) -> None:
        """Set the channel's topic (the relay bot needs the right to, under mode +t)."""
        channel = channel_for(portal.remote_id)
        if channel is None or portal.receiver:
            return
        line = _CONTROL.sub(" ", topic)
        try:
            await self.connection.send(channel, "TOPIC", [line], self.config.queue_timeout)
        except NotDelivered as err:
            log.warning("%s: topic from %s not set: %s", portal, sender.user_id, err)


def create_connector(config: BridgeConfig) -> IRCConnector:
    """The ``network.connector`` factory: ``bridges.irc:create_connector``."""
    return IRCConnector(
        IrcConfig.from_network(config.network), homeserver_url=config.homeserver.address
    )
