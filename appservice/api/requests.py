"""Typed client-server API request bodies (``Req*``), named as in gomatrix, fields in snake_case.

``to_dict`` gives the JSON body with unset optional fields left out (never sent as ``null``);
``from_dict`` raises ``ValueError`` naming the field on a wrong type or missing required key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from appservice._fields import (
    as_object,
    get_bool,
    get_list,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    opt_str_list,
    put,
    req_str,
)
from appservice.events import Event

__all__ = [
    "Identifier",
    "PhoneIdentifier",
    "ReqBanUser",
    "ReqCreateRoom",
    "ReqCreateRoomAlias",
    "ReqInvite3PID",
    "ReqInviteUser",
    "ReqKickUser",
    "ReqLogin",
    "ReqRedact",
    "ReqRegister",
    "ReqTyping",
    "ReqUnbanUser",
    "ThirdpartyIdentifier",
    "UserIdentifier",
    "identifier_from_dict",
]


@dataclass
class ReqRegister:
    """Body of ``POST /register``.

    Appservices register puppets with ``type="m.login.application_service"`` and
    ``inhibit_login=True`` (no device or token is created for the puppet).
    """

    username: str | None = None
    bind_email: bool | None = None
    password: str | None = field(default=None, repr=False)
    device_id: str | None = None
    initial_device_display_name: str | None = None
    auth: dict[str, Any] | None = None
    inhibit_login: bool | None = None
    type: str | None = None
    refresh_token: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqRegister") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            username=opt_str(d, "username", where),
            bind_email=opt_bool(d, "bind_email", where),
            password=opt_str(d, "password", where),
            device_id=opt_str(d, "device_id", where),
            initial_device_display_name=opt_str(d, "initial_device_display_name", where),
            auth=opt_object(d, "auth", where),
            inhibit_login=opt_bool(d, "inhibit_login", where),
            type=opt_str(d, "type", where),
            refresh_token=opt_bool(d, "refresh_token", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "username", self.username)
        put(out, "bind_email", self.bind_email)
        put(out, "password", self.password)
        put(out, "device_id", self.device_id)
        put(out, "initial_device_display_name", self.initial_device_display_name)
        put(out, "auth", None if self.auth is None else dict(self.auth))
        put(out, "inhibit_login", self.inhibit_login)
        put(out, "type", self.type)
        put(out, "refresh_token", self.refresh_token)
        return out


@dataclass
class UserIdentifier:
    """Login identifier ``m.id.user``: a user ID or localpart."""

    type: ClassVar[str] = "m.id.user"
    user: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"type": self.type, "user": self.user}


@dataclass
class ThirdpartyIdentifier:
    """Login identifier ``m.id.thirdparty``: a third-party ID such as an email address."""

    type: ClassVar[str] = "m.id.thirdparty"
    medium: str
    address: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"type": self.type, "medium": self.medium, "address": self.address}


@dataclass
class PhoneIdentifier:
    """Login identifier ``m.id.phone``: a phone number and its country code."""

    type: ClassVar[str] = "m.id.phone"
    country: str
    phone: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"type": self.type, "country": self.country, "phone": self.phone}


Identifier = UserIdentifier | ThirdpartyIdentifier | PhoneIdentifier


def identifier_from_dict(d: Mapping[str, Any], *, where: str = "identifier") -> Identifier:
    """Parse a login identifier by its ``type``; ``ValueError`` on an unknown type."""
    d = as_object(d, where)
    kind = req_str(d, "type", where)
    if kind == UserIdentifier.type:
        return UserIdentifier(req_str(d, "user", where))
    if kind == ThirdpartyIdentifier.type:
        return ThirdpartyIdentifier(req_str(d, "medium", where), req_str(d, "address", where))
    if kind == PhoneIdentifier.type:
        return PhoneIdentifier(req_str(d, "country", where), req_str(d, "phone", where))
    raise ValueError(f"{where}.type: unknown identifier type {kind!r}")


@dataclass
class ReqLogin:
    """Body of ``POST /login`` (``m.login.password``, ``m.login.token``, appservice login...)."""

    type: str
    identifier: Identifier | None = None
    password: str | None = field(default=None, repr=False)
    medium: str | None = None
    user: str | None = None
    address: str | None = None
    token: str | None = field(default=None, repr=False)
    device_id: str | None = None
    initial_device_display_name: str | None = None
    refresh_token: bool | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqLogin") -> Self:
        """Parse from JSON; ``type`` is required."""
        d = as_object(d, where)
        ident = opt_object(d, "identifier", where)
        return cls(
            type=req_str(d, "type", where),
            identifier=None
            if ident is None
            else identifier_from_dict(ident, where=f"{where}.identifier"),
            password=opt_str(d, "password", where),
            medium=opt_str(d, "medium", where),
            user=opt_str(d, "user", where),
            address=opt_str(d, "address", where),
            token=opt_str(d, "token", where),
            device_id=opt_str(d, "device_id", where),
            initial_device_display_name=opt_str(d, "initial_device_display_name", where),
            refresh_token=opt_bool(d, "refresh_token", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        out: dict[str, Any] = {"type": self.type}
        if self.identifier is not None:
            out["identifier"] = self.identifier.to_dict()
        put(out, "password", self.password)
        put(out, "medium", self.medium)
        put(out, "user", self.user)
        put(out, "address", self.address)
        put(out, "token", self.token)
        put(out, "device_id", self.device_id)
        put(out, "initial_device_display_name", self.initial_device_display_name)
        put(out, "refresh_token", self.refresh_token)
        return out


@dataclass
class ReqInvite3PID:
    """A third-party invite (``POST /rooms/{roomId}/invite`` by 3PID, ``createRoom``)."""

    id_server: str
    medium: str
    address: str
    id_access_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqInvite3PID") -> Self:
        """Parse from JSON; ``id_server``, ``medium`` and ``address`` are required."""
        d = as_object(d, where)
        return cls(
            id_server=req_str(d, "id_server", where),
            medium=req_str(d, "medium", where),
            address=req_str(d, "address", where),
            id_access_token=opt_str(d, "id_access_token", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        out: dict[str, Any] = {
            "id_server": self.id_server,
            "medium": self.medium,
            "address": self.address,
        }
        put(out, "id_access_token", self.id_access_token)
        return out


def _state_event_dict(event: Event) -> dict[str, Any]:
    return {"type": event.type, "state_key": event.state_key or "", "content": dict(event.content)}


@dataclass
class ReqCreateRoom:
    """Body of ``POST /createRoom``; ``initial_state`` events send only type/state_key/content."""

    visibility: str | None = None
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] | None = None
    invite_3pid: list[ReqInvite3PID] | None = None
    creation_content: dict[str, Any] | None = None
    initial_state: list[Event] | None = None
    preset: str | None = None
    is_direct: bool | None = None
    room_version: str | None = None
    power_level_content_override: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqCreateRoom") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        invite_3pid = None
        if d.get("invite_3pid") is not None:
            invite_3pid = [
                ReqInvite3PID.from_dict(x, where=f"{where}.invite_3pid[{i}]")
                for i, x in enumerate(get_list(d, "invite_3pid", where))
            ]
        initial_state = None
        if d.get("initial_state") is not None:
            initial_state = [
                Event.from_dict(x, where=f"{where}.initial_state[{i}]")
                for i, x in enumerate(get_list(d, "initial_state", where))
            ]
        return cls(
            visibility=opt_str(d, "visibility", where),
            room_alias_name=opt_str(d, "room_alias_name", where),
            name=opt_str(d, "name", where),
            topic=opt_str(d, "topic", where),
            invite=opt_str_list(d, "invite", where),
            invite_3pid=invite_3pid,
            creation_content=opt_object(d, "creation_content", where),
            initial_state=initial_state,
            preset=opt_str(d, "preset", where),
            is_direct=opt_bool(d, "is_direct", where),
            room_version=opt_str(d, "room_version", where),
            power_level_content_override=opt_object(d, "power_level_content_override", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        out: dict[str, Any] = {}
        put(out, "visibility", self.visibility)
        put(out, "room_alias_name", self.room_alias_name)
        put(out, "name", self.name)
        put(out, "topic", self.topic)
        put(out, "invite", None if self.invite is None else list(self.invite))
        if self.invite_3pid is not None:
            out["invite_3pid"] = [x.to_dict() for x in self.invite_3pid]
        put(out, "creation_content", self.creation_content)
        if self.initial_state is not None:
            out["initial_state"] = [_state_event_dict(e) for e in self.initial_state]
        put(out, "preset", self.preset)
        put(out, "is_direct", self.is_direct)
        put(out, "room_version", self.room_version)
        put(out, "power_level_content_override", self.power_level_content_override)
        return out


@dataclass
class ReqRedact:
    """Body of ``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``."""

    reason: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqRedact") -> Self:
        """Parse from JSON; ``ValueError`` on a non-string reason."""
        return cls(opt_str(as_object(d, where), "reason", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON body; ``{}`` without a reason."""
        out: dict[str, Any] = {}
        put(out, "reason", self.reason)
        return out


