"""Admin commands of the IRC bridge: ``link`` an existing Matrix room to a channel, ``unlink`` it.

``link !room:id #channel`` (the bot must be invited to the room, or the room be public) makes the
room the channel's portal: the bot joins it and the channel, and the channel's people appear as
puppets. ``unlink #channel`` ends that: the bot leaves the room and the channel, and the portal
forgets the room (its alias, when the bridge made one, is removed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appservice.bridge import CommandEvent
from appservice.errors import HTTPError

if TYPE_CHECKING:
    from appservice.bridge import Bridge
    from bridges.irc.connector import IRCConnector

__all__ = ["register_commands"]

log = logging.getLogger("bridges.irc.commands")


def register_commands(bridge: Bridge, connector: IRCConnector) -> None:
    """Add ``link`` and ``unlink`` (admin level) to the bridge's command bot."""

    async def link(evt: CommandEvent) -> None:
        if len(evt.args) != 2 or not evt.args[0].startswith("!"):
            await evt.reply("Usage: link !room:id #channel")
            return
        room_id, channel = evt.args
        remote_id = connector.remote_id(channel)
        if remote_id is None:
            await evt.reply(f"{channel} is not an IRC channel name")
            return
        if await bridge.portals.by_room(room_id) is not None:
            await evt.reply(f"{room_id} is already a portal; unlink it first")
            return
        portal = await bridge.portals.get(remote_id)
        assert portal is not None
        if portal.room_id is not None:
            await evt.reply(f"{channel} is already linked to {portal.room_id}; unlink it first")
            return
        try:
            await bridge.bot.join_room(room_id)
        except HTTPError as err:
            await evt.reply(f"The bridge bot cannot join {room_id} ({err.code}); invite it first")
            return
        portal.room_id, portal.name, portal.public = room_id, channel, False
        await bridge.portals.save(portal)
        await connector.linked(channel)
        log.info("%s: linked to %s by %s", portal, channel, evt.user.user_id)
        await evt.reply(f"Linked {room_id} to {channel}")

    async def unlink(evt: CommandEvent) -> None:
        if len(evt.args) != 1:
            await evt.reply("Usage: unlink #channel")
            return
        channel = evt.args[0]
        remote_id = connector.remote_id(channel)
        portal = None if remote_id is None else await bridge.portals.get(remote_id, create=False)
        if portal is None or portal.room_id is None:
            await evt.reply(f"{channel} is not linked to a room")
            return
        room_id, portal.room_id = portal.room_id, None
        await bridge.portals.save(portal)
        alias = bridge.portals.alias_for(portal.remote_id)
        if alias is not None:
            try:
                await bridge.bot.client.delete_alias(alias)
            except HTTPError as err:
                log.debug("%s: alias %s not removed (%s)", portal, alias, err.code)
        await connector.unlinked(channel)
        if evt.room_id != room_id:
            await bridge.bot.leave_room(room_id)
        log.info("%s: room %s unlinked by %s", portal, room_id, evt.user.user_id)
        await evt.reply(f"Unlinked {room_id} from {channel}")
        if evt.room_id == room_id:
            await bridge.bot.leave_room(room_id)

    bridge.commands.register(
        "link", link, level="admin", help="link a Matrix room to an IRC channel",
        usage="!room:id #channel",
    )  # fmt: skip
    bridge.commands.register(
        "unlink", unlink, level="admin", help="unlink an IRC channel from its room",
        usage="#channel",
    )  # fmt: skip
