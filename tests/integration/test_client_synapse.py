"""Every Client endpoint method against a real Synapse (fixture ``synapse``).

Each test registers its own users, so tests are independent of each other's rooms and profiles.
Loopback servers (tests.helpers.loopback) stand in for remote media hosts and the appservice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appservice.api import (
    ReqBanUser,
    ReqCreateRoom,
    ReqInviteUser,
    ReqKickUser,
    ReqLogin,
    ReqRedact,
    ReqRegister,
    ReqUnbanUser,
    RespSync,
    UserIdentifier,
)
from appservice.client import Client, RetryPolicy
from appservice.errors import HTTPError
from appservice.events import Event
from appservice.testing import SynapseServer
from tests.helpers.loopback import free_port, serve

T = TypeVar("T")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, limit: float = 15.0) -> T:
    """Poll ``probe`` until it returns something other than None (homeserver work is async)."""
    deadline = time.monotonic() + limit
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.1)


def errcode(err: HTTPError) -> str | None:
    return None if err.wrapped_error is None else err.wrapped_error.errcode


@pytest.fixture
async def alice(synapse: SynapseServer) -> AsyncIterator[Client]:
    user = await synapse.register_user()
    async with Client(synapse.url, user.user_id, user.access_token) as client:
        yield client


@pytest.fixture
async def bob(synapse: SynapseServer) -> AsyncIterator[Client]:
    user = await synapse.register_user()
    async with Client(synapse.url, user.user_id, user.access_token) as client:
        yield client


@pytest.fixture
async def appservice(synapse: SynapseServer) -> AsyncIterator[Client]:
    async with Client(synapse.url, synapse.sender_user_id, synapse.as_token) as client:
        yield client


async def public_room(client: Client, **kwargs: Any) -> str:
    return (await client.create_room(ReqCreateRoom(preset="public_chat", **kwargs))).room_id


async def download(client: Client, mxc: str) -> httpx.Response:
    """Fetch an mxc:// URI through the authenticated media API."""
    assert mxc.startswith("mxc://")
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    url = client.build_base_url("_matrix", "client", "v1", "media", "download", server, media_id)
    headers = {"Authorization": f"Bearer {client.access_token}"}
    return await client.http.get(url, headers=headers)


async def sync_once(client: Client, since: str = "") -> RespSync:
    return await client.sync_request(0, since, "", False, "")


# --- account ----------------------------------------------------------------------------------


async def test_register_dummy_then_login_logout_and_logout_all(synapse: SynapseServer) -> None:
    async with Client(synapse.url) as anon:
        localpart = unique("dummy")
        registered = await anon.register_dummy(ReqRegister(username=localpart, password="pw-1"))
        assert registered.user_id == f"@{localpart}:{synapse.server_name}"
        assert registered.access_token

        login = ReqLogin(
            type="m.login.password", identifier=UserIdentifier(localpart), password="pw-1"
        )
        first = await anon.login(login)
        second = await anon.login(login)
        assert first.user_id == registered.user_id
        assert len({registered.access_token, first.access_token, second.access_token}) == 3
        assert anon.access_token == ""  # login leaves credentials to the caller

    sessions = {
        name: Client(synapse.url, registered.user_id, token)
        for name, token in (
            ("registered", registered.access_token or ""),
            ("first", first.access_token),
            ("second", second.access_token),
        )
    }
    try:
        assert (await sessions["first"].whoami()).user_id == registered.user_id
        await sessions["first"].logout()
        with pytest.raises(HTTPError) as info:
            await sessions["first"].whoami()
        assert (info.value.code, errcode(info.value)) == (401, "M_UNKNOWN_TOKEN")
        assert (await sessions["second"].whoami()).device_id == second.device_id

        await sessions["second"].logout_all()
        for name in ("second", "registered"):
            with pytest.raises(HTTPError) as info:
                await sessions[name].whoami()
            assert errcode(info.value) == "M_UNKNOWN_TOKEN", name
    finally:
        for client in sessions.values():
            await client.aclose()


async def test_register_reports_the_uia_challenge(synapse: SynapseServer) -> None:
    async with Client(synapse.url) as anon:
        resp, uia = await anon.register(ReqRegister(username=unique("uia"), password="pw"))
    assert resp is None
    assert uia is not None
    assert uia.session
    assert uia.has_single_stage_flow("m.login.dummy")


