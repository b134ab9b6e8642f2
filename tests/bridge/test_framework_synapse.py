"""The bridge framework against a real Synapse, with a fake remote network kept in memory.

The bridge serves its appservice on the port the test Synapse pushes to, and every request it
makes goes through one HTTP pool whose event hooks record it, so the tests count exactly what
reaches the homeserver. Alice is a real Matrix user with her own client (not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from appservice.api import ReqCreateRoom, ReqRedact
from appservice.bridge import (
    Bridge,
    ChatInfo,
    CommandEvent,
    MatrixMessage,
    MessageRef,
    Portal,
    RemoteMessage,
    RemoteUser,
    User,
)
from appservice.client import Client
from appservice.errors import HTTPError
from appservice.testing import SynapseServer
from tests.bridge.conftest import Wire, bridge_config, until

pytestmark = pytest.mark.synapse


class FakeNetwork:
    """The remote network: chats it knows, and everything the bridge handed to it.

    It supports edits, redactions and chat lookup, and nothing else (no reactions, typing...).
    """

    def __init__(self) -> None:
        self.chats: dict[str, ChatInfo] = {}
        self.sent: list[tuple[Portal, User, MatrixMessage, str]] = []
        self.edits: list[tuple[Portal, User, MessageRef, MatrixMessage]] = []
        self.redactions: list[tuple[Portal, User, MessageRef]] = []
        self.started = False
        self._next = 0

    async def start(self, bridge: Bridge) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str:
        self._next += 1
        remote_id = f"remote-{self._next}"
        self.sent.append((portal, sender, message, remote_id))
        return remote_id

    async def handle_matrix_edit(
        self, portal: Portal, sender: User, target: MessageRef, message: MatrixMessage
    ) -> None:
        self.edits.append((portal, sender, target, message))

    async def handle_matrix_redaction(
        self, portal: Portal, sender: User, target: MessageRef
    ) -> None:
        self.redactions.append((portal, sender, target))

    async def get_chat_info(self, remote_id: str) -> ChatInfo | None:
        return self.chats.get(remote_id)

    def sent_event(self, event_id: str) -> tuple[Portal, User, MatrixMessage, str] | None:
        return next((s for s in self.sent if s[2].event_id == event_id), None)


@dataclass
class Running:
    bridge: Bridge
    network: FakeNetwork
    wire: Wire
    synapse: SynapseServer
    alice: Client
    admin_runs: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    db: Path = tmp_path_factory.mktemp("bridge") / "bridge.db"
    config = bridge_config(synapse, f"sqlite+aiosqlite:///{db}")
    wire = Wire()
    http = wire.client()
    network = FakeNetwork()
    bridge = Bridge(config, network, http=http)
    user = await synapse.register_user()
    alice = Client(synapse.url, user.user_id, user.access_token)
    run = Running(bridge, network, wire, synapse, alice)

    @bridge.commands.command("secret", level="admin", help="admins only")
    async def secret(evt: CommandEvent) -> None:
        run.admin_runs.append(evt.user.user_id)
        await evt.reply("the secret")

    await bridge.start()
    try:
        # Synapse retries anything it backed off on now (else on its own backoff, so a ping
        # that fails on a loaded machine is no failure).
        with contextlib.suppress(HTTPError):
            await bridge.svc.ping()
        await bridge.settle()
        yield run
    finally:
        await bridge.stop()
        await alice.aclose()
        await http.aclose()
    assert not network.started


def chat_id() -> str:
    return f"chat/{secrets.token_hex(4)}"


def remote_user(name: str) -> RemoteUser:
    return RemoteUser(f"{name}-{secrets.token_hex(3)}", name.capitalize())


async def get_event(client: Client, room_id: str, event_id: str) -> dict[str, Any]:
    data = await client.make_request("GET", client.build_url("rooms", room_id, "event", event_id))
    assert isinstance(data, dict)
    return data


async def bot_notices(client: Client, room_id: str, bot: str) -> list[str]:
    history = await client.messages(room_id, "", "", "b", 30)
    return [
        str(e.content.get("body"))
        for e in reversed(history.chunk)
        if e.sender == bot and e.content.get("msgtype") == "m.notice"
    ]


async def eventually_notice(run: Running, room_id: str, needle: str) -> str:
    bot = run.bridge.bot.user_id
    found: list[str] = []
    for _ in range(300):
        found = [n for n in await bot_notices(run.alice, room_id, bot) if needle in n]
        if found:
            return found[-1]
        await _sleep()
    raise AssertionError(f"no notice containing {needle!r} from the bot in {room_id}")


async def _sleep() -> None:
    await asyncio.sleep(0.05)


async def portal_with_alice(run: Running, *, public: bool) -> tuple[Portal, str, RemoteUser]:
    """A portal whose room was made by a first remote message, with Alice joined."""
    chat = chat_id()
    run.network.chats[chat] = ChatInfo(
        name=f"Chat {chat}", public=public, invite=(run.alice.user_id,)
    )
    portal = await run.bridge.portals.get(chat)
    assert portal is not None
    bob = remote_user("bob")
    first = await portal.handle_remote_message(RemoteMessage("m1", bob, "hello from remote"))
    assert portal.room_id is not None
    await run.alice.join_room(portal.room_id)
    return portal, first, bob


# --- remote -> Matrix ---------------------------------------------------------------------------


async def test_remote_message_creates_the_portal_room_with_the_puppet_and_invites_the_user(
    running: Running,
) -> None:
    bridge, alice = running.bridge, running.alice
    chat = chat_id()
    running.network.chats[chat] = ChatInfo(name="Chat One", invite=(alice.user_id,))
    portal = await bridge.portals.get(chat)
    assert portal is not None
    assert portal.room_id is None
    bob = remote_user("bob")

    event_id = await portal.handle_remote_message(RemoteMessage("m1", bob, "hello from remote"))

    room_id = portal.room_id
    assert room_id is not None
    invite = await bridge.bot.client.state_event(room_id, "m.room.member", alice.user_id)
    assert invite["membership"] == "invite"
    await alice.join_room(room_id)
    event = await get_event(alice, room_id, event_id)
    puppet_id = bridge.config.puppet_user_id(bob.id)
    assert event["sender"] == puppet_id
    assert event["content"] == {"msgtype": "m.text", "body": "hello from remote"}
    member = await alice.state_event(room_id, "m.room.member", puppet_id)
    assert (member["membership"], member.get("displayname")) == ("join", "Bob")
    name = await alice.state_event(room_id, "m.room.name")
    assert name["name"] == "Chat One"
    ref = await bridge.messages.by_event(event_id)
    assert ref is not None
    assert (ref.remote_chat, ref.remote_id) == (chat, "m1")
    # The same remote message again is not sent twice.
    assert await portal.handle_remote_message(RemoteMessage("m1", bob, "hello")) == event_id
    # A second lookup finds the same portal, by chat and by room.
    assert await bridge.portals.get(chat) is portal
    assert await bridge.portals.by_room(room_id) is portal


async def test_remote_reply_edit_and_redaction_use_the_message_map(running: Running) -> None:
    portal, first, bob = await portal_with_alice(running, public=True)
    assert portal.room_id is not None
    room, alice = portal.room_id, running.alice
    reply = await portal.handle_remote_message(
        RemoteMessage("m2", bob, "answer", html="<b>answer</b>", reply_to="m1")
    )
    content = (await get_event(alice, room, reply))["content"]
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": first}}
    assert content["formatted_body"] == "<b>answer</b>"

    edit = await portal.handle_remote_edit("m2", RemoteMessage("m2-edit", bob, "better answer"))
    assert edit is not None
    content = (await get_event(alice, room, edit))["content"]
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": reply}
    assert content["m.new_content"]["body"] == "better answer"

    carol = remote_user("carol")
    reaction = await portal.handle_remote_reaction(carol, "m1", "👍")
    assert reaction is not None
    content = (await get_event(alice, room, reaction))["content"]
    assert content["m.relates_to"] == {"rel_type": "m.annotation", "event_id": first, "key": "👍"}
    assert await portal.handle_remote_reaction(carol, "m1", "👍") == reaction  # not doubled
    assert await portal.handle_remote_unreaction(carol, "m1", "👍")
    assert (await get_event(alice, room, reaction))["content"] == {}
    assert not await portal.handle_remote_unreaction(carol, "m1", "👍")

    assert await portal.handle_remote_redaction("m2", bob) == [reply]
    redacted = await get_event(alice, room, reply)
    assert redacted["content"] == {}
    assert await running.bridge.messages.by_event(reply) is None


async def test_alias_query_creates_a_public_portal_on_demand(running: Running) -> None:
    bridge, alice = running.bridge, running.alice
    chat = chat_id()
    member = remote_user("member")
    running.network.chats[chat] = ChatInfo(
        name="Public", topic="open to all", public=True, members=(member,)
    )
    alias = bridge.portals.alias_for(chat)
    assert alias is not None
    joined = await alice.join_room(alias)
    portal = await bridge.portals.get(chat, create=False)
    assert portal is not None
    assert portal.room_id == joined.room_id
    topic = await alice.state_event(joined.room_id, "m.room.topic")
    assert topic["topic"] == "open to all"
    # The chat's members are in the room with their names.
    puppet_id = bridge.config.puppet_user_id(member.id)
    state = await alice.state_event(joined.room_id, "m.room.member", puppet_id)
    assert (state["membership"], state.get("displayname")) == ("join", "Member")
    # An alias of a chat the network does not know is not found.
    with pytest.raises(HTTPError) as err:
        await alice.join_room(bridge.portals.alias_for("no-such-chat") or "")
    assert err.value.code == 404


# --- Matrix -> remote ---------------------------------------------------------------------------


async def test_matrix_message_reply_edit_and_redaction_reach_the_connector_resolved(
    running: Running,
) -> None:
    network, alice = running.network, running.alice
    portal, first, _ = await portal_with_alice(running, public=False)
    assert portal.room_id is not None
    room = portal.room_id

    sent = await alice.send_text(room, "hi remote")
    await until(lambda: network.sent_event(sent.event_id) is not None, "the Matrix message")
    hit = network.sent_event(sent.event_id)
    assert hit is not None
    got_portal, sender, message, remote_id = hit
    assert got_portal is portal
    assert sender.user_id == alice.user_id
    assert (message.body, message.msgtype, message.reply_to) == ("hi remote", "m.text", None)

    reply = await alice.send_message_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "> hello\n\nreplying",
            "m.relates_to": {"m.in_reply_to": {"event_id": first}},
        },
    )
    await until(lambda: network.sent_event(reply.event_id) is not None, "the Matrix reply")
    hit = network.sent_event(reply.event_id)
    assert hit is not None
    assert hit[2].reply_to is not None
    assert (hit[2].reply_to.remote_id, hit[2].reply_to.event_id) == ("m1", first)

    count = len(network.sent)
    edit = await alice.send_message_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* hi remote, edited",
            "m.new_content": {"msgtype": "m.text", "body": "hi remote, edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent.event_id},
        },
    )
    await until(lambda: len(network.edits) > 0 and network.edits[-1][3].event_id == edit.event_id,
                "the Matrix edit")  # fmt: skip
    _, _, target, new = network.edits[-1]
    assert (target.remote_id, target.event_id) == (remote_id, sent.event_id)
    assert new.body == "hi remote, edited"

    await alice.redact_event(room, sent.event_id, ReqRedact("oops"))
    await until(lambda: any(r[2].event_id == sent.event_id for r in network.redactions),
                "the Matrix redaction")  # fmt: skip
    target = next(r[2] for r in network.redactions if r[2].event_id == sent.event_id)
    assert target.remote_id == remote_id
    assert await running.bridge.messages.by_event(sent.event_id) is None
    assert len(network.sent) == count  # the edit was never handed over as a new message


async def test_echo_of_a_puppet_message_is_not_handed_to_the_connector(running: Running) -> None:
    bridge, network, alice = running.bridge, running.network, running.alice
    portal, first, bob = await portal_with_alice(running, public=True)
    assert portal.room_id is not None
    echoes = bridge.stats.echoes_ignored
    puppet_event = await portal.handle_remote_message(RemoteMessage("m-echo", bob, "from bob"))
    after = await alice.send_text(portal.room_id, "after the puppet")
    # Events of one room are handled in order: once Alice's is through, the echo was handled.
    await until(lambda: network.sent_event(after.event_id) is not None, "Alice's message")
    assert network.sent_event(puppet_event) is None
    assert network.sent_event(first) is None
    assert bridge.stats.echoes_ignored > echoes


# --- request counts -----------------------------------------------------------------------------


async def test_request_counts(running: Running) -> None:
    bridge, wire, alice = running.bridge, running.wire, running.alice
    chat = chat_id()
    running.network.chats[chat] = ChatInfo(name="Counted", public=True, invite=(alice.user_id,))
    portal = await bridge.portals.get(chat)
    assert portal is not None
    bob, carol = remote_user("bob"), remote_user("carol")

    wire.clear()
    await portal.handle_remote_message(RemoteMessage("c1", bob, "first"))
    first_kinds = wire.kinds()
    assert first_kinds == ["register", "profile PUT", "POST createRoom", "join", "send"]

    wire.clear()
    await portal.handle_remote_message(RemoteMessage("c2", bob, "second"))
    assert wire.kinds() == ["send"]  # steady state: ONE request per bridged message

    wire.clear()
    await portal.handle_remote_message(RemoteMessage("c3", carol, "carol's first"))
    assert wire.kinds() == ["register", "profile PUT", "join", "send"]

    wire.clear()
    renamed = RemoteUser(bob.id, "Robert")
    await portal.handle_remote_message(RemoteMessage("c3b", renamed, "new name"))
    assert wire.kinds() == ["profile PUT", "send"]  # the profile only when it changed

    wire.clear()
    for n in range(5):
        await portal.handle_remote_message(RemoteMessage(f"c4-{n}", carol, f"again {n}"))
    assert wire.kinds() == ["send"] * 5

    # A private room: the first sender is invited as the room is made...
    chat = chat_id()
    running.network.chats[chat] = ChatInfo(name="Private", invite=(alice.user_id,))
    private = await bridge.portals.get(chat)
    assert private is not None
    wire.clear()
    await private.handle_remote_message(RemoteMessage("p1", remote_user("erin"), "hi"))
    assert wire.kinds() == ["register", "profile PUT", "POST createRoom", "join", "send"]
    # ...and a later new puppet needs the bot's invite.
    wire.clear()
    await private.handle_remote_message(RemoteMessage("p2", remote_user("dave"), "hi"))
    assert wire.kinds() == ["register", "profile PUT", "invite", "join", "send"]

    # Matrix -> remote costs the bridge no homeserver request at all.
    assert portal.room_id is not None
    await alice.join_room(portal.room_id)
    wire.clear()
    sent = await alice.send_text(portal.room_id, "to the network")
    await until(lambda: running.network.sent_event(sent.event_id) is not None, "the message")
    assert wire.kinds() == []


# --- the command bot ----------------------------------------------------------------------------


async def test_command_bot_in_a_management_room(running: Running) -> None:
    bridge, alice = running.bridge, running.alice
    bot = bridge.bot.user_id
    created = await alice.create_room(
        ReqCreateRoom(invite=[bot], is_direct=True, preset="trusted_private_chat")
    )
    dm = created.room_id
    await eventually_notice(running, dm, "management room")
    user = await bridge.users.get(alice.user_id)
    assert user.management_room == dm
    assert (await alice.get_display_name(bot)).display_name == "Test bridge bot"

    await alice.send_text(dm, "help")
    help_text = await eventually_notice(running, dm, "Commands you can use")
    assert "`ping`" in help_text
    assert "`version`" in help_text
    assert "secret" not in help_text  # Alice is at level user; secret needs admin

    await alice.send_text(dm, "secret")
    denied = await eventually_notice(running, dm, "permission level")
    assert "`admin`" in denied
    assert "`user`" in denied
    assert running.admin_runs == []

    await alice.send_text(dm, "frobnicate now")
    unknown = await eventually_notice(running, dm, "Unknown command")
    assert "`frobnicate`" in unknown
    assert "help" in unknown

    await alice.send_text(dm, "version")
    version = await eventually_notice(running, dm, "appservice ")
    assert "FakeNetwork" in version
    assert "edits" in version


async def test_command_prefix_in_a_portal(running: Running) -> None:
    network, alice = running.network, running.alice
    portal, _, _ = await portal_with_alice(running, public=True)
    assert portal.room_id is not None
    sent = await alice.send_text(portal.room_id, "!br ping")
    await eventually_notice(running, portal.room_id, "Pong")
    assert network.sent_event(sent.event_id) is None  # a command is not bridged
