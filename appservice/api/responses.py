"""Typed client-server API responses (``Resp*``), named as in gomatrix, fields in snake_case.

``from_dict`` raises ``ValueError`` naming the field on a wrong type or a missing required key;
``to_dict`` leaves unset optional fields out. The ``/sync`` types live in ``sync_types`` and the
account/auth ones in ``account_responses``; all are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from appservice._fields import as_object
from appservice.api.account_responses import (
    Device,
    DiscoveryInformation,
    RespEmailRequestToken,
    RespGetDevices,
    RespGetThreePID,
    RespLogin,
    RespRegister,
    RespUserInteractive,
    RespWhoAmI,
    RespWhoami,
    ServerInformation,
    ThreePID,
    UIAFlow,
)
from appservice.api.sync_types import (
    EventList,
    RespSync,
    SyncInvitedRoom,
    SyncJoinedRoom,
    SyncKnockedRoom,
    SyncLeftRoom,
    SyncRooms,
    SyncTimeline,
)
from appservice.codec import decode, encode, wire
from appservice.events import Event

__all__ = [
    "Device",
    "DiscoveryInformation",
    "EventList",
    "JoinedMember",
    "PublicRoom",
    "RespAccountData",
    "RespAliases",
    "RespAppservicePing",
    "RespBanUser",
    "RespCreateFilter",
    "RespCreateRoom",
    "RespEmailRequestToken",
    "RespForgetRoom",
    "RespGetDevices",
    "RespGetThreePID",
    "RespInviteUser",
    "RespJoinRoom",
    "RespJoinedMembers",
    "RespJoinedRooms",
    "RespKickUser",
    "RespLeaveRoom",
    "RespLogin",
    "RespLogout",
    "RespLogoutAll",
    "RespMediaUpload",
    "RespMessages",
    "RespPublicRooms",
    "RespRegister",
    "RespResolveAlias",
    "RespRoomAlias",
    "RespSendEvent",
    "RespSync",
    "RespTurnServer",
    "RespTyping",
    "RespUnbanUser",
    "RespUserDisplayName",
    "RespUserInteractive",
    "RespUserStatus",
    "RespVersions",
    "RespWhoAmI",
    "RespWhoami",
    "ServerInformation",
    "SyncInvitedRoom",
    "SyncJoinedRoom",
    "SyncKnockedRoom",
    "SyncLeftRoom",
    "SyncRooms",
    "SyncTimeline",
    "ThreePID",
    "UIAFlow",
]

RespAccountData = dict[str, Any]
"""An account data object (``GET /user/{userId}/account_data/{type}``) is returned as is."""


class _EmptyResponse:
    """Shared parsing for endpoints that answer ``{}``."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "") -> Self:
        """Check the body is a JSON object (its keys are not used)."""
        as_object(d, where or cls.__name__)
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """Always ``{}``."""
        return {}


