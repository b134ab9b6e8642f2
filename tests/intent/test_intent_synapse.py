"""Intent against a real Synapse: request costs, the bot-invite fallback, ``ts``, relations.

Every HTTP request the intents make goes through one httpx pool whose event hooks record it, so
the tests count exactly what reaches the homeserver. Rooms are made by normal users (``alice``).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from appservice.api import ReqCreateRoom, ReqKickUser
from appservice.client import Client
from appservice.errors import HTTPError
from appservice.intent import Intent
from appservice.registration import Registration
from appservice.state_cache import Member, MemoryStateCache, StateCache
from appservice.testing import SynapseServer

T = TypeVar("T")


@dataclass
class Wire:
    """What went over the shared pool: one (method, path) per request, statuses per answer."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def clear(self) -> None:
        self.requests.clear()
        self.statuses.clear()

    def kinds(self) -> list[str]:
        """Each request as a short name: register, join, send, invite, ..."""
        out = []
        for method, path in self.requests:
            parts = path.split("/")
            if parts[-1] == "register":
                out.append("register")
            elif "join" in parts:
                out.append("join")
            elif "send" in parts:
                out.append("send")
            else:
                out.append(f"{method} {parts[-1]}")
        return out


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Wire, httpx.AsyncClient]]:
    seen = Wire()

    async def on_request(request: httpx.Request) -> None:
        seen.requests.append((request.method, request.url.path))

    async def on_response(response: httpx.Response) -> None:
        seen.statuses.append(response.status_code)

    hooks: dict[str, list[Callable[[Any], Awaitable[None]]]] = {
        "request": [on_request],
        "response": [on_response],
    }
    async with httpx.AsyncClient(timeout=30.0, event_hooks=hooks) as http:
        yield seen, http


@pytest.fixture
def registration(synapse: SynapseServer) -> Registration:
    return Registration.load(synapse.registration_path, server_name=synapse.server_name)


def make_bot(
    synapse: SynapseServer, http: httpx.AsyncClient, state: StateCache, reg: Registration
) -> Intent:
    client = Client(synapse.url, synapse.sender_user_id, synapse.as_token, http=http)
    return Intent.for_bot(client, state, registration=reg)


@pytest.fixture
def bot(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], registration: Registration
) -> Intent:
    return make_bot(synapse, wire[1], MemoryStateCache(), registration)


@pytest.fixture
async def alice(synapse: SynapseServer) -> AsyncIterator[Client]:
    user = await synapse.register_user()
    async with Client(synapse.url, user.user_id, user.access_token) as client:
        yield client


def new_puppet_id(synapse: SynapseServer) -> str:
    return synapse.user_id(f"{synapse.user_namespace_prefix}{secrets.token_hex(5)}")


async def public_room(alice: Client, **extra: Any) -> str:
    return (await alice.create_room(ReqCreateRoom(preset="public_chat", **extra))).room_id


async def get_event(client: Client, room_id: str, event_id: str) -> dict[str, Any]:
    data = await client.make_request("GET", client.build_url("rooms", room_id, "event", event_id))
    assert isinstance(data, dict)
    return data


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, limit: float = 15.0) -> T:
    deadline = time.monotonic() + limit
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.1)


# --- request costs --------------------------------------------------------------------------


async def test_first_message_costs_three_requests_then_one(
    synapse: SynapseServer,
    wire: tuple[Wire, httpx.AsyncClient],
    registration: Registration,
    alice: Client,
    state_cache: StateCache,
) -> None:
    seen, http = wire
    bot = make_bot(synapse, http, state_cache, registration)
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))

    first = await puppet.send_text(room, "hello")
    assert seen.kinds() == ["register", "join", "send"]
    assert seen.statuses == [200, 200, 200]
    seen.clear()
    second = await puppet.send_text(room, "again")
    assert seen.kinds() == ["send"]  # exactly one request in the steady state
    assert await state_cache.membership(room, puppet.user_id) == "join"

    for event_id, body in ((first, "hello"), (second, "again")):
        event = await get_event(alice, room, event_id)
        assert event["sender"] == puppet.user_id
        assert event["content"] == {"msgtype": "m.text", "body": body}


async def test_user_in_use_after_restart_with_empty_cache(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], registration: Registration
) -> None:
    seen, http = wire
    puppet_id = new_puppet_id(synapse)
    await (
        make_bot(synapse, http, MemoryStateCache(), registration)
        .user(puppet_id)
        .ensure_registered()
    )
    assert seen.statuses == [200]

    fresh = MemoryStateCache()  # a restart that lost the cache
    seen.clear()
    puppet = make_bot(synapse, http, fresh, registration).user(puppet_id)
    await puppet.ensure_registered()  # 400 M_USER_IN_USE counts as registered
    assert seen.kinds() == ["register"]
    assert seen.statuses == [400]
    assert await fresh.is_registered(puppet_id)
    seen.clear()
    await puppet.ensure_registered()
    assert seen.requests == []


