"""Typed client-server API request bodies (``Req*``), named as in gomatrix, fields in snake_case.

``to_dict`` gives the JSON body with unset optional fields left out (never sent as ``null``);
``from_dict`` raises ``ValueError`` naming the field on a wrong type or missing required key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from appservice._fields import as_object, req_str
from appservice.codec import decode, encode, wire
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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        return encode(self)


@dataclass
class UserIdentifier:
    """Login identifier ``m.id.user``: a user ID or localpart."""

    type: ClassVar[str] = "m.id.user"
    user: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the identifier ``type``."""
        return {"type": self.type, **encode(self)}


@dataclass
class ThirdpartyIdentifier:
    """Login identifier ``m.id.thirdparty``: a third-party ID such as an email address."""

    type: ClassVar[str] = "m.id.thirdparty"
    medium: str
    address: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the identifier ``type``."""
        return {"type": self.type, **encode(self)}


@dataclass
class PhoneIdentifier:
    """Login identifier ``m.id.phone``: a phone number and its country code."""

    type: ClassVar[str] = "m.id.phone"
    country: str
    phone: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the identifier ``type``."""
        return {"type": self.type, **encode(self)}


Identifier = UserIdentifier | ThirdpartyIdentifier | PhoneIdentifier
_IDENTIFIERS: tuple[type[Identifier], ...] = (UserIdentifier, ThirdpartyIdentifier, PhoneIdentifier)


def identifier_from_dict(d: Mapping[str, Any], *, where: str = "identifier") -> Identifier:
    """Parse a login identifier by its ``type``; ``ValueError`` on an unknown type."""
    d = as_object(d, where)
    kind = req_str(d, "type", where)
    for cls in _IDENTIFIERS:
        if kind == cls.type:
            return decode(cls, d, where)
    raise ValueError(f"{where}.type: unknown identifier type {kind!r}")


@dataclass
class ReqLogin:
    """Body of ``POST /login`` (``m.login.password``, ``m.login.token``, appservice login...)."""

    type: str
    identifier: Identifier | None = field(
        default=None, metadata=wire(decode=lambda raw, path: identifier_from_dict(raw, where=path))
    )
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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        return encode(self)


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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        return encode(self)


def _state_events(events: list[Event]) -> list[dict[str, Any]]:
    """``initial_state`` entries carry only type, state_key and content."""
    return [
        {"type": e.type, "state_key": e.state_key or "", "content": dict(e.content)} for e in events
    ]


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
    initial_state: list[Event] | None = field(default=None, metadata=wire(encode=_state_events))
    preset: str | None = None
    is_direct: bool | None = None
    room_version: str | None = None
    power_level_content_override: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqCreateRoom") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        return encode(self)


@dataclass
class ReqRedact:
    """Body of ``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``."""

    reason: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqRedact") -> Self:
        """Parse from JSON; ``ValueError`` on a non-string reason."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body; ``{}`` without a reason."""
        return encode(self)


@dataclass
class _ReqMember:
    """Shared shape of the membership requests: a target ``user_id`` and optional ``reason``."""

    user_id: str
    reason: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "") -> Self:
        """Parse from JSON; ``user_id`` is required."""
        return decode(cls, d, where or cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        """JSON body with unset fields left out."""
        return encode(self)


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
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body; no ``timeout`` key when unset."""
        return encode(self)


@dataclass
class ReqCreateRoomAlias:
    """Body of ``PUT /directory/room/{roomAlias}``."""

    room_id: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ReqCreateRoomAlias") -> Self:
        """Parse from JSON; ``room_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON body."""
        return encode(self)