@dataclass
class RespLeaveRoom(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/leave``."""


@dataclass
class RespForgetRoom(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/forget``."""


@dataclass
class RespInviteUser(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/invite``."""


@dataclass
class RespKickUser(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/kick``."""


@dataclass
class RespBanUser(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/ban``."""


@dataclass
class RespUnbanUser(_EmptyResponse):
    """Response of ``POST /rooms/{roomId}/unban``."""


@dataclass
class RespTyping(_EmptyResponse):
    """Response of ``PUT /rooms/{roomId}/typing/{userId}``."""


@dataclass
class RespLogout(_EmptyResponse):
    """Response of ``POST /logout``."""


@dataclass
class RespLogoutAll(_EmptyResponse):
    """Response of ``POST /logout/all``."""


@dataclass
class RespCreateFilter:
    """Response of ``POST /user/{userId}/filter``: the new ``filter_id``."""

    filter_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespCreateFilter") -> Self:
        """Parse from JSON; ``filter_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespVersions:
    """Response of ``GET /_matrix/client/versions``: spec versions and unstable features."""

    versions: list[str] = field(default_factory=list)
    unstable_features: dict[str, bool] = field(default_factory=dict, metadata=wire(omit_empty=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespVersions") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; no ``unstable_features`` key when there are none."""
        return encode(self)

    def supports(self, version: str) -> bool:
        """True when the server lists ``version`` (e.g. ``"v1.11"``)."""
        return version in self.versions


@dataclass
class PublicRoom:
    """One entry of the public room directory."""

    room_id: str
    num_joined_members: int = 0
    world_readable: bool = False
    guest_can_join: bool = False
    canonical_alias: str | None = None
    name: str | None = None
    topic: str | None = None
    avatar_url: str | None = None
    join_rule: str | None = None
    room_type: str | None = None
    aliases: list[str] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "PublicRoom") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespPublicRooms:
    """Response of ``GET``/``POST /publicRooms``: one page of the room directory."""

    chunk: list[PublicRoom] = field(default_factory=list)
    next_batch: str | None = None
    prev_batch: str | None = None
    total_room_count_estimate: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespPublicRooms") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespJoinRoom:
    """Response of ``POST /join/{roomIdOrAlias}``: the joined ``room_id``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinRoom") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespCreateRoom:
    """Response of ``POST /createRoom``: the new ``room_id``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespCreateRoom") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespJoinedRooms:
    """Response of ``GET /joined_rooms``."""

    joined_rooms: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinedRooms") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class JoinedMember:
    """A joined member's profile as seen in the room (either part may be unset)."""

    display_name: str | None = None
    avatar_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "JoinedMember") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespJoinedMembers:
    """Response of ``GET /rooms/{roomId}/joined_members``: user ID -> ``JoinedMember``."""

    joined: dict[str, JoinedMember] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinedMembers") -> Self:
        """Parse from JSON; ``ValueError`` naming the member on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespMessages:
    """Response of ``GET /rooms/{roomId}/messages``; ``end`` is ``None`` at the end of history."""

    start: str = ""
    end: str | None = None
    chunk: list[Event] = field(default_factory=list)
    state: list[Event] = field(default_factory=list, metadata=wire(omit_empty=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespMessages") -> Self:
        """Parse from JSON; ``ValueError`` naming the field or event on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespSendEvent:
    """Response of ``PUT /rooms/{roomId}/send|state/...``: the new ``event_id``."""

    event_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespSendEvent") -> Self:
        """Parse from JSON; ``event_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespMediaUpload:
    """Response of ``POST /_matrix/media/v3/upload``: the ``mxc://`` ``content_uri``."""

    content_uri: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespMediaUpload") -> Self:
        """Parse from JSON; ``content_uri`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespUserDisplayName:
    """Response of ``GET /profile/{userId}/displayname`` (JSON key ``displayname``)."""

    display_name: str | None = field(default=None, metadata=wire("displayname"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespUserDisplayName") -> Self:
        """Parse from JSON; ``ValueError`` on a non-string ``displayname``."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; no key when unset."""
        return encode(self)


@dataclass
class RespUserStatus:
    """Response of ``GET /presence/{userId}/status``."""

    presence: str
    status_msg: str | None = None
    last_active_ago: int | None = None
    currently_active: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespUserStatus") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespTurnServer:
    """Response of ``GET /voip/turnServer``: TURN credentials, lifetime (s) and URIs."""

    username: str = ""
    password: str = field(default="", repr=False)
    ttl: int = 0
    uris: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespTurnServer") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespResolveAlias:
    """Response of ``GET /directory/room/{roomAlias}``: room ID and servers to join via."""

    room_id: str
    servers: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespResolveAlias") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


RespRoomAlias = RespResolveAlias


@dataclass
class RespAliases:
    """Response of ``GET /rooms/{roomId}/aliases``."""

    aliases: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespAliases") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespAppservicePing:
    """Response of ``POST /_matrix/client/v1/appservice/{appserviceId}/ping``."""

    duration_ms: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespAppservicePing") -> Self:
        """Parse from JSON; ``duration_ms`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)
