"""Account and authentication responses: register/login, UIA challenges, whoami, devices, 3PIDs.

Re-exported by ``appservice.api.responses``; same conventions (``from_dict`` raises ``ValueError``
naming the field, ``to_dict`` leaves unset optional fields out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from appservice._fields import (
    as_object,
    get_bool,
    get_int,
    get_object,
    get_str,
    get_str_list,
    object_items,
    opt_int,
    opt_object,
    opt_str,
    put,
    req_str,
)


@dataclass
class UIAFlow:
    """One user-interactive auth flow: the stage types to complete, in order."""

    stages: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "UIAFlow") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        return cls(get_str_list(as_object(d, where), "stages", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"stages": list(self.stages)}


@dataclass
class RespUserInteractive:
    """A 401 user-interactive auth challenge: flows, session, params and completed stages."""

    flows: list[UIAFlow] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    completed: list[str] = field(default_factory=list)
    errcode: str | None = None
    error: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespUserInteractive") -> Self:
        """Parse from JSON; ``ValueError`` naming the field on a wrong type."""
        d = as_object(d, where)
        return cls(
            flows=[UIAFlow.from_dict(f, where=w) for w, f in object_items(d, "flows", where)],
            params=get_object(d, "params", where),
            session=opt_str(d, "session", where),
            completed=get_str_list(d, "completed", where),
            errcode=opt_str(d, "errcode", where),
            error=opt_str(d, "error", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {
            "flows": [f.to_dict() for f in self.flows],
            "params": dict(self.params),
        }
        put(out, "session", self.session)
        if self.completed:
            out["completed"] = list(self.completed)
        put(out, "errcode", self.errcode)
        put(out, "error", self.error)
        return out

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
        d = as_object(d, where)
        return cls(
            user_id=req_str(d, "user_id", where),
            access_token=opt_str(d, "access_token", where),
            device_id=opt_str(d, "device_id", where),
            home_server=opt_str(d, "home_server", where),
            refresh_token=opt_str(d, "refresh_token", where),
            expires_in_ms=opt_int(d, "expires_in_ms", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"user_id": self.user_id}
        put(out, "access_token", self.access_token)
        put(out, "device_id", self.device_id)
        put(out, "home_server", self.home_server)
        put(out, "refresh_token", self.refresh_token)
        put(out, "expires_in_ms", self.expires_in_ms)
        return out


@dataclass
class ServerInformation:
    """A server's ``base_url`` in discovery information."""

    base_url: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "ServerInformation") -> Self:
        """Parse from JSON; ``base_url`` is required."""
        return cls(req_str(as_object(d, where), "base_url", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"base_url": self.base_url}


@dataclass
class DiscoveryInformation:
    """Client discovery data (``.well-known/matrix/client``, ``well_known`` of a login)."""

    homeserver: ServerInformation | None = None
    identity_server: ServerInformation | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "DiscoveryInformation") -> Self:
        """Parse from JSON (keys ``m.homeserver`` and ``m.identity_server``)."""
        d = as_object(d, where)
        hs = opt_object(d, "m.homeserver", where)
        ids = opt_object(d, "m.identity_server", where)
        return cls(
            None if hs is None else ServerInformation.from_dict(hs, where=f"{where}.m.homeserver"),
            None
            if ids is None
            else ServerInformation.from_dict(ids, where=f"{where}.m.identity_server"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset servers left out."""
        out: dict[str, Any] = {}
        if self.homeserver is not None:
            out["m.homeserver"] = self.homeserver.to_dict()
        if self.identity_server is not None:
            out["m.identity_server"] = self.identity_server.to_dict()
        return out


@dataclass
class RespLogin:
    """Response of ``POST /login``."""

    access_token: str = field(repr=False)
    user_id: str
    device_id: str = ""
    home_server: str | None = None
    well_known: DiscoveryInformation | None = None
    refresh_token: str | None = field(default=None, repr=False)
    expires_in_ms: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespLogin") -> Self:
        """Parse from JSON; ``access_token`` and ``user_id`` are required."""
        d = as_object(d, where)
        wk = opt_object(d, "well_known", where)
        return cls(
            access_token=req_str(d, "access_token", where),
            user_id=req_str(d, "user_id", where),
            device_id=get_str(d, "device_id", where),
            home_server=opt_str(d, "home_server", where),
            well_known=None
            if wk is None
            else DiscoveryInformation.from_dict(wk, where=f"{where}.well_known"),
            refresh_token=opt_str(d, "refresh_token", where),
            expires_in_ms=opt_int(d, "expires_in_ms", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"access_token": self.access_token, "user_id": self.user_id}
        if self.device_id:
            out["device_id"] = self.device_id
        put(out, "home_server", self.home_server)
        if self.well_known is not None:
            out["well_known"] = self.well_known.to_dict()
        put(out, "refresh_token", self.refresh_token)
        put(out, "expires_in_ms", self.expires_in_ms)
        return out


@dataclass
class RespWhoami:
    """Response of ``GET /account/whoami``."""

    user_id: str
    device_id: str | None = None
    is_guest: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespWhoami") -> Self:
        """Parse from JSON; ``user_id`` is required."""
        d = as_object(d, where)
        return cls(
            user_id=req_str(d, "user_id", where),
            device_id=opt_str(d, "device_id", where),
            is_guest=get_bool(d, "is_guest", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"user_id": self.user_id}
        put(out, "device_id", self.device_id)
        if self.is_guest:
            out["is_guest"] = True
        return out


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
        d = as_object(d, where)
        return cls(
            device_id=req_str(d, "device_id", where),
            display_name=opt_str(d, "display_name", where),
            last_seen_ip=opt_str(d, "last_seen_ip", where),
            last_seen_ts=opt_int(d, "last_seen_ts", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"device_id": self.device_id}
        put(out, "display_name", self.display_name)
        put(out, "last_seen_ip", self.last_seen_ip)
        put(out, "last_seen_ts", self.last_seen_ts)
        return out


@dataclass
class RespGetDevices:
    """Response of ``GET /devices``."""

    devices: list[Device] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespGetDevices") -> Self:
        """Parse from JSON; ``ValueError`` naming the device on a wrong type."""
        d = as_object(d, where)
        return cls([Device.from_dict(x, where=w) for w, x in object_items(d, "devices", where)])

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"devices": [x.to_dict() for x in self.devices]}


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
        d = as_object(d, where)
        return cls(
            medium=req_str(d, "medium", where),
            address=req_str(d, "address", where),
            validated_at=get_int(d, "validated_at", where),
            added_at=get_int(d, "added_at", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "medium": self.medium,
            "address": self.address,
            "validated_at": self.validated_at,
            "added_at": self.added_at,
        }


@dataclass
class RespGetThreePID:
    """Response of ``GET /account/3pid``."""

    threepids: list[ThreePID] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespGetThreePID") -> Self:
        """Parse from JSON; ``ValueError`` naming the entry on a wrong type."""
        d = as_object(d, where)
        return cls([ThreePID.from_dict(x, where=w) for w, x in object_items(d, "threepids", where)])

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"threepids": [x.to_dict() for x in self.threepids]}


@dataclass
class RespEmailRequestToken:
    """Response of the ``.../email/requestToken`` endpoints."""

    sid: str
    submit_url: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "RespEmailRequestToken") -> Self:
        """Parse from JSON; ``sid`` is required."""
        d = as_object(d, where)
        return cls(req_str(d, "sid", where), opt_str(d, "submit_url", where))

    def to_dict(self) -> dict[str, Any]:
        """JSON form with unset fields left out."""
        out: dict[str, Any] = {"sid": self.sid}
        put(out, "submit_url", self.submit_url)
        return out