async def test_register_taken_name_raises(synapse: SynapseServer, alice: Client) -> None:
    localpart = alice.user_id[1:].split(":")[0]
    async with Client(synapse.url) as anon:
        with pytest.raises(HTTPError) as info:
            await anon.register_dummy(ReqRegister(username=localpart, password="pw"))
    assert errcode(info.value) == "M_USER_IN_USE"


async def test_register_guest(synapse: SynapseServer) -> None:
    async with Client(synapse.url) as anon:
        resp, uia = await anon.register_guest(ReqRegister())
    assert uia is None
    assert resp is not None
    assert resp.access_token
    async with Client(synapse.url, resp.user_id, resp.access_token) as guest:
        who = await guest.whoami()
    assert who.user_id == resp.user_id
    assert who.is_guest


async def test_whoami_and_versions(alice: Client) -> None:
    who = await alice.whoami()
    assert who.user_id == alice.user_id
    assert who.device_id
    versions = await alice.versions()
    assert any(v.startswith("v1.") for v in versions.versions), versions.versions


async def test_turn_server_without_turn_configured(alice: Client) -> None:
    # Synapse without turn_uris answers 200 {}: no URIs and no credentials.
    resp = await alice.turn_server()
    assert (resp.uris, resp.username, resp.password) == ([], "", "")


# --- rooms and membership ---------------------------------------------------------------------


async def test_create_join_leave_forget(alice: Client, bob: Client, synapse: SynapseServer) -> None:
    alias_local = unique("hall")
    room_id = await public_room(alice, room_alias_name=alias_local, name="Hall")
    alias = f"#{alias_local}:{synapse.server_name}"

    joined = await bob.join_room(alias, server_name=synapse.server_name)
    assert joined.room_id == room_id
    assert room_id in (await bob.joined_rooms()).joined_rooms
    members = await alice.joined_members(room_id)
    assert set(members.joined) == {alice.user_id, bob.user_id}
    assert (await alice.state_event(room_id, "m.room.name", "")) == {"name": "Hall"}

    await bob.leave_room(room_id)
    assert room_id not in (await bob.joined_rooms()).joined_rooms
    member = await alice.state_event(room_id, "m.room.member", bob.user_id)
    assert member["membership"] == "leave"

    await bob.forget_room(room_id)
    with pytest.raises(HTTPError) as info:
        await bob.state_event(room_id, "m.room.name", "")
    assert info.value.code == 403


async def test_invite_kick_ban_unban(alice: Client, bob: Client) -> None:
    room_id = (await alice.create_room(ReqCreateRoom(preset="private_chat"))).room_id

    async def membership() -> dict[str, Any]:
        return await alice.state_event(room_id, "m.room.member", bob.user_id)

    with pytest.raises(HTTPError) as info:
        await bob.join_room(room_id)
    assert errcode(info.value) == "M_FORBIDDEN"

    await alice.invite_user(room_id, ReqInviteUser(bob.user_id))
    assert (await membership())["membership"] == "invite"
    await bob.join_room(room_id)
    assert (await membership())["membership"] == "join"

    await alice.kick_user(room_id, ReqKickUser(bob.user_id, reason="too loud"))
    kicked = await membership()
    assert (kicked["membership"], kicked.get("reason")) == ("leave", "too loud")

    await alice.ban_user(room_id, ReqBanUser(bob.user_id))
    assert (await membership())["membership"] == "ban"
    with pytest.raises(HTTPError) as info:  # a banned user cannot be invited back
        await alice.invite_user(room_id, ReqInviteUser(bob.user_id))
    assert info.value.code == 403

    await alice.unban_user(room_id, ReqUnbanUser(bob.user_id))
    assert (await membership())["membership"] == "leave"
    await alice.invite_user(room_id, ReqInviteUser(bob.user_id))
    assert (await membership())["membership"] == "invite"


