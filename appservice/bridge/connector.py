"""The network connector: the one thing a bridge author writes, and what crosses its boundary.

``NetworkConnector`` is small and required: start, stop, and take a Matrix message to the remote
network. Everything else is an optional capability Protocol (edits, reactions, redactions,
typing, membership, room name/topic, chat lookup for alias queries). The bridge checks them with
``isinstance`` once at start, logs what the connector can do, and routes only those events: a
connector without ``SupportsEdits`` never sees an edit, not even as a new message.

The remote network talks back through the framework: ``bridge.portals.get(chat_id)`` and
``portal.handle_remote_message(RemoteMessage(...))`` (see ``appservice.bridge.portal``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from appservice.bridge.messages import MessageRef

if TYPE_CHECKING:
    from appservice.bridge.bridge import Bridge
    from appservice.bridge.portal import Portal
    from appservice.bridge.user import User

__all__ = [
    "Capabilities",
    "ChatInfo",
    "MatrixMessage",
    "NetworkConnector",
    "RemoteMessage",
    "RemoteUser",
    "SupportsChatLookup",
    "SupportsEdits",
    "SupportsMembership",
    "SupportsReactions",
    "SupportsRedactions",
    "SupportsRoomMeta",
    "SupportsTyping",
    "check_connector",
]

# --- what crosses the boundary ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteUser:
    """A user of the remote network; ``None`` profile fields mean "not known, leave as is"."""

    id: str
    displayname: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """What the bridge needs to create a portal room for a remote chat.

    ``public`` rooms can be joined by anyone who knows the room (or its alias) — puppets join
    with one request; in private rooms the bot invites each new puppet first (one more request).
    ``members`` are put in the room when it is created; ``invite`` are Matrix users to invite.
    """

    name: str | None = None
    topic: str | None = None
    avatar_url: str | None = None
    public: bool = False
    direct: bool = False
    members: tuple[RemoteUser, ...] = ()
    invite: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteMessage:
    """A message from the remote network, to be sent by its sender's puppet.

    ``html`` adds a formatted body; ``content`` (a full Matrix content, e.g. media with an
    ``mxc://`` URL) replaces what ``text``/``html``/``msgtype`` would build. ``reply_to`` is the
    remote ID of the message replied to; ``timestamp`` (ms) is kept on the Matrix event (backfill).
    """

    id: str
    sender: RemoteUser
    text: str = ""
    html: str | None = None
    msgtype: str = "m.text"
    reply_to: str | None = None
    timestamp: int | None = None
    content: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MatrixMessage:
    """A Matrix message for the remote network, with its reply target already resolved.

    ``reply_to`` is the message map entry of the replied-to event (``None`` when there is no
    reply or the target was never bridged). ``content`` is the raw event content.
    """

    event_id: str
    room_id: str
    sender: str
    msgtype: str
    body: str
    html: str | None = None
    reply_to: MessageRef | None = None
    timestamp: int = 0
    content: Mapping[str, Any] = field(default_factory=dict)


# --- the required protocol ------------------------------------------------------------------


@runtime_checkable
class NetworkConnector(Protocol):
    """What every connector implements: lifecycle, and Matrix messages out to the network."""

    async def start(self, bridge: Bridge) -> None:
        """Connect to the remote network; called once the bridge's store and server are up."""
        ...

    async def stop(self) -> None:
        """Disconnect; called first when the bridge stops."""
        ...

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str | Sequence[str] | None:
        """Send ``message`` to the portal's remote chat; return the remote message ID(s)
        (recorded in the message map so replies, edits and redactions can find it)."""
        ...


# --- optional capabilities -------------------------------------------------------------------


@runtime_checkable
class SupportsEdits(Protocol):
    """Matrix edits (``m.replace``) of bridged messages reach the remote network."""

    async def handle_matrix_edit(
        self, portal: Portal, sender: User, target: MessageRef, message: MatrixMessage
    ) -> None:
        """Replace the remote message ``target`` with ``message`` (the new content)."""
        ...


@runtime_checkable
class SupportsReactions(Protocol):
    """Matrix reactions (``m.annotation``) to bridged messages reach the remote network."""

    async def handle_matrix_reaction(
        self, portal: Portal, sender: User, target: MessageRef, key: str
    ) -> None:
        """React to the remote message ``target`` with ``key`` (usually an emoji)."""
        ...


@runtime_checkable
class SupportsRedactions(Protocol):
    """Matrix redactions of bridged messages reach the remote network."""

    async def handle_matrix_redaction(
        self, portal: Portal, sender: User, target: MessageRef
    ) -> None:
        """Delete the remote message ``target``."""
        ...


@runtime_checkable
class SupportsTyping(Protocol):
    """Matrix typing notifications in portals reach the remote network (needs ephemeral events)."""

    async def handle_matrix_typing(self, portal: Portal, sender: User, typing: bool) -> None:
        """Show or stop showing ``sender`` as typing in the remote chat."""
        ...


@runtime_checkable
class SupportsMembership(Protocol):
    """Real Matrix users joining or leaving portals reach the remote network."""

    async def handle_matrix_membership(self, portal: Portal, user: User, membership: str) -> None:
        """``membership`` is the user's new membership (``join``, ``leave``, ``ban``...)."""
        ...


@runtime_checkable
class SupportsRoomMeta(Protocol):
    """Portal room name and topic changes made on Matrix reach the remote network."""

    async def handle_matrix_room_name(self, portal: Portal, sender: User, name: str) -> None:
        """The room was renamed to ``name``."""
        ...

    async def handle_matrix_room_topic(self, portal: Portal, sender: User, topic: str) -> None:
        """The room's topic became ``topic``."""
        ...


@runtime_checkable
class SupportsChatLookup(Protocol):
    """Remote chats can be looked up, so portals are created on demand by alias and get names."""

    async def get_chat_info(self, remote_id: str) -> ChatInfo | None:
        """The chat's info, or ``None`` when no such chat exists on the remote network."""
        ...


# --- the check at start ----------------------------------------------------------------------

_REQUIRED = ("start", "stop", "handle_matrix_message")


def check_connector(connector: object) -> None:
    """TypeError naming what is missing when ``connector`` is not a ``NetworkConnector``."""
    missing = [name for name in _REQUIRED if not callable(getattr(connector, name, None))]
    if missing:
        raise TypeError(
            f"{type(connector).__name__} is not a NetworkConnector: it lacks "
            f"{', '.join(missing)} (required: {', '.join(_REQUIRED)})"
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Which optional capabilities a connector has, decided once by ``Capabilities.of``."""

    edits: bool = False
    reactions: bool = False
    redactions: bool = False
    typing: bool = False
    membership: bool = False
    room_meta: bool = False
    chat_lookup: bool = False

    @classmethod
    def of(cls, connector: object) -> Capabilities:
        """Check ``connector`` against each capability Protocol."""
        return cls(
            edits=isinstance(connector, SupportsEdits),
            reactions=isinstance(connector, SupportsReactions),
            redactions=isinstance(connector, SupportsRedactions),
            typing=isinstance(connector, SupportsTyping),
            membership=isinstance(connector, SupportsMembership),
            room_meta=isinstance(connector, SupportsRoomMeta),
            chat_lookup=isinstance(connector, SupportsChatLookup),
        )

    def names(self) -> list[str]:
        """The names of the capabilities present, for logs and the ``version`` command."""
        return [f.name for f in fields(self) if getattr(self, f.name)]