async def test_private_room_puppet_gets_in_through_the_bot(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], bot: Intent, alice: Client
) -> None:
    seen, _ = wire
    room = (
        await alice.create_room(ReqCreateRoom(preset="private_chat", invite=[bot.user_id]))
    ).room_id
    puppet = bot.user(new_puppet_id(synapse))

    await puppet.send_text(room, "let me in")
    # register, join (403), the bot joins (it was invited), invites, the puppet joins, send
    assert seen.kinds() == ["register", "join", "join", "POST invite", "join", "send"]
    assert seen.statuses == [200, 403, 200, 200, 200, 200]
    joined = (await alice.joined_members(room)).joined
    assert {bot.user_id, puppet.user_id} <= set(joined)
    assert await bot.state.membership(room, bot.user_id) == "join"

    seen.clear()
    other = bot.user(new_puppet_id(synapse))
    await other.send_notice(room, "me too")  # the bot is known joined: no bot join this time
    assert seen.kinds() == ["register", "join", "POST invite", "join", "send"]


async def test_concurrent_first_messages_of_a_new_puppet_both_arrive(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], bot: Intent, alice: Client
) -> None:
    seen, _ = wire
    room = (
        await alice.create_room(ReqCreateRoom(preset="private_chat", invite=[bot.user_id]))
    ).room_id
    puppet = bot.user(new_puppet_id(synapse))
    sent = await asyncio.gather(*(puppet.send_text(room, f"m{i}") for i in range(4)))
    assert len(set(sent)) == 4
    for event_id, i in zip(sent, range(4), strict=True):
        assert (await get_event(alice, room, event_id))["content"]["body"] == f"m{i}"
    # one register, one failed join, the bot's join and invite, one join: shared, not raced
    assert seen.kinds() == ["register", "join", "join", "POST invite", "join"] + ["send"] * 4
    assert len(bot._locks) == 0  # nothing kept once nothing is in flight


async def test_forbidden_join_propagates_when_the_bot_cannot_invite(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    room = (await alice.create_room(ReqCreateRoom(preset="private_chat"))).room_id  # no bot
    puppet = bot.user(new_puppet_id(synapse))
    with pytest.raises(HTTPError) as caught:
        await puppet.send_text(room, "nope")
    assert caught.value.code == 403
    assert await bot.state.membership(room, puppet.user_id) is None  # still unknown


async def test_left_room_is_joined_again(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], bot: Intent, alice: Client
) -> None:
    seen, _ = wire
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    await puppet.ensure_joined(room)
    await puppet.leave_room(room)
    assert await bot.state.membership(room, puppet.user_id) == "leave"
    seen.clear()
    await puppet.send_text(room, "back")
    assert seen.kinds() == ["join", "send"]
    assert puppet.user_id in (await alice.joined_members(room)).joined


async def test_stale_joined_cache_recovers_with_one_join(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], bot: Intent, alice: Client
) -> None:
    seen, _ = wire
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    await puppet.ensure_joined(room)
    await alice.kick_user(room, ReqKickUser(puppet.user_id, "testing"))  # the cache never hears
    assert await bot.state.membership(room, puppet.user_id) == "join"
    seen.clear()
    await puppet.send_text(room, "still here")
    assert seen.kinds() == ["send", "join", "send"]
    assert seen.statuses == [403, 200, 200]


# --- content read back from Synapse ---------------------------------------------------------


async def test_timestamp_massaging(synapse: SynapseServer, bot: Intent, alice: Client) -> None:
    room = await public_room(alice, power_level_content_override={"state_default": 0})
    puppet = bot.user(new_puppet_id(synapse))
    old = 1_500_000_000_123
    event_id = await puppet.send_text(room, "from the past", timestamp=old)
    assert (await get_event(alice, room, event_id))["origin_server_ts"] == old
    topic_id = await puppet.send_state(room, "m.room.topic", "", {"topic": "t"}, timestamp=old + 1)
    assert (await get_event(alice, room, topic_id))["origin_server_ts"] == old + 1
    now_id = await puppet.send_emote(room, "waves")
    assert (
        abs((await get_event(alice, room, now_id))["origin_server_ts"] - time.time() * 1000)
        < 60_000
    )