async def test_state_events_and_get_state(alice: Client) -> None:
    room_id = await public_room(alice)
    topic = await alice.send_state_event(room_id, "m.room.topic", "", {"topic": "weather"})
    custom = await alice.send_state_event(room_id, "org.example.config", "a/b", {"v": 1})
    assert topic.event_id.startswith("$")
    assert await alice.state_event(room_id, "m.room.topic") == {"topic": "weather"}
    assert await alice.state_event(room_id, "org.example.config", "a/b") == {"v": 1}
    with pytest.raises(HTTPError) as info:
        await alice.state_event(room_id, "org.example.config", "missing")
    assert (info.value.code, errcode(info.value)) == (404, "M_NOT_FOUND")

    state = {(e.type, e.state_key): e for e in await alice.get_state(room_id)}
    assert state[("m.room.topic", "")].content == {"topic": "weather"}
    assert state[("org.example.config", "a/b")].id == custom.event_id
    assert state[("m.room.member", alice.user_id)].content["membership"] == "join"
    assert all(e.room_id == room_id for e in state.values())


# --- sending ----------------------------------------------------------------------------------


async def test_send_helpers_produce_the_right_contents(alice: Client, bob: Client) -> None:
    room_id = await public_room(alice)
    await bob.join_room(room_id)
    sent = {
        (await alice.send_text(room_id, "plain")).event_id: {"msgtype": "m.text", "body": "plain"},
        (await alice.send_notice(room_id, "bot says")).event_id: {
            "msgtype": "m.notice",
            "body": "bot says",
        },
        (await alice.send_formatted_text(room_id, "bold", "<b>bold</b>")).event_id: {
            "msgtype": "m.text",
            "body": "bold",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>bold</b>",
        },
        (await alice.send_image(room_id, "cat.png", "mxc://localhost/cat")).event_id: {
            "msgtype": "m.image",
            "body": "cat.png",
            "url": "mxc://localhost/cat",
        },
        (await alice.send_video(room_id, "clip.mp4", "mxc://localhost/clip")).event_id: {
            "msgtype": "m.video",
            "body": "clip.mp4",
            "url": "mxc://localhost/clip",
        },
        (await alice.send_message_event(room_id, "org.example.ping", {"n": 1})).event_id: {"n": 1},
    }
    page = await bob.messages(room_id, "", "", "b", 20)
    seen = {e.id: e for e in page.chunk}
    for event_id, content in sent.items():
        assert seen[event_id].content == content
        assert seen[event_id].sender == alice.user_id


async def test_same_txn_id_sends_once(alice: Client) -> None:
    room_id = await public_room(alice)
    first = await alice.send_message_event(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}, "fixed-1"
    )
    again = await alice.send_message_event(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "x"}, "fixed-1"
    )
    assert first.event_id == again.event_id
    page = await alice.messages(room_id, "", "", "b", 10)
    assert [e.id for e in page.chunk if e.type == "m.room.message"] == [first.event_id]


async def test_redact_event(alice: Client) -> None:
    room_id = await public_room(alice)
    target = await alice.send_text(room_id, "regrettable")
    redaction = await alice.redact_event(room_id, target.event_id, ReqRedact(reason="oops"))
    page = await alice.messages(room_id, "", "", "b", 10)
    events = {e.id: e for e in page.chunk}
    redacted = events[target.event_id]
    assert redacted.content == {}
    assert redacted.unsigned["redacted_because"]["event_id"] == redaction.event_id
    assert events[redaction.event_id].content.get("reason") == "oops"


async def test_messages_paginates_both_ways(alice: Client) -> None:
    room_id = await public_room(alice)
    bodies = [f"m{i}" for i in range(1, 6)]
    for text in bodies:
        await alice.send_text(room_id, text)

    def texts(events: list[Event]) -> list[str | None]:
        return [e.body() for e in events]

    page1 = await alice.messages(room_id, "", "", "b", 2)
    assert texts(page1.chunk) == ["m5", "m4"]
    assert page1.end
    page2 = await alice.messages(room_id, page1.end, "", "b", 2)
    assert texts(page2.chunk) == ["m3", "m2"]
    assert page2.start == page1.end
    assert page2.end
    assert page2.end != page1.end

    forward = await alice.messages(room_id, page2.end, "", "f", 2)
    assert texts(forward.chunk) == ["m2", "m3"]
    assert forward.end
    forward2 = await alice.messages(room_id, forward.end, "", "f", 2)
    assert texts(forward2.chunk) == ["m4", "m5"]


