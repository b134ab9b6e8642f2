"""Portal: a remote chat and its Matrix room, and everything that goes from the chat to the room.

A portal's row (``bridge_portal``, keyed by remote chat ID and ``receiver`` — ``""`` for a chat
everyone shares, a Matrix user ID for one seen per user such as a DM) is made without any
request. Its room is created on demand: when someone joins the portal's alias (the alias query)
or on the first remote message. Remote messages are sent by their sender's puppet and recorded
in the message map, so remote replies, edits, reactions and redactions find their Matrix event.

Cost of a remote message: ONE request in steady state (the send); a puppet new to a public room
adds register + profile + join, in a private room also the bot's invite.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appservice.api import ReqCreateRoom
from appservice.bridge.connector import ChatInfo, RemoteMessage, RemoteUser
from appservice.bridge.messages import MessageRef
from appservice.errors import M_ROOM_IN_USE, HTTPError
from appservice.events import HTML_FORMAT, Event
from appservice.intent import Intent

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge
    from appservice.bridge.puppet import Puppet

__all__ = ["Portal", "message_content"]

log = logging.getLogger("appservice.bridge.portal")

MESSAGE = "m.room.message"
_REACTION_PART = "reaction|"


def message_content(message: RemoteMessage, reply_event_id: str | None) -> dict[str, Any]:
    """The Matrix content of a remote message, with an ``m.in_reply_to`` when it replies."""
    if message.content is not None:
        content = dict(message.content)
    elif message.html is not None:
        content = {
            "msgtype": message.msgtype,
            "body": message.text,
            "format": HTML_FORMAT,
            "formatted_body": message.html,
        }
    else:
        content = {"msgtype": message.msgtype, "body": message.text}
    if reply_event_id is not None:
        relates = dict(content.get("m.relates_to") or {})
        relates["m.in_reply_to"] = {"event_id": reply_event_id}
        content["m.relates_to"] = relates
    return content


def _txn_id(*parts: str) -> str:
    """A stable txnId for one remote action, so a resend (even after a restart) is not doubled."""
    return "br" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:30]


@dataclass(slots=True, eq=False)
class Portal:
    """A remote chat (``remote_id``, ``receiver``) and its Matrix room (``room_id``, once made)."""

    remote_id: str
    receiver: str = ""
    room_id: str | None = None
    name: str | None = None
    topic: str | None = None
    avatar_url: str | None = None
    public: bool = False
    direct: bool = False
    _bridge: Bridge | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(remote_id, receiver)``, the portal's identity."""
        return (self.remote_id, self.receiver)

    @property
    def bridge(self) -> Bridge:
        """The bridge this portal belongs to."""
        if self._bridge is None:
            raise RuntimeError(f"portal {self.remote_id} is not attached to a bridge")
        return self._bridge

    def __str__(self) -> str:
        who = f" for {self.receiver}" if self.receiver else ""
        return f"portal {self.remote_id}{who} ({self.room_id or 'no room yet'})"

    # --- the room -----------------------------------------------------------------------------

    async def ensure_room(self, info: ChatInfo | None = None, *, invite: Sequence[str] = ()) -> str:
        """The portal's room ID, creating the room first when there is none.

        ``info`` describes the chat; when None it is looked up from the connector (when it
        ``SupportsChatLookup``), else the remote ID is used as the room name. ``invite`` are
        more users to invite in the creation request (puppets must be registered already).
        """
        if self.room_id is not None:
            return self.room_id
        bridge = self.bridge
        async with bridge.portals.locks.hold(*self.key):
            if self.room_id is None:
                if info is None:
                    info = await bridge.chat_info(self.remote_id)
                await self._create_room(info, invite)
        assert self.room_id is not None
        return self.room_id

    async def _create_room(self, info: ChatInfo, extra_invite: Sequence[str]) -> None:
        bridge = self.bridge
        bot = bridge.bot
        members = [await bridge.puppets.get(m.id) for m in info.members]
        for puppet in members:
            if puppet is not None:  # invited as the room is made, so registered first
                await puppet.intent.ensure_registered()
        invite = [*info.invite, *extra_invite]
        if self.receiver.startswith("@"):
            invite.append(self.receiver)
        invite += [p.user_id for p in members if p is not None]
        invite = list(dict.fromkeys(u for u in invite if u != bot.user_id))
        alias = bridge.portals.alias_localpart(self.remote_id) if not self.receiver else None
        initial_state = []
        if info.avatar_url:
            initial_state.append(
                Event("m.room.avatar", content={"url": info.avatar_url}, state_key="")
            )
        req = ReqCreateRoom(
            visibility="private",
            room_alias_name=alias,
            name=info.name if info.name is not None else self.remote_id,
            topic=info.topic,
            invite=invite or None,
            preset="public_chat" if info.public else "private_chat",
            is_direct=True if info.direct else None,
            initial_state=initial_state or None,
        )
        try:
            room_id = (await bot.client.create_room(req)).room_id
        except HTTPError as err:
            code = err.wrapped_error.errcode if err.wrapped_error is not None else None
            if alias is None or code != M_ROOM_IN_USE:
                raise
            log.warning("portal %s: alias #%s is taken; creating the room without it",
                        self.remote_id, alias)  # fmt: skip
            req.room_alias_name = None
            room_id = (await bot.client.create_room(req)).room_id
        state = bridge.state
        await state.set_membership(room_id, bot.user_id, "join")
        for user_id in invite:
            await state.set_membership(room_id, user_id, "invite")
        self.room_id = room_id
        self.name, self.topic, self.avatar_url = req.name, info.topic, info.avatar_url
        self.public, self.direct = info.public, info.direct
        await bridge.portals.save(self)
        log.info("%s: room created (%s, %d invited)", self,
                 "public" if info.public else "private", len(invite))  # fmt: skip
        for member, puppet in zip(info.members, members, strict=True):
            if puppet is not None:
                await puppet.update_info(member.displayname, member.avatar_url)
                await puppet.intent.ensure_joined(room_id)

    async def update_info(self, *, name: str | None = None, topic: str | None = None) -> bool:
        """Set the room's name/topic where they changed (``None``: leave as is); whether any was
        sent. Before the room exists only the row is updated."""
        changes: dict[str, str] = {}
        if name is not None and name != self.name:
            changes["m.room.name"] = name
        if topic is not None and topic != self.topic:
            changes["m.room.topic"] = topic
        if not changes:
            return False
        if self.room_id is not None:
            for event_type, value in changes.items():
                key = "name" if event_type == "m.room.name" else "topic"
                await self.bridge.bot.send_state(self.room_id, event_type, "", {key: value})
        self.name = name if name is not None else self.name
        self.topic = topic if topic is not None else self.topic
        await self.bridge.portals.save(self)
        return True

    async def _ready(self, puppet: Puppet, room_id: str) -> Intent:
        """The puppet's intent, after the bot invited it when the room needs that."""
        intent = puppet.intent
        if not self.public:
            membership = await self.bridge.state.membership(room_id, puppet.user_id)
            if membership not in ("join", "invite"):
                await intent.ensure_registered()
                await self.bridge.bot.invite(room_id, puppet.user_id)
        return intent

    # --- remote -> Matrix ---------------------------------------------------------------------

    async def handle_remote_message(self, message: RemoteMessage) -> str:
        """Bridge a remote message into the room (made first when needed); its event ID.

        A remote ID already in the message map is not sent again (its event ID is returned).
        """
        if not isinstance(message, RemoteMessage):
            raise TypeError(
                f"handle_remote_message: expected a RemoteMessage, got {type(message).__name__}"
            )
        bridge = self.bridge
        known = await bridge.messages.by_remote(self.remote_id, self.receiver, message.id)
        if known is not None:
            log.debug("%s: remote message %s already bridged as %s", self, message.id,
                      known.event_id)  # fmt: skip
            return known.event_id
        puppet = await self._puppet(message.sender)
        room_id = self.room_id
        if room_id is None:  # the sender is invited as the room is made: no invite request later
            await puppet.intent.ensure_registered()
            room_id = await self.ensure_room(invite=(puppet.user_id,))
        reply_event = None
        if message.reply_to is not None:
            target = await bridge.messages.by_remote(
                self.remote_id, self.receiver, message.reply_to
            )
            reply_event = target.event_id if target is not None else None
        intent = await self._ready(puppet, room_id)
        event_id = await intent.send_message_event(
            room_id,
            MESSAGE,
            message_content(message, reply_event),
            timestamp=message.timestamp,
            txn_id=_txn_id("msg", *self.key, message.id),
        )
        await bridge.messages.add(
            MessageRef(
                self.remote_id, self.receiver, message.id, event_id, room_id, sender=puppet.user_id
            )
        )
        log.debug("%s: remote message %s from %s -> %s", self, message.id, puppet.user_id,
                  event_id)  # fmt: skip
        return event_id

    async def handle_remote_edit(self, target_id: str, message: RemoteMessage) -> str | None:
        """Edit the Matrix event of remote message ``target_id`` to ``message`` (sent by its
        sender's puppet); the edit's event ID, or None when the target was never bridged."""
        target = await self.bridge.messages.by_remote(self.remote_id, self.receiver, target_id)
        if target is None:
            log.info("%s: edit of unknown remote message %s dropped", self, target_id)
            return None
        puppet = await self._puppet(message.sender)
        intent = await self._ready(puppet, target.room_id)
        new = message_content(message, None)
        content: dict[str, Any] = {**new, "body": f"* {new.get('body', '')}"}
        if "formatted_body" in new:
            content["formatted_body"] = f"* {new['formatted_body']}"
        content["m.new_content"] = new
        content["m.relates_to"] = {"rel_type": "m.replace", "event_id": target.event_id}
        txn = _txn_id("edit", *self.key, target_id, message.id)
        return await intent.send_message_event(target.room_id, MESSAGE, content, txn_id=txn)

    async def handle_remote_redaction(
        self, target_id: str, sender: RemoteUser | None = None
    ) -> list[str]:
        """Redact every Matrix event of remote message ``target_id`` (as ``sender``'s puppet,
        or the bot when None) and forget them; the redacted event IDs."""
        refs = await self.bridge.messages.parts(self.remote_id, self.receiver, target_id)
        refs = [r for r in refs if not r.part.startswith(_REACTION_PART)]
        intent = self.bridge.bot if sender is None else (await self._puppet(sender)).intent
        done = []
        for ref in refs:
            await intent.redact(ref.room_id, ref.event_id)
            await self.bridge.messages.delete_event(ref.event_id)
            done.append(ref.event_id)
        if not refs:
            log.info("%s: redaction of unknown remote message %s dropped", self, target_id)
        return done

    async def handle_remote_reaction(
        self, sender: RemoteUser, target_id: str, key: str
    ) -> str | None:
        """React to remote message ``target_id`` as ``sender``'s puppet; the reaction's event ID
        (recorded, so ``handle_remote_unreaction`` can remove it), or None when unknown."""
        target = await self.bridge.messages.by_remote(self.remote_id, self.receiver, target_id)
        if target is None:
            return None
        part = f"{_REACTION_PART}{sender.id}|{key}"
        known = await self.bridge.messages.by_remote(self.remote_id, self.receiver, target_id, part)
        if known is not None:
            return known.event_id
        puppet = await self._puppet(sender)
        intent = await self._ready(puppet, target.room_id)
        txn = _txn_id("react", *self.key, target_id, sender.id, key)
        event_id = await intent.send_reaction(target.room_id, target.event_id, key, txn_id=txn)
        await self.bridge.messages.add(
            MessageRef(
                self.remote_id,
                self.receiver,
                target_id,
                event_id,
                target.room_id,
                part,
                puppet.user_id,
            )
        )
        return event_id

    async def handle_remote_unreaction(self, sender: RemoteUser, target_id: str, key: str) -> bool:
        """Remove ``sender``'s reaction ``key`` from remote message ``target_id``; whether
        there was one."""
        part = f"{_REACTION_PART}{sender.id}|{key}"
        ref = await self.bridge.messages.by_remote(self.remote_id, self.receiver, target_id, part)
        if ref is None:
            return False
        puppet = await self._puppet(sender)
        await puppet.intent.redact(ref.room_id, ref.event_id)
        await self.bridge.messages.delete_event(ref.event_id)
        return True

    async def _puppet(self, sender: RemoteUser) -> Puppet:
        puppet = await self.bridge.puppets.get(sender.id)
        assert puppet is not None
        await puppet.update_info(sender.displayname, sender.avatar_url)
        return puppet

    # --- persistence --------------------------------------------------------------------------

    def extra(self) -> Mapping[str, Any]:
        """What the row's ``extra`` JSON holds."""
        return {"public": self.public, "direct": self.direct}
