"""Room endpoints: create/join/leave/forget, membership changes, state, history, directory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appservice.api import (
    ReqBanUser,
    ReqCreateRoom,
    ReqCreateRoomAlias,
    ReqInvite3PID,
    ReqInviteUser,
    ReqKickUser,
    ReqUnbanUser,
    RespAliases,
    RespBanUser,
    RespCreateRoom,
    RespForgetRoom,
    RespInviteUser,
    RespJoinedMembers,
    RespJoinedRooms,
    RespJoinRoom,
    RespKickUser,
    RespLeaveRoom,
    RespMessages,
    RespPublicRooms,
    RespResolveAlias,
    RespUnbanUser,
)
from appservice.client._common import check_id
from appservice.client.base import ClientBase
from appservice.events import Event

__all__ = ["RoomsAPI"]


def _check_req(req: object, cls: type, where: str) -> None:
    if not isinstance(req, cls):
        raise TypeError(f"{where}: req must be a {cls.__name__}, got {type(req).__name__}")


def _state_segments(room_id: str, event_type: str, state_key: str) -> list[str]:
    # An empty state key is the spec's "trailing slash optional" form: /state/{eventType}.
    segments = ["rooms", room_id, "state", event_type]
    if state_key:
        segments.append(state_key)
    return segments


class RoomsAPI(ClientBase):
    """Endpoint group for rooms: membership, state, ``messages``, public rooms and aliases."""

    async def create_room(self, req: ReqCreateRoom) -> RespCreateRoom:
        """Create a room (POST /createRoom) as described by ``req``."""
        _check_req(req, ReqCreateRoom, "create_room")
        data = await self.make_request("POST", self.build_url("createRoom"), req.to_dict())
        return RespCreateRoom.from_dict(data)

    async def join_room(
        self,
        room_id_or_alias: str,
        server_name: str = "",
        content: Mapping[str, Any] | None = None,
    ) -> RespJoinRoom:
        """Join a room by ID or alias (POST /join/{roomIdOrAlias}).

        ``server_name`` is a server to join through, sent as ``via`` (and as the older
        ``server_name`` for servers before v1.12); ``content`` is the body (``reason``, ...).
        """
        check_id(room_id_or_alias, "room_id_or_alias", "join_room")
        if not isinstance(server_name, str):
            raise TypeError(f"join_room: server_name must be a str, got {type(server_name)!r}")
        if content is not None and not isinstance(content, Mapping):
            raise TypeError(f"join_room: content must be a mapping, got {type(content)!r}")
        segments = ["join", room_id_or_alias]
        if server_name:
            url = self.build_url_with_query(
                segments, {"server_name": server_name, "via": server_name}
            )
        else:
            url = self.build_url(*segments)
        body = {} if content is None else dict(content)
        return RespJoinRoom.from_dict(await self.make_request("POST", url, body))

    async def leave_room(self, room_id: str) -> RespLeaveRoom:
        """Leave a room (POST /rooms/{roomId}/leave)."""
        check_id(room_id, "room_id", "leave_room")
        url = self.build_url("rooms", room_id, "leave")
        return RespLeaveRoom.from_dict(await self.make_request("POST", url, {}))

    async def forget_room(self, room_id: str) -> RespForgetRoom:
        """Forget a room already left (POST /rooms/{roomId}/forget)."""
        check_id(room_id, "room_id", "forget_room")
        url = self.build_url("rooms", room_id, "forget")
        return RespForgetRoom.from_dict(await self.make_request("POST", url, {}))

    async def invite_user(self, room_id: str, req: ReqInviteUser) -> RespInviteUser:
        """Invite a user to a room (POST /rooms/{roomId}/invite)."""
        check_id(room_id, "room_id", "invite_user")
        _check_req(req, ReqInviteUser, "invite_user")
        url = self.build_url("rooms", room_id, "invite")
        return RespInviteUser.from_dict(await self.make_request("POST", url, req.to_dict()))

    async def invite_user_by_third_party(self, room_id: str, req: ReqInvite3PID) -> RespInviteUser:
        """Invite a third-party identifier (e-mail ...) to a room (POST /rooms/{roomId}/invite)."""
        check_id(room_id, "room_id", "invite_user_by_third_party")
        _check_req(req, ReqInvite3PID, "invite_user_by_third_party")
        url = self.build_url("rooms", room_id, "invite")
        return RespInviteUser.from_dict(await self.make_request("POST", url, req.to_dict()))

    async def kick_user(self, room_id: str, req: ReqKickUser) -> RespKickUser:
        """Kick a user from a room (POST /rooms/{roomId}/kick)."""
        check_id(room_id, "room_id", "kick_user")
        _check_req(req, ReqKickUser, "kick_user")
        url = self.build_url("rooms", room_id, "kick")
        return RespKickUser.from_dict(await self.make_request("POST", url, req.to_dict()))

    async def ban_user(self, room_id: str, req: ReqBanUser) -> RespBanUser:
        """Ban a user from a room (POST /rooms/{roomId}/ban)."""
        check_id(room_id, "room_id", "ban_user")
        _check_req(req, ReqBanUser, "ban_user")
        url = self.build_url("rooms", room_id, "ban")
        return RespBanUser.from_dict(await self.make_request("POST", url, req.to_dict()))

    async def unban_user(self, room_id: str, req: ReqUnbanUser) -> RespUnbanUser:
        """Lift a user's ban (POST /rooms/{roomId}/unban)."""
        check_id(room_id, "room_id", "unban_user")
        _check_req(req, ReqUnbanUser, "unban_user")
        url = self.build_url("rooms", room_id, "unban")
        return RespUnbanUser.from_dict(await self.make_request("POST", url, req.to_dict()))

    async def state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any]:
        """The content of one state event (GET /rooms/{roomId}/state/{eventType}/{stateKey}).

        Raises ``HTTPError`` (``M_NOT_FOUND``) when the room has no such state.
        """
        check_id(room_id, "room_id", "state_event")
        check_id(event_type, "event_type", "state_event")
        if not isinstance(state_key, str):
            raise TypeError(f"state_event: state_key must be a str, got {type(state_key)!r}")
        url = self.build_url(*_state_segments(room_id, event_type, state_key))
        data = await self.make_request("GET", url)
        if not isinstance(data, dict):
            raise ValueError(
                f"state_event: expected a JSON object from {event_type}/{state_key!r}, "
                f"got {type(data).__name__}"
            )
        return data

    async def get_state(self, room_id: str) -> list[Event]:
        """Every current state event of a room (GET /rooms/{roomId}/state)."""
        check_id(room_id, "room_id", "get_state")
        data = await self.make_request("GET", self.build_url("rooms", room_id, "state"))
        if not isinstance(data, list):
            raise ValueError(f"get_state: expected a JSON array, got {type(data).__name__}")
        events = []
        for i, raw in enumerate(data):
            event = Event.from_dict(raw, where=f"get_state[{i}]")
            if not event.room_id:
                event.room_id = room_id
            events.append(event)
        return events

    async def joined_members(self, room_id: str) -> RespJoinedMembers:
        """The joined members of a room with their profiles (GET /rooms/{roomId}/joined_members)."""
        check_id(room_id, "room_id", "joined_members")
        url = self.build_url("rooms", room_id, "joined_members")
        return RespJoinedMembers.from_dict(await self.make_request("GET", url))

    async def joined_rooms(self) -> RespJoinedRooms:
        """The rooms the user is joined to (GET /joined_rooms)."""
        return RespJoinedRooms.from_dict(
            await self.make_request("GET", self.build_url("joined_rooms"))
        )

    async def messages(
        self, room_id: str, from_: str = "", to: str = "", dir: str = "b", limit: int = 0
    ) -> RespMessages:
        """A page of a room's history (GET /rooms/{roomId}/messages).

        ``dir`` is ``"b"`` (backwards from ``from_``) or ``"f"``; an empty ``from_`` starts at the
        end (``b``) or start (``f``) of the timeline; ``limit`` 0 leaves the server's default.
        """
        check_id(room_id, "room_id", "messages")
        if dir not in ("b", "f"):
            raise ValueError(f"messages: dir must be 'b' or 'f', got {dir!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"messages: limit must be a non-negative int, got {limit!r}")
        for name, token in (("from_", from_), ("to", to)):
            if not isinstance(token, str):
                raise TypeError(f"messages: {name} must be a str, got {type(token).__name__}")
        query: dict[str, str | list[str]] = {"dir": dir}
        if from_:
            query["from"] = from_
        if to:
            query["to"] = to
        if limit:
            query["limit"] = str(limit)
        url = self.build_url_with_query(["rooms", room_id, "messages"], query)
        return RespMessages.from_dict(await self.make_request("GET", url))

    async def public_rooms(
        self, limit: int = 0, since: str = "", server: str = ""
    ) -> RespPublicRooms:
        """A page of the public room directory (GET /publicRooms); empty/0 arguments are omitted."""
        _check_paging(limit, since, server, "public_rooms")
        query: dict[str, str | list[str]] = {}
        if limit:
            query["limit"] = str(limit)
        if since:
            query["since"] = since
        if server:
            query["server"] = server
        url = self.build_url_with_query(["publicRooms"], query)
        return RespPublicRooms.from_dict(await self.make_request("GET", url))

    async def public_rooms_filtered(
        self,
        limit: int = 0,
        since: str = "",
        server: str = "",
        filter: str | Mapping[str, Any] | None = None,
    ) -> RespPublicRooms:
        """A filtered page of the public room directory (POST /publicRooms).

        ``filter`` is a search term (sent as ``{"generic_search_term": ...}``) or a whole
        spec filter object (``generic_search_term``, ``room_types``).
        """
        _check_paging(limit, since, server, "public_rooms_filtered")
        body: dict[str, Any] = {}
        if limit:
            body["limit"] = limit
        if since:
            body["since"] = since
        if isinstance(filter, str):
            if filter:
                body["filter"] = {"generic_search_term": filter}
        elif isinstance(filter, Mapping):
            body["filter"] = dict(filter)
        elif filter is not None:
            raise TypeError(
                f"public_rooms_filtered: filter must be a str or a mapping, "
                f"got {type(filter).__name__}"
            )
        if server:
            url = self.build_url_with_query(["publicRooms"], {"server": server})
        else:
            url = self.build_url("publicRooms")
        return RespPublicRooms.from_dict(await self.make_request("POST", url, body))

    async def create_alias(self, alias: str, room_id: str) -> None:
        """Point a room alias at a room (PUT /directory/room/{roomAlias})."""
        check_id(alias, "alias", "create_alias")
        check_id(room_id, "room_id", "create_alias")
        url = self.build_url("directory", "room", alias)
        await self.make_request("PUT", url, ReqCreateRoomAlias(room_id=room_id).to_dict())

    async def delete_alias(self, alias: str) -> None:
        """Remove a room alias (DELETE /directory/room/{roomAlias})."""
        check_id(alias, "alias", "delete_alias")
        await self.make_request("DELETE", self.build_url("directory", "room", alias))

    async def resolve_alias(self, alias: str) -> RespResolveAlias:
        """The room ID (and servers to join via) of an alias (GET /directory/room/{roomAlias})."""
        check_id(alias, "alias", "resolve_alias")
        url = self.build_url("directory", "room", alias)
        return RespResolveAlias.from_dict(await self.make_request("GET", url))

    async def get_aliases(self, room_id: str) -> RespAliases:
        """The local aliases of a room (GET /rooms/{roomId}/aliases)."""
        check_id(room_id, "room_id", "get_aliases")
        url = self.build_url("rooms", room_id, "aliases")
        return RespAliases.from_dict(await self.make_request("GET", url))


def _check_paging(limit: int, since: str, server: str, where: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"{where}: limit must be a non-negative int, got {limit!r}")
    if not isinstance(since, str):
        raise TypeError(f"{where}: since must be a str, got {type(since).__name__}")
    if not isinstance(server, str):
        raise TypeError(f"{where}: server must be a str, got {type(server).__name__}")