async def test_typing_and_read_receipts_reach_other_members(alice: Client, bob: Client) -> None:
    room_id = await public_room(alice)
    await bob.join_room(room_id)
    latest = await bob.send_text(room_id, "read me")
    since = (await sync_once(bob)).next_batch

    await alice.user_typing(room_id, True, 20000)
    await alice.mark_read(room_id, latest.event_id)

    seen: dict[str, Event] = {}

    async def ephemeral(*types: str) -> dict[str, Event] | None:
        nonlocal since
        resp = await sync_once(bob, since)
        since = resp.next_batch
        room = resp.rooms.join.get(room_id)
        if room is not None:
            seen.update({e.type: e for e in room.ephemeral.events})
        return seen if set(types) <= set(seen) else None

    found = await eventually(lambda: ephemeral("m.typing", "m.receipt"), "typing and receipt")
    assert alice.user_id in found["m.typing"].content["user_ids"]
    assert alice.user_id in found["m.receipt"].content[latest.event_id]["m.read"]

    seen.clear()
    await alice.user_typing(room_id, False, 0)
    found = await eventually(lambda: ephemeral("m.typing"), "alice to stop typing")
    assert alice.user_id not in found["m.typing"].content["user_ids"]


# --- profile and presence ---------------------------------------------------------------------


async def test_profile_display_name_and_avatar(alice: Client, bob: Client) -> None:
    await alice.set_display_name("Alice Liddell")
    assert (await alice.get_own_display_name()).display_name == "Alice Liddell"
    assert (await bob.get_display_name(alice.user_id)).display_name == "Alice Liddell"

    assert await alice.get_avatar_url() == ""
    uri = (await alice.upload_to_content_repo(b"avatar-bytes", "image/png", 12)).content_uri
    await alice.set_avatar_url(uri)
    assert await alice.get_avatar_url() == uri


async def test_presence(alice: Client, bob: Client) -> None:
    await bob.join_room(await public_room(alice))  # presence is visible to room-mates
    await alice.set_status("unavailable", "at lunch")
    own = await alice.get_own_status()
    assert (own.presence, own.status_msg) == ("unavailable", "at lunch")
    await alice.set_status("online")
    seen = await bob.get_status(alice.user_id)
    assert seen.presence == "online"
    assert seen.status_msg is None


# --- media ------------------------------------------------------------------------------------


async def test_upload_then_download(alice: Client) -> None:
    data = secrets.token_bytes(300)
    resp = await alice.upload_to_content_repo(data, "application/x-test", len(data))
    assert resp.content_uri.startswith("mxc://")
    got = await download(alice, resp.content_uri)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["Content-Type"].startswith("application/x-test")


