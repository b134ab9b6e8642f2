"""Matrix -> remote: the bridge's handlers for what the homeserver pushes to the appservice.

Routes each event to the command bot (management rooms, prefixed messages in portals) or to the
connector, resolving replies, edits and redactions through the message map. Only the event kinds
the connector has a capability for are routed. Echo suppression: events sent by our bot or our
puppets (``AppService.is_echo``) are never handed to the connector or the command bot; they only
update the state cache. None of this makes a homeserver request, except the bot accepting an
invite to a management room and the command bot's replies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appservice.bridge.connector import (
    MatrixMessage,
    SupportsEdits,
    SupportsMembership,
    SupportsReactions,
    SupportsRedactions,
    SupportsRoomMeta,
    SupportsTyping,
)
from appservice.bridge.lru import LRU
from appservice.bridge.messages import MessageRef
from appservice.events import HTML_FORMAT, Event
from appservice.state_cache import Member

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge
    from appservice.bridge.portal import Portal
    from appservice.bridge.user import User
    from appservice.server import AppService

__all__ = ["BridgeStats", "MatrixHandler"]

log = logging.getLogger("appservice.bridge.matrix")


@dataclass(slots=True)
class BridgeStats:
    """Counters of what the Matrix side did (tests and metrics read them)."""

    echoes_ignored: int = 0
    messages_bridged: int = 0
    commands: int = 0
    dropped: int = 0


def _relates(content: Mapping[str, Any]) -> Mapping[str, Any]:
    value = content.get("m.relates_to")
    return value if isinstance(value, Mapping) else {}


def _matrix_message(
    event: Event, content: Mapping[str, Any], reply: MessageRef | None
) -> MatrixMessage:
    body = content.get("body")
    html = content.get("formatted_body") if content.get("format") == HTML_FORMAT else None
    msgtype = content.get("msgtype")
    return MatrixMessage(
        event_id=event.id,
        room_id=event.room_id,
        sender=event.sender,
        msgtype=msgtype if isinstance(msgtype, str) else "",
        body=body if isinstance(body, str) else "",
        html=html if isinstance(html, str) else None,
        reply_to=reply,
        timestamp=event.timestamp,
        content=content,
    )


def _remote_ids(result: object) -> list[str]:
    if result is None:
        return []
    if isinstance(result, str):
        return [result] if result else []
    if isinstance(result, list | tuple):
        return [r for r in result if isinstance(r, str) and r]
    raise TypeError(
        f"handle_matrix_message must return a remote ID, a sequence of them or None, "
        f"got {type(result).__name__}"
    )


class MatrixHandler:
    """Registers the bridge's handlers on an ``AppService`` and routes what arrives."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.stats = BridgeStats()
        self._typing: LRU[str, frozenset[str]] = LRU(1024)

    def register(self, svc: AppService) -> None:
        """Handlers for every event kind the bridge (and its connector's capabilities) needs."""
        caps = self.bridge.capabilities
        svc.on_event_type("m.room.member")(self.on_member)
        svc.on_event_type("m.room.message")(self.on_message)
        if caps.reactions:
            svc.on_event_type("m.reaction")(self.on_reaction)
        if caps.redactions:
            svc.on_event_type("m.room.redaction")(self.on_redaction)
        if caps.room_meta:
            svc.on_event_type("m.room.name")(self.on_room_meta)
            svc.on_event_type("m.room.topic")(self.on_room_meta)
        if caps.typing:
            svc.on_ephemeral(self.on_ephemeral)

    def _echo(self, event: Event) -> bool:
        if self.bridge.is_echo(event):
            self.stats.echoes_ignored += 1
            return True
        return False

    async def _sender(self, event: Event, portal: Portal) -> User | None:
        user = await self.bridge.users.get(event.sender)
        if not user.has_level("relay"):
            log.debug("%s: %s has level %s; %s not bridged", portal, user.user_id, user.level,
                      event.type)  # fmt: skip
            self.stats.dropped += 1
            return None
        return user

    # --- state --------------------------------------------------------------------------------

    async def on_member(self, event: Event) -> None:
        """Invites to the bot (management rooms) and real users' membership in portals."""
        await self.bridge.network_ready()
        membership = event.content.get("membership")
        bot_id = self.bridge.bot.user_id
        if event.state_key == bot_id and membership == "invite" and not self.bridge.is_echo(event):
            await self._bot_invited(event)
            return
        if not self.bridge.capabilities.membership or not event.state_key:
            return
        if self.bridge.is_own_user(event.state_key):
            return
        portal = await self.bridge.portals.by_room(event.room_id)
        if portal is None or not isinstance(membership, str):
            return
        connector = self.bridge.connector
        if isinstance(connector, SupportsMembership):
            user = await self.bridge.users.get(event.state_key)
            await connector.handle_matrix_membership(portal, user, membership)

    async def _bot_invited(self, event: Event) -> None:
        bridge, room_id = self.bridge, event.room_id
        user = await bridge.users.get(event.sender)
        bot = bridge.bot
        if not user.has_level("user"):
            log.info("room %s: %s (level %s) invited the bot; refused", room_id, user.user_id,
                     user.level)  # fmt: skip
            await bot.leave_room(room_id)
            return
        await bot.join_room(room_id)
        joined = (await bot.client.joined_members(room_id)).joined
        members = {u: Member("join", m.display_name, m.avatar_url) for u, m in joined.items()}
        await bridge.state.set_members(room_id, members)  # later member events keep it current
        log.info("room %s: the bot joined on %s's invite (%d members)", room_id, user.user_id,
                 len(joined))  # fmt: skip
        if set(joined) == {bot.user_id, user.user_id}:
            await user.set_management_room(room_id)
            await bridge.reply(
                room_id,
                f"Hello {user.user_id}: this is your management room. Send `help` for the "
                "commands you can use.",
                None,
            )

    async def _is_management(self, room_id: str, user: User) -> bool:
        """A room is a management room while just the bot and the user are in it."""
        if not user.has_level("user"):
            return False
        state = self.bridge.state
        if not await state.members_complete(room_id):
            return user.management_room == room_id
        members = await state.members(room_id)
        joined = {u for u, m in members.items() if m.membership == "join"}
        return joined == {self.bridge.bot.user_id, user.user_id}

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, event: Event) -> None:
        """A message: a command, an edit, or a message for the connector."""
        if self._echo(event):
            return
        await self.bridge.network_ready()
        bridge, content = self.bridge, event.content
        portal = await bridge.portals.by_room(event.room_id)
        relates = _relates(content)
        body = content.get("body")
        command = (
            body
            if content.get("msgtype") == "m.text"
            and isinstance(body, str)
            and relates.get("rel_type") != "m.replace"
            else None
        )
        if portal is None:
            if command is not None:
                user = await bridge.users.get(event.sender)
                if await self._is_management(event.room_id, user):
                    self.stats.commands += 1
                    await bridge.commands.handle(event.room_id, user, command, management=True)
            return
        if command is not None and bridge.commands.is_prefixed(command):
            user = await bridge.users.get(event.sender)
            self.stats.commands += 1
            await bridge.commands.handle(event.room_id, user, command, portal=portal)
            return
        if await bridge.messages.by_event(event.id) is not None:
            return  # already bridged (a redelivery after a crash)
        sender = await self._sender(event, portal)
        if sender is None:
            return
        if relates.get("rel_type") == "m.replace":
            await self._edit(event, portal, sender, relates)
        else:
            await self._message(event, portal, sender, relates)

    async def _message(
        self, event: Event, portal: Portal, user: User, relates: Mapping[str, Any]
    ) -> None:
        bridge = self.bridge
        reply = None
        in_reply = relates.get("m.in_reply_to")
        if isinstance(in_reply, Mapping) and isinstance(in_reply.get("event_id"), str):
            reply = await bridge.messages.by_event(in_reply["event_id"])
        message = _matrix_message(event, event.content, reply)
        result = await bridge.connector.handle_matrix_message(portal, user, message)
        ids = _remote_ids(result)
        if ids:
            await bridge.messages.add(
                MessageRef(
                    portal.remote_id,
                    portal.receiver,
                    ids[0],
                    event.id,
                    event.room_id,
                    sender=event.sender,
                )
            )
        if len(ids) > 1:
            log.debug("%s: %s became %d remote messages; %s is the one recorded", portal, event.id,
                      len(ids), ids[0])  # fmt: skip
        self.stats.messages_bridged += 1
        log.debug("%s: %s from %s -> remote %s", portal, event.id, event.sender, ids)

    async def _edit(
        self, event: Event, portal: Portal, user: User, relates: Mapping[str, Any]
    ) -> None:
        connector = self.bridge.connector
        target_id = relates.get("event_id")
        new = event.content.get("m.new_content")
        if not isinstance(connector, SupportsEdits) or not isinstance(target_id, str):
            self.stats.dropped += 1
            return
        target = await self.bridge.messages.by_event(target_id)
        if target is None:
            log.debug("%s: edit %s of unbridged %s dropped", portal, event.id, target_id)
            self.stats.dropped += 1
            return
        content = new if isinstance(new, Mapping) else event.content
        await connector.handle_matrix_edit(
            portal, user, target, _matrix_message(event, content, None)
        )

    async def on_reaction(self, event: Event) -> None:
        """A reaction to a bridged message (routed only with ``SupportsReactions``)."""
        if self._echo(event):
            return
        await self.bridge.network_ready()
        relates = _relates(event.content)
        target_id, key = relates.get("event_id"), relates.get("key")
        if relates.get("rel_type") != "m.annotation" or not isinstance(target_id, str):
            return
        portal = await self.bridge.portals.by_room(event.room_id)
        if portal is None or not isinstance(key, str):
            return
        target = await self.bridge.messages.by_event(target_id)
        user = await self._sender(event, portal)
        connector = self.bridge.connector
        if target is None or user is None or not isinstance(connector, SupportsReactions):
            return
        await connector.handle_matrix_reaction(portal, user, target, key)

    async def on_redaction(self, event: Event) -> None:
        """A redaction of a bridged message (routed only with ``SupportsRedactions``)."""
        if self._echo(event) or not event.redacts:
            return
        await self.bridge.network_ready()
        portal = await self.bridge.portals.by_room(event.room_id)
        if portal is None:
            return
        target = await self.bridge.messages.by_event(event.redacts)
        user = await self._sender(event, portal)
        connector = self.bridge.connector
        if target is None or user is None or not isinstance(connector, SupportsRedactions):
            return
        await connector.handle_matrix_redaction(portal, user, target)
        await self.bridge.messages.delete_event(target.event_id)

    async def on_room_meta(self, event: Event) -> None:
        """A portal's name or topic changed on Matrix (routed only with ``SupportsRoomMeta``)."""
        if self._echo(event) or event.state_key != "":
            return
        await self.bridge.network_ready()
        portal = await self.bridge.portals.by_room(event.room_id)
        connector = self.bridge.connector
        if portal is None or not isinstance(connector, SupportsRoomMeta):
            return
        user = await self._sender(event, portal)
        if user is None:
            return
        key = "name" if event.type == "m.room.name" else "topic"
        value = event.content.get(key)
        value = value if isinstance(value, str) else ""
        if event.type == "m.room.name":
            portal.name = value
            await connector.handle_matrix_room_name(portal, user, value)
        else:
            portal.topic = value
            await connector.handle_matrix_room_topic(portal, user, value)
        await self.bridge.portals.save(portal)

    async def on_ephemeral(self, event: Event) -> None:
        """Typing in portals (routed only with ``SupportsTyping``); changes per user only."""
        if event.type != "m.typing" or not event.room_id:
            return
        ids = event.content.get("user_ids")
        now = (
            frozenset(u for u in ids if isinstance(u, str))
            if isinstance(ids, list)
            else frozenset()
        )
        before = self._typing.get(event.room_id) or frozenset()
        self._typing.put(event.room_id, now)
        changed = [(u, True) for u in now - before] + [(u, False) for u in before - now]
        changed = [(u, t) for u, t in changed if not self.bridge.is_own_user(u)]
        if not changed:
            return
        await self.bridge.network_ready()
        portal = await self.bridge.portals.by_room(event.room_id)
        connector = self.bridge.connector
        if portal is None or not isinstance(connector, SupportsTyping):
            return
        for user_id, typing in changed:
            user = await self.bridge.users.get(user_id)
            if user.has_level("relay"):
                await connector.handle_matrix_typing(portal, user, typing)
