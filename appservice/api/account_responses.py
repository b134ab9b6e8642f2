"""Account and authentication responses: register/login, UIA challenges, whoami, devices, 3PIDs.

Re-exported by ``appservice.api.responses``; same conventions (``from_dict`` raises ``ValueError``
naming the field, ``to_dict`` leaves unset optional fields out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from appservice.codec import decode, encode, wire


@dataclass
class UIAFlow:
    """One user-interactive auth flow: the stage types to complete, in order."""

    stages: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "UIAFlow") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespUserInteractive:
    """A 401 user-interactive auth challenge: flows, session, params and completed stages."""

    flows: list[UIAFlow] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    completed: list[str] = field(default_factory=list, metadata=wire(omit_empty=True))
    errcode: str | None = None
    error: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespUserInteractive") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)

    def has_single_stage_flow(self, stage: str) -> bool:
        """True when some flow consists of exactly the one stage ``stage``."""
        return any(f.stages == [stage] for f in self.flows)


@dataclass
class RespRegister:
    """Response of ``POST /register``; no token or device when ``inhibit_login`` was set."""

    user_id: str
    access_token: str | None = field(default=None, repr=False)
    device_id: str | None = None
    home_server: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    expires_in_ms: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespRegister") -> Self:
        """Parse from JSON; ``user_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class ServerInformation:
    """A server's ``base_url`` in discovery information."""

    base_url: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ServerInformation") -> Self:
        """Parse from JSON; ``base_url`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class DiscoveryInformation:
    """Client discovery data (``.well-known/matrix/client``, ``well_known`` of a login)."""

    homeserver: ServerInformation | None = field(default=None, metadata=wire("m.homeserver"))
    identity_server: ServerInformation | None = field(
        default=None, metadata=wire("m.identity_server")
    )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "DiscoveryInformation") -> Self:
        """Parse from JSON (keys ``m.homeserver`` and ``m.identity_server``)."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset servers left out."""
        return encode(self)


@dataclass
class RespLogin:
    """Response of ``POST /login``."""

    access_token: str = field(repr=False)
    user_id: str
    device_id: str = field(default="", metadata=wire(omit_empty=True))
    home_server: str | None = None
    well_known: DiscoveryInformation | None = None
    refresh_token: str | None = field(default=None, repr=False)
    expires_in_ms: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespLogin") -> Self:
        """Parse from JSON; ``access_token`` and ``user_id`` are required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespWhoami:
    """Response of ``GET /account/whoami``."""

    user_id: str
    device_id: str | None = None
    is_guest: bool = field(default=False, metadata=wire(omit_empty=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespWhoami") -> Self:
        """Parse from JSON; ``user_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


RespWhoAmI = RespWhoami


@dataclass
class Device:
    """One of the user's devices (``GET /devices``)."""

    device_id: str
    display_name: str | None = None
    last_seen_ip: str | None = None
    last_seen_ts: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "Device") -> Self:
        """Parse from JSON; ``device_id`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)


@dataclass
class RespGetDevices:
    """Response of ``GET /devices``."""

    devices: list[Device] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespGetDevices") -> Self:
        """Parse from JSON; ``ValueError`` naming the device on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class ThreePID:
    """A third-party identifier bound to the account."""

    medium: str
    address: str
    validated_at: int = 0
    added_at: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ThreePID") -> Self:
        """Parse from JSON; ``medium`` and ``address`` are required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespGetThreePID:
    """Response of ``GET /account/3pid``."""

    threepids: list[ThreePID] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespGetThreePID") -> Self:
        """Parse from JSON; ``ValueError`` naming the entry on a wrong type."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return encode(self)


@dataclass
class RespEmailRequestToken:
    """Response of the ``.../email/requestToken`` endpoints."""

    sid: str
    submit_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespEmailRequestToken") -> Self:
        """Parse from JSON; ``sid`` is required."""
        return decode(cls, d, where)

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        return encode(self)