async def test_caller_txn_id_makes_a_resend_idempotent(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    first = await puppet.send_text(room, "once", txn_id="bridge-msg-1")
    assert await puppet.send_text(room, "once", txn_id="bridge-msg-1") == first


async def test_reaction_edit_and_redaction(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    target = await puppet.send_formatted(room, "<b>hi</b> there")
    sent = await get_event(alice, room, target)
    assert sent["content"] == {
        "msgtype": "m.text",
        "body": "hi there",
        "format": "org.matrix.custom.html",
        "formatted_body": "<b>hi</b> there",
    }

    reaction = await get_event(alice, room, await puppet.send_reaction(room, target, "👍"))
    assert reaction["type"] == "m.reaction"
    assert reaction["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": target,
        "key": "👍",
    }

    edit = await get_event(alice, room, await puppet.send_edit(room, target, "fixed"))
    assert edit["content"] == {
        "msgtype": "m.text",
        "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }

    image = await puppet.send_media(
        room, "m.image", "mxc://localhost/abc", "cat.png", info={"mimetype": "image/png"}
    )
    assert (await get_event(alice, room, image))["content"] == {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": "mxc://localhost/abc",
        "info": {"mimetype": "image/png"},
    }

    redaction_id = await puppet.redact(room, target, reason="oops")
    redacted = await get_event(alice, room, target)
    assert redacted["content"] == {}
    because = redacted["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction_id
    assert because["content"]["reason"] == "oops"


async def test_typing_and_read_receipt_reach_other_users(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    event_id = await puppet.send_text(room, "read me")
    await puppet.set_typing(room, True, 20_000)
    await puppet.mark_read(room, event_id)

    async def seen_by_alice() -> tuple[Any, Any] | None:
        resp = await alice.sync_request(0, "", "", False, "")
        joined = resp.rooms.join.get(room)
        if joined is None:
            return None
        typing = receipt = None
        for event in joined.ephemeral.events:
            if event.type == "m.typing" and puppet.user_id in event.content.get("user_ids", []):
                typing = event
            if event.type == "m.receipt" and event_id in event.content:
                receipt = event
        return (typing, receipt) if typing and receipt else None

    _typing, receipt = await eventually(seen_by_alice, "typing and receipt")
    assert puppet.user_id in receipt.content[event_id]["m.read"]
    await puppet.set_typing(room, False)


async def test_display_name_and_avatar(synapse: SynapseServer, bot: Intent, alice: Client) -> None:
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    await puppet.ensure_joined(room)
    await puppet.set_display_name("Remote Rita")
    await puppet.set_avatar_url("mxc://localhost/rita")
    assert (await alice.get_display_name(puppet.user_id)).display_name == "Remote Rita"
    assert await bot.state.member(room, puppet.user_id) == Member(
        "join", "Remote Rita", "mxc://localhost/rita"
    )

    async def room_shows_it() -> str | None:  # Synapse updates member events in the background
        member = await alice.state_event(room, "m.room.member", puppet.user_id)
        return "yes" if member.get("displayname") == "Remote Rita" else None

    await eventually(room_shows_it, "the new display name in the room")


# --- the state cache learns from our calls and from real state ------------------------------


async def test_v12_creator_power_from_real_state(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    room = await public_room(alice)
    puppet = bot.user(new_puppet_id(synapse))
    await bot.state.update_from_events(await alice.get_state(room))
    power = await bot.state.power(room)
    assert power is not None
    assert power.room_version == "12"
    assert alice.user_id not in (power.power_levels or {}).get("users", {})
    assert power.user_level(alice.user_id) == math.inf
    assert power.may_send(alice.user_id, "m.room.power_levels", state=True)
    assert not power.may_send(puppet.user_id, "m.room.power_levels", state=True)
    assert await bot.state.membership(room, alice.user_id) == "join"


async def test_own_state_send_updates_the_cache(
    synapse: SynapseServer, bot: Intent, alice: Client
) -> None:
    override = {"events": {}, "state_default": 0, "users_default": 10}
    room = await public_room(alice, power_level_content_override=override)
    puppet = bot.user(new_puppet_id(synapse))
    levels = await alice.state_event(room, "m.room.power_levels")
    levels["events"] = {"org.example.custom": 10}  # within the puppet's own level 10
    await puppet.send_state(room, "m.room.power_levels", "", levels)
    power = await bot.state.power(room)
    assert power is not None
    assert power.event_level("org.example.custom") == 10
    assert power.user_level(puppet.user_id) == 10
    assert await bot.state.power_levels(room) == levels


# --- bad input --------------------------------------------------------------------------------


async def test_bad_input_is_refused_before_any_request(
    synapse: SynapseServer, wire: tuple[Wire, httpx.AsyncClient], bot: Intent
) -> None:
    seen, _ = wire
    puppet = bot.user(new_puppet_id(synapse))
    with pytest.raises(ValueError, match="ensure_joined: room_id must not be empty"):
        await puppet.ensure_joined("")
    with pytest.raises(ValueError, match="must start with '!'"):
        await puppet.send_text("#alias:localhost", "x")
    with pytest.raises(ValueError, match="timestamp must be a non-negative int"):
        await puppet.send_text("!room", "x", timestamp=-5)
    with pytest.raises(ValueError, match="is not an event ID"):
        await puppet.send_reaction("!room", "not-an-event", "x")
    with pytest.raises(ValueError, match="msgtype must be one of"):
        await puppet.send_media("!room", "m.sticker", "mxc://a/b", "b")
    with pytest.raises(ValueError, match="outside the appservice's user namespace"):
        await bot.user("@outsider:localhost").ensure_registered()
    with pytest.raises(ValueError, match="as_user: user_id must be a Matrix user ID"):
        bot.user("nobody")
    assert seen.requests == []
