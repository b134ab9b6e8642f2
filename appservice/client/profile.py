"""Profile and presence endpoints: display name, avatar URL and status."""

from __future__ import annotations

from typing import Any

from appservice._fields import opt_str
from appservice.api import RespUserDisplayName, RespUserStatus
from appservice.client._common import check_id, own_user_id
from appservice.client.base import ClientBase

__all__ = ["PRESENCE_STATES", "ProfileAPI"]

PRESENCE_STATES = frozenset({"online", "offline", "unavailable"})
"""The presence values the spec allows in ``set_status``."""


class ProfileAPI(ClientBase):
    """Endpoint group for profiles and presence.

    "Own" means the asserted puppet when ``app_service_user_id`` is set, else ``user_id``.
    """

    async def get_display_name(self, user_id: str) -> RespUserDisplayName:
        """A user's display name (GET /profile/{userId}/displayname)."""
        check_id(user_id, "user_id", "get_display_name")
        url = self.build_url("profile", user_id, "displayname")
        return RespUserDisplayName.from_dict(await self.make_request("GET", url))

    async def get_own_display_name(self) -> RespUserDisplayName:
        """This client's user's display name."""
        return await self.get_display_name(own_user_id(self, "get_own_display_name"))

    async def set_display_name(self, display_name: str) -> None:
        """Set this client's user's display name (PUT /profile/{userId}/displayname)."""
        if not isinstance(display_name, str):
            raise TypeError(
                f"set_display_name: display_name must be a str, got {type(display_name).__name__}"
            )
        user_id = own_user_id(self, "set_display_name")
        url = self.build_url("profile", user_id, "displayname")
        await self.make_request("PUT", url, {"displayname": display_name})

    async def get_avatar_url(self) -> str:
        """This client's user's avatar ``mxc://`` URL, ``""`` when none is set."""
        user_id = own_user_id(self, "get_avatar_url")
        url = self.build_url("profile", user_id, "avatar_url")
        data: Any = await self.make_request("GET", url)
        if not isinstance(data, dict):
            raise ValueError(f"get_avatar_url: expected a JSON object, got {type(data).__name__}")
        return opt_str(data, "avatar_url", "get_avatar_url") or ""

    async def set_avatar_url(self, url: str) -> None:
        """Set this client's user's avatar ``mxc://`` URL (PUT /profile/{userId}/avatar_url)."""
        if not isinstance(url, str):
            raise TypeError(f"set_avatar_url: url must be a str, got {type(url).__name__}")
        user_id = own_user_id(self, "set_avatar_url")
        endpoint = self.build_url("profile", user_id, "avatar_url")
        await self.make_request("PUT", endpoint, {"avatar_url": url})

    async def get_status(self, user_id: str) -> RespUserStatus:
        """A user's presence (GET /presence/{userId}/status)."""
        check_id(user_id, "user_id", "get_status")
        url = self.build_url("presence", user_id, "status")
        return RespUserStatus.from_dict(await self.make_request("GET", url))

    async def get_own_status(self) -> RespUserStatus:
        """This client's user's presence."""
        return await self.get_status(own_user_id(self, "get_own_status"))

    async def set_status(self, presence: str, status_msg: str = "") -> None:
        """Set this client's user's presence (PUT /presence/{userId}/status).

        ``presence`` is ``online``, ``offline`` or ``unavailable``; an empty ``status_msg`` is
        left out of the request (the server then clears the message).
        """
        if not isinstance(presence, str) or presence not in PRESENCE_STATES:
            raise ValueError(
                f"set_status: presence must be one of {sorted(PRESENCE_STATES)}, got {presence!r}"
            )
        if not isinstance(status_msg, str):
            raise TypeError(f"set_status: status_msg must be a str, got {type(status_msg)!r}")
        body: dict[str, Any] = {"presence": presence}
        if status_msg:
            body["status_msg"] = status_msg
        url = self.build_url("presence", own_user_id(self, "set_status"), "status")
        await self.make_request("PUT", url, body)
