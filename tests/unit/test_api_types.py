"""Request/response dataclasses: exact wire shapes, required keys and error paths."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

import appservice.api as api
from appservice.api import (
    DiscoveryInformation,
    JoinedMember,
    PhoneIdentifier,
    PublicRoom,
    ReqBanUser,
    ReqCreateRoom,
    ReqCreateRoomAlias,
    ReqInvite3PID,
    ReqInviteUser,
    ReqKickUser,
    ReqLogin,
    ReqRedact,
    ReqRegister,
    ReqTyping,
    ReqUnbanUser,
    RespAliases,
    RespAppservicePing,
    RespCreateFilter,
    RespCreateRoom,
    RespJoinedMembers,
    RespJoinedRooms,
    RespJoinRoom,
    RespLeaveRoom,
    RespLogin,
    RespMediaUpload,
    RespMessages,
    RespPublicRooms,
    RespRegister,
    RespResolveAlias,
    RespSendEvent,
    RespSync,
    RespTurnServer,
    RespUserDisplayName,
    RespUserInteractive,
    RespUserStatus,
    RespVersions,
    RespWhoami,
    ServerInformation,
    SyncTimeline,
    ThirdpartyIdentifier,
    UIAFlow,
    UserIdentifier,
    identifier_from_dict,
)
from appservice.events import Event

GOMATRIX_NAMES = [
    "ReqRegister",
    "ReqLogin",
    "ReqCreateRoom",
    "ReqRedact",
    "ReqInvite3PID",
    "ReqInviteUser",
    "ReqKickUser",
    "ReqBanUser",
    "ReqUnbanUser",
    "ReqTyping",
    "ReqCreateRoomAlias",
    "RespCreateFilter",
    "RespVersions",
    "RespPublicRooms",
    "RespJoinRoom",
    "RespLeaveRoom",
    "RespForgetRoom",
    "RespInviteUser",
    "RespKickUser",
    "RespBanUser",
    "RespUnbanUser",
    "RespTyping",
    "RespJoinedRooms",
    "RespJoinedMembers",
    "RespMessages",
    "RespSendEvent",
    "RespMediaUpload",
    "RespUserInteractive",
    "RespUserDisplayName",
    "RespUserStatus",
    "RespRegister",
    "RespLogin",
    "RespLogout",
    "RespLogoutAll",
    "RespCreateRoom",
    "RespSync",
    "RespTurnServer",
    "RespWhoAmI",
    "RespRoomAlias",
    "RespGetDevices",
    "RespGetThreePID",
    "RespAccountData",
    "RespEmailRequestToken",
    "DiscoveryInformation",
    "PublicRoom",
    "Device",
    "ThreePID",
    "UserIdentifier",
    "ThirdpartyIdentifier",
    "PhoneIdentifier",
]

# Shaped like a real Synapse /sync answer: no room_id on room events, ephemeral, invite state.
SYNC: dict[str, Any] = {
    "next_batch": "s72595_4483_1934",
    "account_data": {"events": [{"type": "m.push_rules", "content": {"global": {}}}]},
    "presence": {
        "events": [{"type": "m.presence", "sender": "@bob:x", "content": {"presence": "online"}}]
    },
    "to_device": {"events": [{"type": "m.new_device", "sender": "@bob:x", "content": {}}]},
    "device_one_time_keys_count": {"signed_curve25519": 0},
    "rooms": {
        "join": {
            "!joined:x": {
                "summary": {"m.joined_member_count": 2},
                "state": {
                    "events": [
                        {
                            "type": "m.room.name",
                            "state_key": "",
                            "sender": "@bob:x",
                            "content": {"name": "Hall"},
                            "event_id": "$name",
                            "origin_server_ts": 1,
                        }
                    ]
                },
                "timeline": {
                    "events": [
                        {
                            "type": "m.room.message",
                            "sender": "@bob:x",
                            "content": {"msgtype": "m.text", "body": "hi"},
                            "event_id": "$msg",
                            "origin_server_ts": 2,
                            "unsigned": {"age": 10},
                        }
                    ],
                    "limited": True,
                    "prev_batch": "t34-23535_0_0",
                },
                "ephemeral": {"events": [{"type": "m.typing", "content": {"user_ids": ["@b:x"]}}]},
                "account_data": {"events": [{"type": "m.tag", "content": {"tags": {}}}]},
                "unread_notifications": {"highlight_count": 0, "notification_count": 1},
            }
        },
        "invite": {
            "!invited:x": {
                "invite_state": {
                    "events": [
                        {
                            "type": "m.room.member",
                            "state_key": "@me:x",
                            "sender": "@bob:x",
                            "content": {"membership": "invite"},
                        }
                    ]
                }
            }
        },
        "leave": {
            "!left:x": {
                "state": {"events": []},
                "timeline": {
                    "events": [
                        {
                            "type": "m.room.member",
                            "state_key": "@me:x",
                            "sender": "@me:x",
                            "content": {"membership": "leave"},
                            "event_id": "$leave",
                            "room_id": "!left:x",
                        }
                    ],
                    "limited": False,
                },
            }
        },
        "knock": {"!knocked:x": {"knock_state": {"events": []}}},
    },
}


def test_every_gomatrix_type_is_exported() -> None:
    missing = [name for name in GOMATRIX_NAMES if not hasattr(api, name)]
    assert missing == []
    assert set(api.__all__) >= set(GOMATRIX_NAMES)


def test_sync_parses_all_sections_and_fills_room_ids() -> None:
    resp = RespSync.from_dict(SYNC)
    assert resp.next_batch == "s72595_4483_1934"
    assert [e.type for e in resp.account_data.events] == ["m.push_rules"]
    assert resp.presence.events[0].content == {"presence": "online"}
    assert resp.to_device.events[0].type == "m.new_device"
    # Global sections stay room-less.
    assert resp.presence.events[0].room_id == ""

    joined = resp.rooms.join["!joined:x"]
    assert joined.timeline.limited is True
    assert joined.timeline.prev_batch == "t34-23535_0_0"
    msg = joined.timeline.events[0]
    assert (msg.id, msg.body(), msg.room_id, msg.unsigned) == (
        "$msg",
        "hi",
        "!joined:x",
        {"age": 10},
    )
    assert joined.state.events[0].room_id == "!joined:x"
    assert joined.ephemeral.events[0].room_id == "!joined:x"
    assert joined.account_data.events[0].room_id == "!joined:x"

    invite = resp.rooms.invite["!invited:x"].invite_state.events[0]
    assert (invite.room_id, invite.state_key, invite.id) == ("!invited:x", "@me:x", "")
    left = resp.rooms.leave["!left:x"]
    assert left.timeline.events[0].room_id == "!left:x"
    assert left.timeline.limited is False
    assert left.timeline.prev_batch == ""
    assert resp.rooms.knock["!knocked:x"].knock_state.events == []


def test_sync_events_are_distinct_objects() -> None:
    raw = {
        "next_batch": "n",
        "rooms": {
            "join": {
                "!a:x": {
                    "state": {
                        "events": [
                            {"type": "m.room.member", "state_key": "@a:x", "content": {"m": 1}},
                            {"type": "m.room.member", "state_key": "@b:x", "content": {"m": 2}},
                        ]
                    }
                }
            }
        },
    }
    a, b = RespSync.from_dict(raw).rooms.join["!a:x"].state.events
    assert a is not b
    assert a.content is not b.content
    assert (a.state_key, b.state_key) == ("@a:x", "@b:x")


def test_minimal_sync_has_empty_sections() -> None:
    resp = RespSync.from_dict({"next_batch": "s1"})
    assert resp.rooms.join == {}
    assert resp.rooms.invite == {}
    assert resp.rooms.leave == {}
    assert resp.account_data.events == []
    assert resp.to_device.events == []


def test_sync_round_trip_through_to_dict() -> None:
    resp = RespSync.from_dict(SYNC)
    again = RespSync.from_dict(orjson.loads(orjson.dumps(resp.to_dict())))
    assert again == resp


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "RespSync.next_batch: missing required key"),
        ({"next_batch": 1}, "RespSync.next_batch: expected a string"),
        ({"next_batch": "s", "rooms": []}, "RespSync.rooms: expected a JSON object"),
        ({"next_batch": "s", "presence": {"events": {}}}, "RespSync.presence.events: expected an"),
        (
            {"next_batch": "s", "rooms": {"join": {"!r:x": []}}},
            "RespSync.rooms.join[!r:x]: expected a JSON object",
        ),
        (
            {"next_batch": "s", "rooms": {"join": {"!r:x": {"timeline": {"events": [{}]}}}}},
            "RespSync.rooms.join[!r:x].timeline.events[0].type: missing required key",
        ),
        (
            {"next_batch": "s", "rooms": {"join": {"!r:x": {"timeline": {"limited": "no"}}}}},
            "RespSync.rooms.join[!r:x].timeline.limited: expected a boolean",
        ),
        (
            {"next_batch": "s", "rooms": {"invite": {"!r:x": {"invite_state": {"events": [3]}}}}},
            "RespSync.rooms.invite[!r:x].invite_state.events[0]: expected a JSON object",
        ),
    ],
)
def test_sync_errors_name_the_path(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        RespSync.from_dict(raw)


def test_timeline_to_dict_leaves_empty_prev_batch_out() -> None:
    assert SyncTimeline().to_dict() == {"events": [], "limited": False}


# --- requests -------------------------------------------------------------------------------


def test_register_puppet_body() -> None:
    req = ReqRegister(username="_irc_bob", type="m.login.application_service", inhibit_login=True)
    assert req.to_dict() == {
        "username": "_irc_bob",
        "type": "m.login.application_service",
        "inhibit_login": True,
    }
    assert ReqRegister.from_dict(req.to_dict()) == req
    assert ReqRegister().to_dict() == {}


def test_register_password_hidden_from_repr() -> None:
    req = ReqRegister(username="u", password="hunter2", auth={"type": "m.login.dummy"})
    assert "hunter2" not in repr(req)
    assert req.to_dict() == {
        "username": "u",
        "password": "hunter2",
        "auth": {"type": "m.login.dummy"},
    }


@pytest.mark.parametrize(
    ("ident", "wire"),
    [
        (UserIdentifier("bob"), {"type": "m.id.user", "user": "bob"}),
        (
            ThirdpartyIdentifier("email", "b@x.org"),
            {"type": "m.id.thirdparty", "medium": "email", "address": "b@x.org"},
        ),
        (PhoneIdentifier("GB", "0123"), {"type": "m.id.phone", "country": "GB", "phone": "0123"}),
    ],
)
def test_login_identifiers(ident: Any, wire: dict[str, Any]) -> None:
    req = ReqLogin("m.login.password", identifier=ident, password="pw", device_id="D")
    assert req.to_dict() == {
        "type": "m.login.password",
        "identifier": wire,
        "password": "pw",
        "device_id": "D",
    }
    assert ReqLogin.from_dict(req.to_dict()) == req
    assert "pw" not in repr(req).replace("m.login.password", "")


def test_unknown_identifier_type() -> None:
    with pytest.raises(ValueError, match=r"identifier\.type: unknown identifier type 'm\.id\.x'"):
        identifier_from_dict({"type": "m.id.x"})
    with pytest.raises(ValueError, match=r"ReqLogin.identifier.user: missing required key"):
        ReqLogin.from_dict({"type": "m.login.password", "identifier": {"type": "m.id.user"}})


def test_create_room_body() -> None:
    req = ReqCreateRoom(
        preset="private_chat",
        name="Portal",
        invite=["@a:x"],
        is_direct=False,
        invite_3pid=[ReqInvite3PID("id.x", "email", "a@x", id_access_token="tok")],
        initial_state=[
            Event(type="m.room.encryption", state_key="", content={"algorithm": "a"}),
            Event(type="m.bridge", sender="@ignored:x", content={"k": 1}, id="$ignored"),
        ],
        room_version="12",
        power_level_content_override={"users": {"@bot:x": 100}},
    )
    assert req.to_dict() == {
        "name": "Portal",
        "invite": ["@a:x"],
        "invite_3pid": [
            {"id_server": "id.x", "medium": "email", "address": "a@x", "id_access_token": "tok"}
        ],
        "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "a"}},
            {"type": "m.bridge", "state_key": "", "content": {"k": 1}},
        ],
        "preset": "private_chat",
        "is_direct": False,
        "room_version": "12",
        "power_level_content_override": {"users": {"@bot:x": 100}},
    }
    assert ReqCreateRoom().to_dict() == {}
    parsed = ReqCreateRoom.from_dict(req.to_dict())
    assert parsed.initial_state is not None
    assert parsed.initial_state[1].state_key == ""
    assert parsed.invite_3pid == req.invite_3pid


def test_create_room_errors() -> None:
    with pytest.raises(ValueError, match=r"ReqCreateRoom.invite\[1\]: expected a string"):
        ReqCreateRoom.from_dict({"invite": ["@a:x", 5]})
    with pytest.raises(ValueError, match=r"ReqCreateRoom.invite_3pid\[0\].medium: missing"):
        ReqCreateRoom.from_dict({"invite_3pid": [{"id_server": "i", "address": "a"}]})


@pytest.mark.parametrize("cls", [ReqInviteUser, ReqKickUser, ReqBanUser, ReqUnbanUser])
def test_membership_requests(cls: Any) -> None:
    assert cls("@u:x").to_dict() == {"user_id": "@u:x"}
    assert cls("@u:x", reason="spam").to_dict() == {"user_id": "@u:x", "reason": "spam"}
    assert cls.from_dict({"user_id": "@u:x", "reason": "r"}) == cls("@u:x", "r")
    with pytest.raises(ValueError, match=f"{cls.__name__}.user_id: missing required key"):
        cls.from_dict({"reason": "r"})


def test_small_requests() -> None:
    assert ReqRedact().to_dict() == {}
    assert ReqRedact("oops").to_dict() == {"reason": "oops"}
    assert ReqTyping(True, 30000).to_dict() == {"typing": True, "timeout": 30000}
    assert ReqTyping(False).to_dict() == {"typing": False}
    assert ReqCreateRoomAlias("!r:x").to_dict() == {"room_id": "!r:x"}
    with pytest.raises(ValueError, match=r"ReqTyping\.typing: missing required key"):
        ReqTyping.from_dict({"timeout": 1})


def test_request_bodies_never_contain_null() -> None:
    for req in (ReqRegister(), ReqLogin("m.login.token"), ReqCreateRoom(), ReqRedact()):
        assert b"null" not in orjson.dumps(req.to_dict())


# --- responses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "key"),
    [
        (RespCreateFilter, "filter_id"),
        (RespJoinRoom, "room_id"),
        (RespCreateRoom, "room_id"),
        (RespSendEvent, "event_id"),
        (RespMediaUpload, "content_uri"),
        (RespWhoami, "user_id"),
        (RespResolveAlias, "room_id"),
        (RespAppservicePing, "duration_ms"),
        (RespRegister, "user_id"),
        (RespUserStatus, "presence"),
    ],
)
def test_required_response_keys(cls: Any, key: str) -> None:
    with pytest.raises(ValueError, match=f"{cls.__name__}.{key}: missing required key"):
        cls.from_dict({})


def test_simple_responses_read_their_key() -> None:
    assert RespCreateFilter.from_dict({"filter_id": "7"}).filter_id == "7"
    assert RespSendEvent.from_dict({"event_id": "$e"}).event_id == "$e"
    assert RespMediaUpload.from_dict({"content_uri": "mxc://x/y"}).content_uri == "mxc://x/y"
    assert RespAppservicePing.from_dict({"duration_ms": 123}).duration_ms == 123
    assert RespAliases.from_dict({"aliases": ["#a:x"]}).aliases == ["#a:x"]
    assert RespJoinedRooms.from_dict({"joined_rooms": ["!a:x"]}).to_dict() == {
        "joined_rooms": ["!a:x"]
    }
    assert RespLeaveRoom.from_dict({}).to_dict() == {}
    with pytest.raises(ValueError, match="RespLeaveRoom: expected a JSON object"):
        RespLeaveRoom.from_dict([])  # type: ignore[arg-type]


def test_whoami() -> None:
    w = RespWhoami.from_dict({"user_id": "@bot:x", "device_id": "DEV", "is_guest": False})
    assert (w.user_id, w.device_id, w.is_guest) == ("@bot:x", "DEV", False)
    assert RespWhoami.from_dict({"user_id": "@as:x"}).to_dict() == {"user_id": "@as:x"}
    assert api.RespWhoAmI is RespWhoami


def test_versions() -> None:
    raw = {"versions": ["v1.11", "v1.12"], "unstable_features": {"org.matrix.msc3575": True}}
    v = RespVersions.from_dict(raw)
    assert v.supports("v1.12")
    assert not v.supports("r0.6.1")
    assert v.to_dict() == raw
    with pytest.raises(ValueError, match=r"unstable_features\[x\]: expected a boolean"):
        RespVersions.from_dict({"versions": [], "unstable_features": {"x": "yes"}})


def test_public_rooms() -> None:
    raw = {
        "chunk": [
            {
                "room_id": "!a:x",
                "num_joined_members": 3,
                "world_readable": True,
                "guest_can_join": False,
                "name": "A",
                "join_rule": "public",
            }
        ],
        "next_batch": "p1",
        "total_room_count_estimate": 10,
    }
    resp = RespPublicRooms.from_dict(raw)
    assert resp.chunk == [
        PublicRoom("!a:x", 3, True, False, name="A", join_rule="public"),
    ]
    assert resp.to_dict() == raw
    with pytest.raises(ValueError, match=r"RespPublicRooms.chunk\[0\].num_joined_members"):
        RespPublicRooms.from_dict({"chunk": [{"room_id": "!a", "num_joined_members": "3"}]})


def test_joined_members_with_null_profile_fields() -> None:
    raw = {"joined": {"@a:x": {"display_name": "A", "avatar_url": None}, "@b:x": {}}}
    resp = RespJoinedMembers.from_dict(raw)
    assert resp.joined == {"@a:x": JoinedMember("A", None), "@b:x": JoinedMember()}
    assert resp.to_dict() == {"joined": {"@a:x": {"display_name": "A"}, "@b:x": {}}}
    with pytest.raises(ValueError, match=r"RespJoinedMembers.joined\[@a:x\].display_name"):
        RespJoinedMembers.from_dict({"joined": {"@a:x": {"display_name": 1}}})


def test_messages() -> None:
    raw = {
        "start": "t1",
        "end": "t2",
        "chunk": [{"type": "m.room.message", "content": {"body": "x"}, "event_id": "$1"}],
        "state": [{"type": "m.room.member", "state_key": "@a:x", "content": {}}],
    }
    resp = RespMessages.from_dict(raw)
    assert (resp.start, resp.end) == ("t1", "t2")
    assert resp.chunk[0].body() == "x"
    assert resp.state[0].state_key == "@a:x"
    assert resp.to_dict() == raw
    end_of_history = RespMessages.from_dict({"start": "t1", "chunk": []})
    assert end_of_history.end is None
    assert end_of_history.to_dict() == {"start": "t1", "chunk": []}
    with pytest.raises(ValueError, match=r"RespMessages.chunk\[0\].content"):
        RespMessages.from_dict({"start": "t", "chunk": [{"type": "x", "content": 1}]})


def test_user_interactive() -> None:
    raw = {
        "flows": [
            {"stages": ["m.login.dummy"]},
            {"stages": ["m.login.recaptcha", "m.login.dummy"]},
        ],
        "params": {"m.login.recaptcha": {"public_key": "k"}},
        "session": "sess",
        "completed": ["m.login.recaptcha"],
    }
    uia = RespUserInteractive.from_dict(raw)
    assert uia.flows[1] == UIAFlow(["m.login.recaptcha", "m.login.dummy"])
    assert uia.has_single_stage_flow("m.login.dummy")
    assert not uia.has_single_stage_flow("m.login.recaptcha")
    assert not RespUserInteractive().has_single_stage_flow("m.login.dummy")
    assert uia.to_dict() == raw
    with pytest.raises(ValueError, match=r"RespUserInteractive.flows\[0\].stages\[0\]"):
        RespUserInteractive.from_dict({"flows": [{"stages": [1]}]})


def test_profile_and_status() -> None:
    assert RespUserDisplayName.from_dict({"displayname": "Bob"}).display_name == "Bob"
    assert RespUserDisplayName.from_dict({}).to_dict() == {}
    assert RespUserDisplayName("Bob").to_dict() == {"displayname": "Bob"}
    raw = {"presence": "online", "status_msg": "hi", "last_active_ago": 5, "currently_active": True}
    assert RespUserStatus.from_dict(raw).to_dict() == raw
    assert RespUserStatus.from_dict({"presence": "offline"}).to_dict() == {"presence": "offline"}


def test_register_and_login() -> None:
    inhibited = RespRegister.from_dict({"user_id": "@p:x", "home_server": "x"})
    assert inhibited.access_token is None
    assert inhibited.to_dict() == {"user_id": "@p:x", "home_server": "x"}
    raw = {
        "access_token": "syt_secret",
        "user_id": "@a:x",
        "device_id": "D",
        "well_known": {
            "m.homeserver": {"base_url": "https://hs"},
            "m.identity_server": {"base_url": "https://is"},
        },
    }
    login = RespLogin.from_dict(raw)
    assert login.well_known == DiscoveryInformation(
        ServerInformation("https://hs"), ServerInformation("https://is")
    )
    assert login.to_dict() == raw
    assert "syt_secret" not in repr(login)
    with pytest.raises(
        ValueError, match=r"RespLogin\.well_known\.m\.homeserver\.base_url: missing"
    ):
        RespLogin.from_dict(
            {"access_token": "t", "user_id": "@a:x", "well_known": {"m.homeserver": {}}}
        )


def test_turn_and_alias() -> None:
    raw = {"username": "u", "password": "p", "ttl": 86400, "uris": ["turn:t:3478"]}
    turn = RespTurnServer.from_dict(raw)
    assert turn.to_dict() == raw
    assert "'p'" not in repr(turn)
    alias = RespResolveAlias.from_dict({"room_id": "!r:x", "servers": ["x", "y"]})
    assert alias.to_dict() == {"room_id": "!r:x", "servers": ["x", "y"]}
    assert api.RespRoomAlias is RespResolveAlias
