"""Direct chats started on Matrix (per-user mode): inviting an IRC user's puppet to a direct room
makes that room the private chat between the inviter's IRC connection and that nick.

The framework routes membership of real users only, so this listens to ``m.room.member`` on the
appservice itself: a real user's ``is_direct`` invite of one of our puppets makes the puppet join
and the room the ``pm:<nick>`` portal with the inviter as receiver. Messages there then reach
the connector like any portal's (``IRCConnector._relay_private``), and the nick's answers come
back into the same room.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appservice.events import Event
from bridges.irc.chats import DM_PREFIX

if TYPE_CHECKING:
    from appservice.bridge import Bridge

__all__ = ["register_direct_chats"]

log = logging.getLogger("bridges.irc.direct")


def register_direct_chats(bridge: Bridge) -> None:
    """Accept direct-chat invites of puppets from users with level ``user`` or more."""

    @bridge.svc.on_event_type("m.room.member", ignore_echo=True)
    async def on_member(event: Event) -> None:
        content = event.content
        puppet_id = event.state_key
        if content.get("membership") != "invite" or content.get("is_direct") is not True:
            return
        if not puppet_id or puppet_id == bridge.bot.user_id:
            return
        remote_id = bridge.config.puppet_remote_name(puppet_id)
        if remote_id is None:
            return
        await bridge.network_ready()
        user = await bridge.users.get(event.sender)
        if not user.has_level("user"):
            log.info("room %s: %s (level %s) invited %s; ignored", event.room_id, event.sender,
                     user.level, puppet_id)  # fmt: skip
            return
        puppet = await bridge.puppets.get(remote_id)
        assert puppet is not None
        await puppet.intent.join_room(event.room_id)
        portal = await bridge.portals.get(DM_PREFIX + remote_id, event.sender)
        assert portal is not None
        previous = portal.room_id
        portal.room_id, portal.direct, portal.public = event.room_id, True, False
        portal.name = puppet.displayname or remote_id
        await bridge.portals.save(portal)
        log.info("%s: direct chat with IRC user %s%s", portal, remote_id,
                 f" (replaces room {previous})" if previous else "")  # fmt: skip
