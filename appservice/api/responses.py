"""Typed client-server API responses (``Resp*``), named as in gomatrix, fields in snake_case.

``from_dict`` raises ``ValueError`` naming the field on a wrong type or a missing required key;
``to_dict`` leaves unset optional fields out. The ``/sync`` types live in ``sync_types`` and the
account/auth ones in ``account_responses``; all are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from appservice._fields import (
    as_object,
    get_bool,
    get_int,
    get_list,
    get_object,
    get_str,
    get_str_list,
    object_items,
    opt_bool,
    opt_int,
    opt_str,
    put,
    req_str,
    type_name,
)
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


def _events(d: Mapping[str, Any], key: str, where: str) -> list[Event]:
    return [
        Event.from_dict(raw, where=f"{where}.{key}[{i}]")
        for i, raw in enumerate(get_list(d, key, where))
    ]


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
        d = as_object(d, where)
        return cls(req_str(d, "filter_id", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"filter_id": self.filter_id}


@dataclass
class RespVersions:
    """Response of ``GET /_matrix/client/versions``: spec versions and unstable features."""

    versions: list[str] = field(default_factory=list)
    unstable_features: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespVersions") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        features = get_object(d, "unstable_features", where)
        for name, enabled in features.items():
            if not isinstance(enabled, bool):
                raise ValueError(
                    f"{where}.unstable_features[{name}]: expected a boolean, "
                    f"got {type_name(enabled)}"
                )
        return cls(get_str_list(d, "versions", where), features)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; no ``unstable_features`` key when there are none."""
        out: dict[str, Any] = {"versions": list(self.versions)}
        if self.unstable_features:
            out["unstable_features"] = dict(self.unstable_features)
        return out

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
        d = as_object(d, where)
        aliases = get_str_list(d, "aliases", where) if "aliases" in d else None
        return cls(
            room_id=req_str(d, "room_id", where),
            num_joined_members=get_int(d, "num_joined_members", where),
            world_readable=get_bool(d, "world_readable", where),
            guest_can_join=get_bool(d, "guest_can_join", where),
            canonical_alias=opt_str(d, "canonical_alias", where),
            name=opt_str(d, "name", where),
            topic=opt_str(d, "topic", where),
            avatar_url=opt_str(d, "avatar_url", where),
            join_rule=opt_str(d, "join_rule", where),
            room_type=opt_str(d, "room_type", where),
            aliases=aliases,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {
            "room_id": self.room_id,
            "num_joined_members": self.num_joined_members,
            "world_readable": self.world_readable,
            "guest_can_join": self.guest_can_join,
        }
        put(out, "canonical_alias", self.canonical_alias)
        put(out, "name", self.name)
        put(out, "topic", self.topic)
        put(out, "avatar_url", self.avatar_url)
        put(out, "join_rule", self.join_rule)
        put(out, "room_type", self.room_type)
        put(out, "aliases", None if self.aliases is None else list(self.aliases))
        return out


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
        d = as_object(d, where)
        return cls(
            chunk=[PublicRoom.from_dict(r, where=w) for w, r in object_items(d, "chunk", where)],
            next_batch=opt_str(d, "next_batch", where),
            prev_batch=opt_str(d, "prev_batch", where),
            total_room_count_estimate=opt_int(d, "total_room_count_estimate", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"chunk": [r.to_dict() for r in self.chunk]}
        put(out, "next_batch", self.next_batch)
        put(out, "prev_batch", self.prev_batch)
        put(out, "total_room_count_estimate", self.total_room_count_estimate)
        return out


@dataclass
class RespJoinRoom:
    """Response of ``POST /join/{roomIdOrAlias}``: the joined ``room_id``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinRoom") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return cls(req_str(as_object(d, where), "room_id", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"room_id": self.room_id}


@dataclass
class RespCreateRoom:
    """Response of ``POST /createRoom``: the new ``room_id``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespCreateRoom") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return cls(req_str(as_object(d, where), "room_id", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"room_id": self.room_id}


@dataclass
class RespJoinedRooms:
    """Response of ``GET /joined_rooms``."""

    joined_rooms: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinedRooms") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return cls(get_str_list(as_object(d, where), "joined_rooms", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"joined_rooms": list(self.joined_rooms)}


@dataclass
class JoinedMember:
    """A joined member's profile as seen in the room (either part may be unset)."""

    display_name: str | None = None
    avatar_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "JoinedMember") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(opt_str(d, "display_name", where), opt_str(d, "avatar_url", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "display_name", self.display_name)
        put(out, "avatar_url", self.avatar_url)
        return out


@dataclass
class RespJoinedMembers:
    """Response of ``GET /rooms/{roomId}/joined_members``: user ID -> ``JoinedMember``."""

    joined: dict[str, JoinedMember] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespJoinedMembers") -> Self:
        """Parse from JSON; ``ValueError`` naming the member on a wrong type."""
        d = as_object(d, where)
        return cls(
            {
                user_id: JoinedMember.from_dict(raw, where=f"{where}.joined[{user_id}]")
                for user_id, raw in get_object(d, "joined", where).items()
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"joined": {user_id: m.to_dict() for user_id, m in self.joined.items()}}


@dataclass
class RespMessages:
    """Response of ``GET /rooms/{roomId}/messages``; ``end`` is ``None`` at the end of history."""

    start: str = ""
    end: str | None = None
    chunk: list[Event] = field(default_factory=list)
    state: list[Event] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespMessages") -> Self:
        """Parse from JSON; ``ValueError`` naming the field or event on a wrong type."""
        d = as_object(d, where)
        return cls(
            start=get_str(d, "start", where),
            end=opt_str(d, "end", where),
            chunk=_events(d, "chunk", where),
            state=_events(d, "state", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"start": self.start, "chunk": [e.to_dict() for e in self.chunk]}
        put(out, "end", self.end)
        if self.state:
            out["state"] = [e.to_dict() for e in self.state]
        return out


@dataclass
class RespSendEvent:
    """Response of ``PUT /rooms/{roomId}/send|state/...``: the new ``event_id``."""

    event_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespSendEvent") -> Self:
        """Parse from JSON; ``event_id`` is required."""
        return cls(req_str(as_object(d, where), "event_id", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"event_id": self.event_id}


@dataclass
class RespMediaUpload:
    """Response of ``POST /_matrix/media/v3/upload``: the ``mxc://`` ``content_uri``."""

    content_uri: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespMediaUpload") -> Self:
        """Parse from JSON; ``content_uri`` is required."""
        return cls(req_str(as_object(d, where), "content_uri", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"content_uri": self.content_uri}


@dataclass
class RespUserDisplayName:
    """Response of ``GET /profile/{userId}/displayname`` (JSON key ``displayname``)."""

    display_name: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespUserDisplayName") -> Self:
        """Parse from JSON; ``ValueError`` on a non-string ``displayname``."""
        return cls(opt_str(as_object(d, where), "displayname", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form; no key when unset."""
        out: dict[str, Any] = {}
        put(out, "displayname", self.display_name)
        return out


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
        d = as_object(d, where)
        return cls(
            presence=req_str(d, "presence", where),
            status_msg=opt_str(d, "status_msg", where),
            last_active_ago=opt_int(d, "last_active_ago", where),
            currently_active=opt_bool(d, "currently_active", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"presence": self.presence}
        put(out, "status_msg", self.status_msg)
        put(out, "last_active_ago", self.last_active_ago)
        put(out, "currently_active", self.currently_active)
        return out


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
        d = as_object(d, where)
        return cls(
            username=get_str(d, "username", where),
            password=get_str(d, "password", where),
            ttl=get_int(d, "ttl", where),
            uris=get_str_list(d, "uris", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "username": self.username,
            "password": self.password,
            "ttl": self.ttl,
            "uris": list(self.uris),
        }


@dataclass
class RespResolveAlias:
    """Response of ``GET /directory/room/{roomAlias}``: room ID and servers to join via."""

    room_id: str
    servers: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespResolveAlias") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        d = as_object(d, where)
        return cls(req_str(d, "room_id", where), get_str_list(d, "servers", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"room_id": self.room_id, "servers": list(self.servers)}


RespRoomAlias = RespResolveAlias


@dataclass
class RespAliases:
    """Response of ``GET /rooms/{roomId}/aliases``."""

    aliases: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespAliases") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return cls(get_str_list(as_object(d, where), "aliases", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"aliases": list(self.aliases)}


@dataclass
class RespAppservicePing:
    """Response of ``POST /_matrix/client/v1/appservice/{appserviceId}/ping``."""

    duration_ms: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespAppservicePing") -> Self:
        """Parse from JSON; ``duration_ms`` is required."""
        d = as_object(d, where)
        duration = opt_int(d, "duration_ms", where)
        if duration is None:
            raise ValueError(f"{where}.duration_ms: missing required key")
        return cls(duration)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"duration_ms": self.duration_ms}