def media_host(payload: bytes) -> Starlette:
    async def file(request: Request) -> Response:
        return Response(payload, media_type="image/png")

    async def moved(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": "/file.png"})

    async def gone(request: Request) -> Response:
        return Response("<h1>Not here</h1>", status_code=404, media_type="text/html")

    async def auth_echo(request: Request) -> Response:
        return JSONResponse({"authorization": request.headers.get("authorization")})

    return Starlette(
        routes=[
            Route("/file.png", file),
            Route("/moved", moved),
            Route("/gone", gone),
            Route("/echo", auth_echo),
        ]
    )


async def test_upload_link_from_a_real_server(alice: Client) -> None:
    payload = b"\x89PNG\r\n" + secrets.token_bytes(64)
    async with serve(media_host(payload)) as base:
        resp = await alice.upload_link(f"{base}/moved")
        echoed = await alice.upload_link(f"{base}/echo")
        with pytest.raises(HTTPError) as info:
            await alice.upload_link(f"{base}/gone?sig=hush")
    got = await download(alice, resp.content_uri)
    assert got.content == payload
    assert got.headers["Content-Type"].startswith("image/png")
    # the remote host never sees the homeserver token
    assert (await download(alice, echoed.content_uri)).json() == {"authorization": None}
    assert info.value.code == 404
    assert b"Not here" in info.value.contents
    assert "404" in str(info.value)
    assert "/gone" in str(info.value)
    assert "hush" not in str(info.value)  # a signed link's query never reaches errors or logs


async def test_upload_link_to_a_closed_port(alice: Client) -> None:
    with pytest.raises(HTTPError) as info:
        await alice.upload_link(f"http://127.0.0.1:{free_port()}/x")
    assert info.value.code == 0


# --- directory --------------------------------------------------------------------------------


async def test_public_rooms_listing_and_filter(alice: Client, bob: Client) -> None:
    term = unique("searchable")
    room_id = await public_room(alice, visibility="public", name=f"Room {term}")

    async def listed() -> str | None:
        resp = await bob.public_rooms_filtered(10, "", "", term)
        ids = [r.room_id for r in resp.chunk]
        return ids[0] if ids else None

    assert await eventually(listed, "the room in the filtered directory") == room_id
    page = await bob.public_rooms(500, "", "")
    entry = next(r for r in page.chunk if r.room_id == room_id)
    assert entry.name == f"Room {term}"
    assert entry.num_joined_members == 1
    assert (await bob.public_rooms_filtered(10, "", "", unique("nothing"))).chunk == []


async def test_aliases(alice: Client, bob: Client, synapse: SynapseServer) -> None:
    room_id = await public_room(alice)
    alias = f"#{unique('alias')}:{synapse.server_name}"
    await alice.create_alias(alias, room_id)
    resolved = await bob.resolve_alias(alias)
    assert resolved.room_id == room_id
    assert synapse.server_name in resolved.servers
    assert alias in (await alice.get_aliases(room_id)).aliases

    await alice.delete_alias(alias)
    with pytest.raises(HTTPError) as info:
        await bob.resolve_alias(alias)
    assert (info.value.code, errcode(info.value)) == (404, "M_NOT_FOUND")


# --- appservice: identity assertion and ping --------------------------------------------------


async def test_appservice_puppet_sends_as_itself(
    synapse: SynapseServer, appservice: Client, alice: Client
) -> None:
    localpart = f"{synapse.user_namespace_prefix}{unique('puppet')}"
    resp, uia = await appservice.register(
        ReqRegister(username=localpart, type="m.login.application_service", inhibit_login=True)
    )
    assert uia is None
    assert resp is not None
    puppet_id = f"@{localpart}:{synapse.server_name}"
    assert resp.user_id == puppet_id
    assert resp.access_token is None  # inhibit_login

    room_id = await public_room(alice)
    puppet = appservice.as_user(puppet_id)
    assert (await puppet.whoami()).user_id == puppet_id
    await puppet.join_room(room_id)
    await puppet.set_display_name("Puppet")
    sent = await puppet.send_text(room_id, "hello from the bridge")

    page = await alice.messages(room_id, "", "", "b", 5)
    event = next(e for e in page.chunk if e.id == sent.event_id)
    assert event.sender == puppet_id
    assert event.body() == "hello from the bridge"
    assert (await alice.get_display_name(puppet_id)).display_name == "Puppet"


async def test_appservice_cannot_act_as_unregistered_puppet(
    synapse: SynapseServer, appservice: Client
) -> None:
    ghost = appservice.as_user(f"@{synapse.user_namespace_prefix}{unique('ghost')}:localhost")
    with pytest.raises(HTTPError) as info:
        await ghost.whoami()
    assert info.value.code == 403


def fake_appservice(pings: list[dict[str, Any]], hs_token: str) -> Starlette:
    async def ping(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {hs_token}":
            return JSONResponse({"errcode": "M_FORBIDDEN"}, status_code=403)
        pings.append(await request.json())
        return JSONResponse({})

    async def transactions(request: Request) -> Response:
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/_matrix/app/v1/ping", ping, methods=["POST"]),
            Route("/_matrix/app/v1/transactions/{txn}", transactions, methods=["PUT"]),
        ]
    )


async def test_ping_reaches_the_appservice(synapse: SynapseServer, appservice: Client) -> None:
    # Synapse answers 502 M_CONNECTION_FAILED while the appservice is down; the client's
    # default policy would retry that 502 for ~15 s, so this probe does not retry.
    async with Client(
        synapse.url, synapse.sender_user_id, synapse.as_token, retry=RetryPolicy.no_retries()
    ) as once:
        with pytest.raises(HTTPError) as info:
            await once.ping(synapse.appservice_id, "down-1")
    assert (info.value.code, errcode(info.value)) == (502, "M_CONNECTION_FAILED")

    pings: list[dict[str, Any]] = []
    app = fake_appservice(pings, synapse.hs_token)
    async with serve(app, port=synapse.appservice_port):
        resp = await appservice.ping(synapse.appservice_id, "up-1")
    assert resp.duration_ms >= 0
    assert {"transaction_id": "up-1"} in pings