@dataclass
class _ReqMember:
    """Shared shape of the membership requests: a target ``user_id`` and optional ``reason``."""

    user_id: str
    reason: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "") -> Self:
        """Parse from JSON; ``user_id`` is required."""
        where = where or cls.__name__
        d = as_object(d, where)
        return cls(req_str(d, "user_id", where), opt_str(d, "reason", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        out: dict[str, Any] = {"user_id": self.user_id}
        put(out, "reason", self.reason)
        return out


@dataclass
class ReqInviteUser(_ReqMember):
    """Body of ``POST /rooms/{roomId}/invite``."""


@dataclass
class ReqKickUser(_ReqMember):
    """Body of ``POST /rooms/{roomId}/kick``."""


@dataclass
class ReqBanUser(_ReqMember):
    """Body of ``POST /rooms/{roomId}/ban``."""


@dataclass
class ReqUnbanUser(_ReqMember):
    """Body of ``POST /rooms/{roomId}/unban``."""


@dataclass
class ReqTyping:
    """Body of ``PUT /rooms/{roomId}/typing/{userId}``; ``timeout`` in milliseconds."""

    typing: bool
    timeout: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqTyping") -> Self:
        """Parse from JSON; ``typing`` is required."""
        d = as_object(d, where)
        if d.get("typing") is None:
            raise ValueError(f"{where}.typing: missing required key")
        return cls(get_bool(d, "typing", where), opt_int(d, "timeout", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON body; no ``timeout`` key when unset."""
        out: dict[str, Any] = {"typing": self.typing}
        put(out, "timeout", self.timeout)
        return out


@dataclass
class ReqCreateRoomAlias:
    """Body of ``PUT /directory/room/{roomAlias}``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqCreateRoomAlias") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return cls(req_str(as_object(d, where), "room_id", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON body."""
        return {"room_id": self.room_id}
