"""Account endpoints: registration (incl. the m.login.dummy flow), login, logout, whoami."""

from __future__ import annotations

import dataclasses
import logging

import orjson

from appservice.api import (
    ReqLogin,
    ReqRegister,
    RespLogin,
    RespLogout,
    RespLogoutAll,
    RespRegister,
    RespTurnServer,
    RespUserInteractive,
    RespVersions,
    RespWhoami,
)
from appservice.client.base import ClientBase
from appservice.errors import HTTPError

__all__ = ["AccountAPI"]

log = logging.getLogger(__name__)

DUMMY_AUTH = "m.login.dummy"


class AccountAPI(ClientBase):
    """Endpoint group for accounts: ``register*``, ``login``, ``logout*``, ``whoami``, ...

    None of these change the client's credentials: use ``set_credentials`` with the result.
    """

    async def _register(
        self, url: str, req: ReqRegister
    ) -> tuple[RespRegister | None, RespUserInteractive | None]:
        if not isinstance(req, ReqRegister):
            raise TypeError(f"register: req must be a ReqRegister, got {type(req).__name__}")
        try:
            data = await self.make_request("POST", url, req.to_dict())
        except HTTPError as err:
            if err.code != 401:
                raise
            uia = _parse_uia(err.contents)
            if uia is None or not uia.flows:
                raise
            return None, uia
        return RespRegister.from_dict(data), None

    async def register(
        self, req: ReqRegister
    ) -> tuple[RespRegister | None, RespUserInteractive | None]:
        """Register an account (POST /register, kind=user).

        Returns ``(resp, None)`` on success, or ``(None, uia)`` when the server answers with a
        user-interactive auth challenge (401 with ``flows``); any other failure raises
        ``HTTPError``. An appservice registers a puppet with ``type="m.login.application_service"``
        and ``inhibit_login=True`` using its as_token.
        """
        return await self._register(self.build_url("register"), req)

    async def register_guest(
        self, req: ReqRegister
    ) -> tuple[RespRegister | None, RespUserInteractive | None]:
        """Register a guest account (POST /register?kind=guest); results as ``register``."""
        url = self.build_url_with_query(["register"], {"kind": "guest"})
        return await self._register(url, req)

    async def register_dummy(self, req: ReqRegister) -> RespRegister:
        """Register through the ``m.login.dummy`` flow, as development homeservers allow.

        The first request gets the 401 challenge; it is answered with
        ``auth={"type": "m.login.dummy", "session": ...}``. ``req`` itself is not modified.
        Raises ``HTTPError`` when the server refuses, ``ValueError`` when it offers no dummy flow.
        """
        resp, uia = await self.register(req)
        if resp is not None:
            return resp
        if uia is None or not uia.has_single_stage_flow(DUMMY_AUTH):
            offered = [f.stages for f in uia.flows] if uia is not None else []
            raise ValueError(
                f"register_dummy: the server offers no single-stage {DUMMY_AUTH} flow "
                f"(flows: {offered})"
            )
        auth: dict[str, str] = {"type": DUMMY_AUTH}
        if uia.session:
            auth["session"] = uia.session
        resp, uia2 = await self.register(dataclasses.replace(req, auth=auth))
        if resp is None:
            stages = [] if uia2 is None else [f.stages for f in uia2.flows]
            raise ValueError(
                f"register_dummy: the server asked for more auth after {DUMMY_AUTH} "
                f"(flows: {stages})"
            )
        return resp

    async def login(self, req: ReqLogin) -> RespLogin:
        """Log in (POST /login) and return the new access token and device."""
        if not isinstance(req, ReqLogin):
            raise TypeError(f"login: req must be a ReqLogin, got {type(req).__name__}")
        data = await self.make_request("POST", self.build_url("login"), req.to_dict())
        return RespLogin.from_dict(data)

    async def logout(self) -> RespLogout:
        """Invalidate this client's access token (POST /logout); credentials are kept."""
        data = await self.make_request("POST", self.build_url("logout"))
        return RespLogout.from_dict(data)

    async def logout_all(self) -> RespLogoutAll:
        """Invalidate every access token of the user (POST /logout/all)."""
        data = await self.make_request("POST", self.build_url("logout", "all"))
        return RespLogoutAll.from_dict(data)

    async def whoami(self) -> RespWhoami:
        """Who the access token (and asserted ``user_id``) belongs to (GET /account/whoami)."""
        data = await self.make_request("GET", self.build_url("account", "whoami"))
        return RespWhoami.from_dict(data)

    async def versions(self) -> RespVersions:
        """The spec versions the server supports (GET /_matrix/client/versions)."""
        url = self.build_base_url("_matrix", "client", "versions")
        return RespVersions.from_dict(await self.make_request("GET", url))

    async def turn_server(self) -> RespTurnServer:
        """TURN server credentials for VoIP (GET /voip/turnServer).

        A server without TURN configured answers ``{}``: the result then has no ``uris``.
        """
        data = await self.make_request("GET", self.build_url("voip", "turnServer"))
        return RespTurnServer.from_dict(data)


def _parse_uia(contents: bytes) -> RespUserInteractive | None:
    """The user-interactive auth challenge in a 401 body, or None when it is not one."""
    try:
        body = orjson.loads(contents)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    try:
        return RespUserInteractive.from_dict(body)
    except ValueError:
        log.debug("401 body is not a user-interactive auth challenge")
        return None
