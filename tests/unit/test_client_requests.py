"""Exact requests built by every Client endpoint method: method, URL, JSON body and headers.

An in-memory ``httpx.MockTransport`` records each request and answers with a canned JSON reply;
the point is what goes on the wire (v3 paths, encoded segments, omitted optional fields).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from appservice.api import (
    ReqBanUser,
    ReqCreateRoom,
    ReqInvite3PID,
    ReqInviteUser,
    ReqKickUser,
    ReqLogin,
    ReqRedact,
    ReqRegister,
    ReqUnbanUser,
    RespLogout,
    UserIdentifier,
)
from appservice.client import Client, RetryPolicy
from appservice.errors import HTTPError
from appservice.events import ImageMessage

HS = "http://127.0.0.1:8448"
ME = "@alice:example.org"
TOKEN = "secret-token"
ROOM = "!room:example.org"
ROOM_ENC = "%21room:example.org"
V3 = "/_matrix/client/v3"


@dataclass
class Recorder:
    """Records requests; answers each with the next queued reply (default: 200 ``{}``)."""

    requests: list[httpx.Request] = field(default_factory=list)
    replies: list[tuple[int, Any]] = field(default_factory=list)

    def reply(self, status: int, body: Any) -> None:
        self.replies.append((status, body))

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        status, body = self.replies.pop(0) if self.replies else (200, {})
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    @property
    def only(self) -> httpx.Request:
        assert len(self.requests) == 1, [str(r.url) for r in self.requests]
        return self.requests[0]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def cli(rec: Recorder) -> AsyncIterator[Client]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(rec.handler))
    client = Client(
        HS,
        ME,
        TOKEN,
        http=http,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
    )
    yield client
    await http.aclose()


def target(req: httpx.Request) -> str:
    """Path and query exactly as sent on the wire."""
    return req.url.raw_path.decode("ascii")


def body(req: httpx.Request) -> Any:
    assert req.headers["Content-Type"] == "application/json"
    return json.loads(req.content)


def assert_auth(req: httpx.Request) -> None:
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in str(req.url)


# --- account ----------------------------------------------------------------------------------


async def test_register_sends_only_set_fields(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"user_id": "@bob:example.org", "access_token": "t", "device_id": "D"})
    resp, uia = await cli.register(ReqRegister(username="bob", password="pw"))
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/register")
    assert body(req) == {"username": "bob", "password": "pw"}
    assert uia is None
    assert resp is not None
    assert (resp.user_id, resp.access_token, resp.device_id) == ("@bob:example.org", "t", "D")


async def test_register_returns_uia_challenge_on_401_with_flows(cli: Client, rec: Recorder) -> None:
    rec.reply(401, {"flows": [{"stages": ["m.login.dummy"]}], "session": "S", "params": {}})
    resp, uia = await cli.register(ReqRegister(username="bob"))
    assert resp is None
    assert uia is not None
    assert uia.session == "S"
    assert uia.has_single_stage_flow("m.login.dummy")


async def test_register_raises_on_401_without_flows(cli: Client, rec: Recorder) -> None:
    rec.reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "bad token"})
    with pytest.raises(HTTPError) as info:
        await cli.register(ReqRegister(username="bob"))
    assert info.value.code == 401
    assert info.value.wrapped_error is not None
    assert info.value.wrapped_error.errcode == "M_UNKNOWN_TOKEN"


async def test_register_raises_on_other_errors(cli: Client, rec: Recorder) -> None:
    rec.reply(400, {"errcode": "M_USER_IN_USE", "error": "taken"})
    with pytest.raises(HTTPError) as info:
        await cli.register(ReqRegister(username="bob"))
    assert info.value.code == 400


async def test_register_appservice_puppet_body(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"user_id": "@_p_x:example.org", "home_server": "example.org"})
    req = ReqRegister(username="_p_x", type="m.login.application_service", inhibit_login=True)
    resp, _ = await cli.register(req)
    assert body(rec.only) == {
        "username": "_p_x",
        "type": "m.login.application_service",
        "inhibit_login": True,
    }
    assert resp is not None
    assert resp.access_token is None


async def test_register_guest_uses_kind_query(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"user_id": "@1:example.org", "access_token": "g"})
    await cli.register_guest(ReqRegister())
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/register?kind=guest")
    assert body(req) == {}


async def test_register_dummy_completes_the_flow(cli: Client, rec: Recorder) -> None:
    rec.reply(401, {"flows": [{"stages": ["m.login.dummy"]}], "session": "sess1"})
    rec.reply(200, {"user_id": "@bob:example.org", "access_token": "t"})
    req = ReqRegister(username="bob", password="pw")
    resp = await cli.register_dummy(req)
    assert resp.user_id == "@bob:example.org"
    first, second = rec.requests
    assert body(first) == {"username": "bob", "password": "pw"}
    assert target(second) == f"{V3}/register"
    assert body(second) == {
        "username": "bob",
        "password": "pw",
        "auth": {"type": "m.login.dummy", "session": "sess1"},
    }
    assert req.auth is None  # the caller's request is not modified


async def test_register_dummy_without_dummy_flow_raises(cli: Client, rec: Recorder) -> None:
    rec.reply(401, {"flows": [{"stages": ["m.login.recaptcha"]}], "session": "s"})
    with pytest.raises(ValueError, match=r"m\.login\.dummy"):
        await cli.register_dummy(ReqRegister(username="bob"))
    assert len(rec.requests) == 1


async def test_login_body(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"user_id": ME, "access_token": "new", "device_id": "DEV"})
    req = ReqLogin(type="m.login.password", identifier=UserIdentifier("alice"), password="pw")
    resp = await cli.login(req)
    sent = rec.only
    assert (sent.method, target(sent)) == ("POST", f"{V3}/login")
    assert body(sent) == {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
    }
    assert (resp.access_token, resp.device_id) == ("new", "DEV")
    assert cli.access_token == TOKEN  # login does not change credentials


@pytest.mark.parametrize(
    ("method_name", "path"), [("logout", "/logout"), ("logout_all", "/logout/all")]
)
async def test_logout_requests(cli: Client, rec: Recorder, method_name: str, path: str) -> None:
    resp = await getattr(cli, method_name)()
    req = rec.only
    assert (req.method, target(req)) == ("POST", V3 + path)
    assert req.content == b""
    assert_auth(req)
    assert resp.to_dict() == {}
    if method_name == "logout":
        assert isinstance(resp, RespLogout)


async def test_whoami(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"user_id": ME, "device_id": "D"})
    resp = await cli.whoami()
    assert (rec.only.method, target(rec.only)) == ("GET", f"{V3}/account/whoami")
    assert (resp.user_id, resp.device_id) == (ME, "D")


async def test_versions_uses_unprefixed_path(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"versions": ["v1.11", "v1.12"]})
    resp = await cli.versions()
    assert (rec.only.method, target(rec.only)) == ("GET", "/_matrix/client/versions")
    assert resp.supports("v1.12")


async def test_turn_server_empty_answer(cli: Client, rec: Recorder) -> None:
    resp = await cli.turn_server()
    assert (rec.only.method, target(rec.only)) == ("GET", f"{V3}/voip/turnServer")
    assert resp.uris == []


async def test_turn_server_credentials(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"username": "u", "password": "p", "ttl": 86400, "uris": ["turn:x"]})
    resp = await cli.turn_server()
    assert (resp.username, resp.ttl, resp.uris) == ("u", 86400, ["turn:x"])


# --- rooms ------------------------------------------------------------------------------------


async def test_create_room(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"room_id": ROOM})
    resp = await cli.create_room(ReqCreateRoom(preset="public_chat", name="Hall"))
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/createRoom")
    assert body(req) == {"preset": "public_chat", "name": "Hall"}
    assert resp.room_id == ROOM


async def test_join_room_by_alias_with_server_name(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"room_id": ROOM})
    resp = await cli.join_room("#a:b", server_name="x")
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/join/%23a:b?server_name=x&via=x")
    assert body(req) == {}
    assert resp.room_id == ROOM


async def test_join_room_without_server_sends_content(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"room_id": ROOM})
    await cli.join_room(ROOM, content={"reason": "hello"})
    req = rec.only
    assert target(req) == f"{V3}/join/{ROOM_ENC}"
    assert body(req) == {"reason": "hello"}


@pytest.mark.parametrize("action", ["leave", "forget"])
async def test_leave_and_forget_send_empty_object(cli: Client, rec: Recorder, action: str) -> None:
    await getattr(cli, f"{action}_room")(ROOM)
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/rooms/{ROOM_ENC}/{action}")
    assert body(req) == {}


async def test_invite_user(cli: Client, rec: Recorder) -> None:
    await cli.invite_user(ROOM, ReqInviteUser(user_id="@bob:example.org"))
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/rooms/{ROOM_ENC}/invite")
    assert body(req) == {"user_id": "@bob:example.org"}


async def test_invite_user_by_third_party(cli: Client, rec: Recorder) -> None:
    invite = ReqInvite3PID(id_server="id.example.org", medium="email", address="b@example.org")
    await cli.invite_user_by_third_party(ROOM, invite)
    req = rec.only
    assert target(req) == f"{V3}/rooms/{ROOM_ENC}/invite"
    assert body(req) == {
        "id_server": "id.example.org",
        "medium": "email",
        "address": "b@example.org",
    }


@pytest.mark.parametrize(
    ("method_name", "req_obj", "expected"),
    [
        (
            "kick_user",
            ReqKickUser("@bob:example.org", "rude"),
            {"user_id": "@bob:example.org", "reason": "rude"},
        ),
        ("ban_user", ReqBanUser("@bob:example.org"), {"user_id": "@bob:example.org"}),
        ("unban_user", ReqUnbanUser("@bob:example.org"), {"user_id": "@bob:example.org"}),
    ],
)
async def test_membership_actions(
    cli: Client, rec: Recorder, method_name: str, req_obj: Any, expected: dict[str, Any]
) -> None:
    await getattr(cli, method_name)(ROOM, req_obj)
    req = rec.only
    action = method_name.removesuffix("_user")
    assert (req.method, target(req)) == ("POST", f"{V3}/rooms/{ROOM_ENC}/{action}")
    assert body(req) == expected


async def test_membership_action_rejects_wrong_request_type(cli: Client, rec: Recorder) -> None:
    with pytest.raises(TypeError, match="ReqKickUser"):
        await cli.kick_user(ROOM, ReqBanUser("@bob:example.org"))  # type: ignore[arg-type]
    assert rec.requests == []


async def test_state_event_returns_content(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"membership": "join"})
    content = await cli.state_event(ROOM, "m.room.member", "@bob:example.org")
    req = rec.only
    assert (req.method, target(req)) == (
        "GET",
        f"{V3}/rooms/{ROOM_ENC}/state/m.room.member/@bob:example.org",
    )
    assert content == {"membership": "join"}


async def test_state_event_with_empty_state_key(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"name": "Hall"})
    assert await cli.state_event(ROOM, "m.room.name", "") == {"name": "Hall"}
    assert target(rec.only) == f"{V3}/rooms/{ROOM_ENC}/state/m.room.name"


async def test_state_key_with_slash_stays_one_segment(cli: Client, rec: Recorder) -> None:
    await cli.state_event(ROOM, "m.custom", "a/../b")
    assert target(rec.only) == f"{V3}/rooms/{ROOM_ENC}/state/m.custom/a%2F..%2Fb"


async def test_get_state_parses_events(cli: Client, rec: Recorder) -> None:
    rec.reply(
        200,
        [
            {
                "type": "m.room.name",
                "state_key": "",
                "sender": ME,
                "content": {"name": "Hall"},
                "event_id": "$1",
                "origin_server_ts": 5,
            }
        ],
    )
    events = await cli.get_state(ROOM)
    assert (rec.only.method, target(rec.only)) == ("GET", f"{V3}/rooms/{ROOM_ENC}/state")
    assert [(e.type, e.state_key, e.content, e.room_id) for e in events] == [
        ("m.room.name", "", {"name": "Hall"}, ROOM)
    ]


async def test_get_state_rejects_non_list(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"not": "a list"})
    with pytest.raises(ValueError, match="JSON array"):
        await cli.get_state(ROOM)


async def test_joined_members_and_rooms(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"joined": {ME: {"display_name": "Alice"}}})
    rec.reply(200, {"joined_rooms": [ROOM]})
    members = await cli.joined_members(ROOM)
    rooms = await cli.joined_rooms()
    first, second = rec.requests
    assert (first.method, target(first)) == ("GET", f"{V3}/rooms/{ROOM_ENC}/joined_members")
    assert (second.method, target(second)) == ("GET", f"{V3}/joined_rooms")
    assert members.joined[ME].display_name == "Alice"
    assert rooms.joined_rooms == [ROOM]


async def test_messages_omits_empty_from(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"start": "s1", "end": "e1", "chunk": []})
    resp = await cli.messages(ROOM, "", "", "b", 10)
    req = rec.only
    assert (req.method, target(req)) == (
        "GET",
        f"{V3}/rooms/{ROOM_ENC}/messages?dir=b&limit=10",
    )
    assert (resp.start, resp.end) == ("s1", "e1")


async def test_messages_with_all_parameters(cli: Client, rec: Recorder) -> None:
    await cli.messages(ROOM, "t1", "t2", "f", 3)
    query = parse_qs(urlsplit(str(rec.only.url)).query)
    assert query == {"dir": ["f"], "from": ["t1"], "to": ["t2"], "limit": ["3"]}


@pytest.mark.parametrize(("dir_", "limit"), [("x", 1), ("back", 1), ("b", -1)])
async def test_messages_rejects_bad_arguments(
    cli: Client, rec: Recorder, dir_: str, limit: int
) -> None:
    with pytest.raises(ValueError, match="messages"):
        await cli.messages(ROOM, "", "", dir_, limit)
    assert rec.requests == []


async def test_public_rooms_query(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"chunk": [{"room_id": ROOM, "num_joined_members": 2}], "next_batch": "n"})
    resp = await cli.public_rooms(5, "tok", "example.org")
    req = rec.only
    assert (req.method, target(req)) == (
        "GET",
        f"{V3}/publicRooms?limit=5&since=tok&server=example.org",
    )
    assert [r.room_id for r in resp.chunk] == [ROOM]
    assert resp.next_batch == "n"


async def test_public_rooms_defaults_send_no_query(cli: Client, rec: Recorder) -> None:
    await cli.public_rooms()
    assert target(rec.only) == f"{V3}/publicRooms"


async def test_public_rooms_filtered_posts_json(cli: Client, rec: Recorder) -> None:
    await cli.public_rooms_filtered(10, "tok", "example.org", "hall")
    req = rec.only
    assert (req.method, target(req)) == ("POST", f"{V3}/publicRooms?server=example.org")
    assert body(req) == {"limit": 10, "since": "tok", "filter": {"generic_search_term": "hall"}}


async def test_public_rooms_filtered_minimal(cli: Client, rec: Recorder) -> None:
    await cli.public_rooms_filtered(filter={"room_types": [None]})
    req = rec.only
    assert target(req) == f"{V3}/publicRooms"
    assert body(req) == {"filter": {"room_types": [None]}}


async def test_alias_calls(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {})
    rec.reply(200, {"room_id": ROOM, "servers": ["example.org"]})
    rec.reply(200, {"aliases": ["#hall:example.org"]})
    rec.reply(200, {})
    await cli.create_alias("#hall:example.org", ROOM)
    resolved = await cli.resolve_alias("#hall:example.org")
    aliases = await cli.get_aliases(ROOM)
    await cli.delete_alias("#hall:example.org")
    create, resolve, get, delete = rec.requests
    alias_path = f"{V3}/directory/room/%23hall:example.org"
    assert (create.method, target(create)) == ("PUT", alias_path)
    assert body(create) == {"room_id": ROOM}
    assert (resolve.method, target(resolve)) == ("GET", alias_path)
    assert (get.method, target(get)) == ("GET", f"{V3}/rooms/{ROOM_ENC}/aliases")
    assert (delete.method, target(delete)) == ("DELETE", alias_path)
    assert delete.content == b""
    assert (resolved.room_id, resolved.servers) == (ROOM, ["example.org"])
    assert aliases.aliases == ["#hall:example.org"]


# --- messages ---------------------------------------------------------------------------------


def send_txn(req: httpx.Request, event_type: str = "m.room.message") -> str:
    prefix = f"{V3}/rooms/{ROOM_ENC}/send/{event_type}/"
    path = target(req)
    assert path.startswith(prefix), path
    txn = path.removeprefix(prefix)
    assert txn
    assert "/" not in txn
    return txn


async def test_send_message_event_uses_fresh_txn_ids(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"event_id": "$1"})
    rec.reply(200, {"event_id": "$2"})
    first = await cli.send_message_event(ROOM, "m.custom", {"a": 1})
    second = await cli.send_message_event(ROOM, "m.custom", {"a": 2})
    assert (first.event_id, second.event_id) == ("$1", "$2")
    r1, r2 = rec.requests
    assert r1.method == "PUT"
    assert body(r1) == {"a": 1}
    assert send_txn(r1, "m.custom") != send_txn(r2, "m.custom")
    assert_auth(r1)


async def test_send_message_event_with_given_txn_id(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"event_id": "$1"})
    await cli.send_message_event(ROOM, "m.room.message", {"body": "x"}, txn_id="my-txn")
    assert send_txn(rec.only) == "my-txn"


async def test_send_retry_reuses_the_txn_id(cli: Client, rec: Recorder) -> None:
    rec.reply(503, {"errcode": "M_UNKNOWN", "error": "busy"})
    rec.reply(200, {"event_id": "$1"})
    resp = await cli.send_text(ROOM, "hi")
    assert resp.event_id == "$1"
    first, second = rec.requests
    assert send_txn(first) == send_txn(second)
    assert body(first) == body(second) == {"msgtype": "m.text", "body": "hi"}


async def test_send_message_event_accepts_content_dataclass(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"event_id": "$1"})
    await cli.send_message_event(
        ROOM, "m.room.message", ImageMessage(body="a.png", url="mxc://x/y")
    )
    assert body(rec.only) == {"msgtype": "m.image", "body": "a.png", "url": "mxc://x/y"}


async def test_send_message_event_rejects_bad_content(cli: Client, rec: Recorder) -> None:
    with pytest.raises(TypeError, match="content"):
        await cli.send_message_event(ROOM, "m.room.message", "text")  # type: ignore[arg-type]
    assert rec.requests == []


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("send_text", "hi"), {"msgtype": "m.text", "body": "hi"}),
        (("send_notice", "beep"), {"msgtype": "m.notice", "body": "beep"}),
        (
            ("send_formatted_text", "bold", "<b>bold</b>"),
            {
                "msgtype": "m.text",
                "body": "bold",
                "format": "org.matrix.custom.html",
                "formatted_body": "<b>bold</b>",
            },
        ),
        (
            ("send_image", "cat.png", "mxc://example.org/cat"),
            {"msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/cat"},
        ),
        (
            ("send_video", "clip.mp4", "mxc://example.org/clip"),
            {"msgtype": "m.video", "body": "clip.mp4", "url": "mxc://example.org/clip"},
        ),
    ],
)
async def test_message_helpers(
    cli: Client, rec: Recorder, call: tuple[str, ...], expected: dict[str, Any]
) -> None:
    rec.reply(200, {"event_id": "$e"})
    name, *args = call
    resp = await getattr(cli, name)(ROOM, *args)
    assert resp.event_id == "$e"
    req = rec.only
    assert req.method == "PUT"
    send_txn(req)
    assert body(req) == expected


async def test_send_state_event(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"event_id": "$s1"})
    rec.reply(200, {"event_id": "$s2"})
    await cli.send_state_event(ROOM, "m.room.topic", "", {"topic": "t"})
    await cli.send_state_event(ROOM, "m.custom", "key", {"k": 1})
    first, second = rec.requests
    assert (first.method, target(first)) == ("PUT", f"{V3}/rooms/{ROOM_ENC}/state/m.room.topic")
    assert body(first) == {"topic": "t"}
    assert target(second) == f"{V3}/rooms/{ROOM_ENC}/state/m.custom/key"


async def test_redact_event(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"event_id": "$r1"})
    rec.reply(200, {"event_id": "$r2"})
    await cli.redact_event(ROOM, "$ev:example.org", ReqRedact(reason="spam"))
    await cli.redact_event(ROOM, "$ev:example.org", ReqRedact())
    first, second = rec.requests
    prefix = f"{V3}/rooms/{ROOM_ENC}/redact/$ev:example.org/"
    assert first.method == "PUT"
    assert target(first).startswith(prefix)
    assert target(first) != target(second)
    assert body(first) == {"reason": "spam"}
    assert body(second) == {}


async def test_mark_read_posts_empty_object(cli: Client, rec: Recorder) -> None:
    await cli.mark_read(ROOM, "$ev:example.org")
    req = rec.only
    assert (req.method, target(req)) == (
        "POST",
        f"{V3}/rooms/{ROOM_ENC}/receipt/m.read/$ev:example.org",
    )
    assert body(req) == {}


async def test_user_typing(cli: Client, rec: Recorder) -> None:
    await cli.user_typing(ROOM, True, 5000)
    await cli.user_typing(ROOM, False, 0)
    start, stop = rec.requests
    assert (start.method, target(start)) == ("PUT", f"{V3}/rooms/{ROOM_ENC}/typing/{ME}")
    assert body(start) == {"typing": True, "timeout": 5000}
    assert body(stop) == {"typing": False}


async def test_user_typing_rejects_negative_timeout(cli: Client, rec: Recorder) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await cli.user_typing(ROOM, True, -1)
    assert rec.requests == []


# --- identity assertion -----------------------------------------------------------------------


async def test_as_user_asserts_identity_everywhere(cli: Client, rec: Recorder) -> None:
    puppet = cli.as_user("@_p_bob:example.org")
    rec.reply(200, {"event_id": "$1"})
    await puppet.send_text(ROOM, "hi")
    await puppet.user_typing(ROOM, True, 1000)
    await puppet.set_display_name("Bob")
    send, typing, profile = rec.requests
    for req in rec.requests:
        assert_auth(req)
        assert parse_qs(urlsplit(str(req.url)).query) == {"user_id": ["@_p_bob:example.org"]}
    assert send_txn(send)
    assert target(typing).startswith(f"{V3}/rooms/{ROOM_ENC}/typing/@_p_bob:example.org?")
    assert target(profile).startswith(f"{V3}/profile/@_p_bob:example.org/displayname?")


# --- profile ----------------------------------------------------------------------------------


async def test_display_names(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"displayname": "Bob"})
    rec.reply(200, {})
    other = await cli.get_display_name("@bob:example.org")
    own = await cli.get_own_display_name()
    await cli.set_display_name("Alice A.")
    get_other, get_own, put = rec.requests
    assert (get_other.method, target(get_other)) == (
        "GET",
        f"{V3}/profile/@bob:example.org/displayname",
    )
    assert target(get_own) == f"{V3}/profile/{ME}/displayname"
    assert (put.method, target(put)) == ("PUT", f"{V3}/profile/{ME}/displayname")
    assert body(put) == {"displayname": "Alice A."}
    assert other.display_name == "Bob"
    assert own.display_name is None


async def test_avatar_url(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"avatar_url": "mxc://example.org/a"})
    rec.reply(200, {})
    assert await cli.get_avatar_url() == "mxc://example.org/a"
    assert await cli.get_avatar_url() == ""
    await cli.set_avatar_url("mxc://example.org/b")
    get, _, put = rec.requests
    assert (get.method, target(get)) == ("GET", f"{V3}/profile/{ME}/avatar_url")
    assert (put.method, target(put)) == ("PUT", f"{V3}/profile/{ME}/avatar_url")
    assert body(put) == {"avatar_url": "mxc://example.org/b"}


async def test_status(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"presence": "online", "status_msg": "hi", "currently_active": True})
    rec.reply(200, {"presence": "unavailable"})
    other = await cli.get_status("@bob:example.org")
    own = await cli.get_own_status()
    await cli.set_status("online", "around")
    await cli.set_status("offline")
    get_other, get_own, put1, put2 = rec.requests
    assert (get_other.method, target(get_other)) == (
        "GET",
        f"{V3}/presence/@bob:example.org/status",
    )
    assert target(get_own) == f"{V3}/presence/{ME}/status"
    assert (put1.method, target(put1)) == ("PUT", f"{V3}/presence/{ME}/status")
    assert body(put1) == {"presence": "online", "status_msg": "around"}
    assert body(put2) == {"presence": "offline"}
    assert (other.presence, other.status_msg, other.currently_active) == ("online", "hi", True)
    assert own.presence == "unavailable"


async def test_set_status_rejects_unknown_presence(cli: Client, rec: Recorder) -> None:
    with pytest.raises(ValueError, match="presence"):
        await cli.set_status("busy")
    assert rec.requests == []


async def test_own_methods_need_a_user_id(rec: Recorder) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(rec.handler)) as http:
        anonymous = Client(HS, http=http)
        with pytest.raises(ValueError, match="no user ID"):
            await anonymous.get_own_display_name()
        with pytest.raises(ValueError, match="no user ID"):
            await anonymous.user_typing(ROOM, True, 100)
    assert rec.requests == []


# --- media ------------------------------------------------------------------------------------


async def test_upload_to_content_repo(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"content_uri": "mxc://example.org/abc"})
    resp = await cli.upload_to_content_repo(b"\x89PNG data", "image/png", 9)
    req = rec.only
    assert (req.method, target(req)) == ("POST", "/_matrix/media/v3/upload")
    assert req.headers["Content-Type"] == "image/png"
    assert req.headers["Content-Length"] == "9"
    assert req.content == b"\x89PNG data"
    assert_auth(req)
    assert resp.content_uri == "mxc://example.org/abc"


async def test_upload_as_puppet_with_filename(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"content_uri": "mxc://example.org/abc"})
    await cli.as_user("@_p_x:example.org").upload_to_content_repo(b"x", "", filename="a b.txt")
    req = rec.only
    assert urlsplit(str(req.url)).path == "/_matrix/media/v3/upload"
    assert parse_qs(urlsplit(str(req.url)).query) == {
        "user_id": ["@_p_x:example.org"],
        "filename": ["a b.txt"],
    }
    assert target(req).endswith("&filename=a%20b.txt")
    assert req.headers["Content-Type"] == "application/octet-stream"


async def test_upload_length_mismatch_is_rejected(cli: Client, rec: Recorder) -> None:
    with pytest.raises(ValueError, match="content_length 5"):
        await cli.upload_to_content_repo(b"abc", "text/plain", 5)
    assert rec.requests == []


async def test_upload_link_never_sends_credentials(cli: Client, rec: Recorder) -> None:
    rec.reply(200, b"file bytes")
    rec.reply(200, {"content_uri": "mxc://example.org/f"})
    resp = await cli.upload_link("http://127.0.0.1:9/files/f.bin")
    download, upload = rec.requests
    assert (download.method, str(download.url)) == ("GET", "http://127.0.0.1:9/files/f.bin")
    assert "Authorization" not in download.headers
    assert target(upload) == "/_matrix/media/v3/upload"
    assert upload.content == b"file bytes"
    assert resp.content_uri == "mxc://example.org/f"


@pytest.mark.parametrize("link", ["ftp://127.0.0.1/x", "file:///etc/passwd", "/relative"])
async def test_upload_link_rejects_non_http_links(cli: Client, rec: Recorder, link: str) -> None:
    with pytest.raises(ValueError, match="http"):
        await cli.upload_link(link)
    assert rec.requests == []


# --- appservice -------------------------------------------------------------------------------


async def test_ping(cli: Client, rec: Recorder) -> None:
    rec.reply(200, {"duration_ms": 12})
    rec.reply(200, {"duration_ms": 3})
    resp = await cli.ping("my_bridge", "txn-1")
    await cli.ping("my_bridge")
    first, second = rec.requests
    assert (first.method, target(first)) == ("POST", "/_matrix/client/v1/appservice/my_bridge/ping")
    assert body(first) == {"transaction_id": "txn-1"}
    assert body(second) == {}
    assert resp.duration_ms == 12


# --- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("join_room", ("",)),
        ("leave_room", ("",)),
        ("send_text", ("", "x")),
        ("state_event", (ROOM, "")),
        ("get_display_name", ("",)),
        ("resolve_alias", ("",)),
        ("ping", ("",)),
    ],
)
async def test_empty_ids_are_rejected_before_sending(
    cli: Client, rec: Recorder, name: str, args: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        await getattr(cli, name)(*args)
    assert rec.requests == []
