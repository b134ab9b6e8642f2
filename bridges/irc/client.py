"""The pydle client the bridge uses, and the typed events it hands to the bridge.

pydle 1.2 runs each received line's handler as its own task; any real ``await`` before our
callback would let later lines overtake earlier ones. So every callback here turns what
happened into an ``IrcEvent`` and hands it to ``sink`` synchronously, and the bridge consumes
events in order from its own queue. The workarounds the tests in tests/irc/test_pydle.py pin
down: no WHOIS per new or renamed user, no pydle reconnect (``Connection`` reconnects), a reset
connection noticed as lost, NAMES completion from the raw 366, and our own lines never come back
as events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydle  # type: ignore[import-untyped, unused-ignore]

from bridges.irc.nicks import DEFAULT_CASEMAPPING, irc_casefold

__all__ = [
    "Disconnected",
    "IrcClient",
    "IrcEvent",
    "Joined",
    "Kicked",
    "Message",
    "NickChanged",
    "Parted",
    "Quit",
    "Registered",
    "SelfJoined",
    "TopicChanged",
]

log = logging.getLogger("bridges.irc.client")


@dataclass(frozen=True, slots=True)
class Message:
    """A PRIVMSG (``kind`` ``text``), CTCP ACTION (``action``) or NOTICE (``notice``)."""

    target: str
    nick: str
    text: str
    kind: str


@dataclass(frozen=True, slots=True)
class Joined:
    """Someone else joined ``channel``."""

    channel: str
    nick: str


@dataclass(frozen=True, slots=True)
class Parted:
    """Someone else left ``channel``."""

    channel: str
    nick: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Kicked:
    """``nick`` was kicked from ``channel`` by ``by`` (``own`` when it was us)."""

    channel: str
    nick: str
    by: str
    reason: str | None
    own: bool


@dataclass(frozen=True, slots=True)
class Quit:
    """Someone quit the network; ``channels`` are the ones we shared with them."""

    nick: str
    reason: str | None
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NickChanged:
    """Someone else changed nick."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TopicChanged:
    """Someone else set ``channel``'s topic."""

    channel: str
    topic: str
    by: str


@dataclass(frozen=True, slots=True)
class SelfJoined:
    """We are in ``channel`` and its NAMES list is complete (``nicks``, ours left out)."""

    channel: str
    topic: str | None
    nicks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Registered:
    """The connection is registered (after the MOTD) as ``nick``."""

    nick: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection went away; ``expected`` when we closed it."""

    expected: bool


IrcEvent = (
    Message
    | Joined
    | Parted
    | Kicked
    | Quit
    | NickChanged
    | TopicChanged
    | SelfJoined
    | Registered
    | Disconnected
)


class IrcClient(pydle.Client):  # type: ignore[misc, unused-ignore]
    """pydle's client with the bridge's workarounds; everything it sees goes to ``sink``."""

    RECONNECT_ON_ERROR = False

    def __init__(
        self,
        nick: str,
        sink: Callable[[IrcEvent], None],
        *,
        username: str,
        realname: str,
        fallback_nicks: list[str] | None = None,
    ) -> None:
        super().__init__(
            nick, fallback_nicknames=fallback_nicks, username=username, realname=realname
        )
        self.sink = sink

    # --- workarounds --------------------------------------------------------------------------

    async def _create_user(self, nickname: str) -> None:
        pydle.features.rfc1459.RFC1459Support._create_user(self, nickname)

    async def _rename_user(self, user: str, new: str) -> None:
        await pydle.features.rfc1459.RFC1459Support._rename_user(self, user, new)

    @property
    def casemapping(self) -> str:
        """The server's CASEMAPPING, or the RFC default when we do not know it."""
        mapping = getattr(self, "_case_mapping", DEFAULT_CASEMAPPING)
        return mapping if isinstance(mapping, str) else DEFAULT_CASEMAPPING

    def fold(self, name: str) -> str:
        """``name`` casefolded the way this server compares nicks and channels."""
        try:
            return irc_casefold(name, self.casemapping)
        except ValueError:
            return irc_casefold(name)

    def is_me(self, nick: str) -> bool:
        """Whether ``nick`` is our own nick on this connection."""
        return bool(self.nickname) and self.fold(nick) == self.fold(str(self.nickname))

    def users_of(self, channel: str) -> tuple[str, ...]:
        """The nicks pydle knows in ``channel``, ours left out."""
        info = self.channels.get(channel)
        users: set[str] = set(info["users"]) if info else set()
        return tuple(sorted(u for u in users if not self.is_me(u)))

    async def handle_forever(self) -> None:
        """pydle's read loop, where a reset connection is lost like a closed one: pydle 1.2 lets
        the error end the loop's task unseen, and the client would think itself connected for
        good and never reconnect."""
        try:
            await super().handle_forever()
        except OSError as err:
            log.warning("IRC connection as %s lost: %s", self.nickname, err or type(err).__name__)
            if self.connected:
                await self.disconnect(expected=False)

    # --- callbacks -> events ------------------------------------------------------------------

    async def on_connect(self) -> None:
        await super().on_connect()
        self.sink(Registered(str(self.nickname)))

    async def on_disconnect(self, expected: bool) -> None:
        self.sink(Disconnected(expected))

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        if not self.is_me(by):
            self.sink(Message(target, by, message, "text"))

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        if not self.is_me(by):
            self.sink(Message(target, by, message, "text"))

    async def on_channel_notice(self, target: str, by: str, message: str) -> None:
        if by and not self.is_me(by) and "." not in by:  # servers send notices too
            self.sink(Message(target, by, message, "notice"))

    async def on_ctcp_action(self, by: str, target: str, contents: str | None) -> None:
        if not self.is_me(by):
            self.sink(Message(target, by, contents or "", "action"))

    async def on_join(self, channel: str, user: str) -> None:
        if not self.is_me(user):
            self.sink(Joined(channel, user))

    async def on_part(self, channel: str, user: str, message: str | None = None) -> None:
        if not self.is_me(user):
            self.sink(Parted(channel, user, message))

    async def on_kick(self, channel: str, target: str, by: str, reason: str | None = None) -> None:
        self.sink(Kicked(channel, target, by, reason, self.is_me(target)))

    async def on_quit(self, user: str, message: str | None = None) -> None:
        if self.is_me(user):
            return
        shared = tuple(
            name for name, info in self.channels.items() if user in info.get("users", ())
        )
        self.sink(Quit(user, message, shared))

    async def on_nick_change(self, old: str, new: str) -> None:
        if not self.is_me(new) and old != "<unregistered>":
            self.sink(NickChanged(old, new))

    async def on_topic_change(self, channel: str, message: str, by: str) -> None:
        if not self.is_me(by):
            self.sink(TopicChanged(channel, message, by))

    async def on_raw_366(self, message: Any) -> None:
        """End of NAMES: after our own JOIN, the channel is ready and its members known."""
        channel = message.params[1]
        if self.in_channel(channel):
            topic = self.channels[channel].get("topic")
            self.sink(SelfJoined(channel, topic or None, self.users_of(channel)))
