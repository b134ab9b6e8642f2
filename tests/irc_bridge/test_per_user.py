"""Per-user mode end to end: each Matrix user who talks gets an IRC connection of their own
(nick from the display name), their lines are not bridged back, and idle connections close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nio
import pytest
import pytest_asyncio

from appservice.testing import SynapseServer
from bridges.irc.testing import IrcTestClient
from tests.irc_bridge.conftest import BOT_NICK, Env, open_env, until
from tests.irc_bridge.test_irc_bridge import content, message_from, portal

pytestmark = pytest.mark.synapse

NICK = "Alice_M[m]"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def per_user(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    async with open_env(synapse, tmp_path_factory, mode="per_user", idle_timeout=5.0) as run:
        yield run


async def test_matrix_user_talks_with_own_nick_and_idles_out(per_user: Env) -> None:
    env = per_user
    irc = await IrcTestClient.connect(env.ircd.port, "olga")
    try:
        room_id = await portal(env, irc, "#own")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "hello in person"})
        line = await env.from_irc(irc, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK)
        assert line.params == ("#own", "hello in person")
        await env.human.send(room_id, {"msgtype": "m.emote", "body": "waves"})
        line = await env.from_irc(irc, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK)
        assert line.text == "\x01ACTION waves\x01"
        assert not [ln for ln in irc.history if ln.nick == BOT_NICK and ln.command == "PRIVMSG"]

        # IRC still reaches Matrix through the puppets; our user's own nick never gets one
        await irc.privmsg("#own", "hi Alice")
        await env.human.wait(room_id, message_from(env.puppet("olga"), "hi Alice"), "the reply")
        assert env.bridge is not None
        own_puppet = env.bridge.puppets.user_id_for(NICK.lower())
        assert not env.human.find(room_id, lambda e: e.get("sender") == own_puppet)
        assert not env.human.find(room_id, lambda e: e.get("state_key") == own_puppet)

        # idle for longer than idle_timeout: the connection quits; the next message reopens it
        await env.from_irc(irc, lambda ln: ln.command == "QUIT" and ln.nick == NICK)
        await env.human.send(room_id, {"msgtype": "m.text", "body": "back again"})
        await env.from_irc(irc, lambda ln: ln.command == "JOIN" and ln.nick == NICK)
        line = await env.from_irc(irc, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK)
        assert line.text == "back again"
        assert all(content(e).get("body") != "back again" or e.get("sender") == env.human.user_id
                   for e in env.human.events)  # fmt: skip
    finally:
        await irc.close()


async def test_private_messages_become_a_direct_chat(per_user: Env) -> None:
    env = per_user
    irc = await IrcTestClient.connect(env.ircd.port, "paula")
    try:
        room_id = await portal(env, irc, "#dm-start")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "ping me"})
        await env.from_irc(irc, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK)
        client = env.human.client
        before = set(client.rooms)
        await irc.privmsg(NICK, "psst, \x02private\x02")
        await until(lambda: bool(set(client.invited_rooms) - before), "the DM invite")
        dm_room = next(iter(set(client.invited_rooms) - before))
        assert await env.human.join(dm_room) == dm_room
        event = await env.human.wait(
            dm_room, message_from(env.puppet("paula"), "psst, private"), "the private message"
        )
        assert content(event)["formatted_body"] == "psst, <b>private</b>"

        await env.human.send(dm_room, {"msgtype": "m.text", "body": "psst back"})
        line = await env.from_irc(irc, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK
                                  and ln.params[0] == "paula")  # fmt: skip
        assert line.text == "psst back"
        # a second private message lands in the same room
        await irc.privmsg(NICK, "again")
        await env.human.wait(dm_room, message_from(env.puppet("paula"), "again"), "same room")
    finally:
        await irc.close()


async def test_taken_nick_gets_a_fallback_and_is_still_not_echoed(per_user: Env) -> None:
    env = per_user
    squatter = await IrcTestClient.connect(env.ircd.port, "Bob_B[m]", username="squat")
    watcher = await IrcTestClient.connect(env.ircd.port, "quinn")
    user = await env.synapse.register_user()
    bob = nio.AsyncClient(env.synapse.url, user.user_id)
    try:
        assert isinstance(await bob.login(user.password), nio.LoginResponse)
        await bob.set_displayname("Bob B")
        room_id = await portal(env, watcher, "#taken")
        joined = await bob.join(env.alias("#taken"))
        assert isinstance(joined, nio.JoinResponse), joined
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"})
        assert isinstance(sent, nio.RoomSendResponse), sent
        line = await env.from_irc(watcher, lambda ln: ln.command == "PRIVMSG" and ln.text == "hi")
        assert line.nick == "Bob_B[m]_"
        await asyncio.sleep(0.5)
        assert env.bridge is not None
        fallback_puppet = env.bridge.puppets.user_id_for("bob_b[m]_")
        assert not env.human.find(room_id, lambda e: e.get("state_key") == fallback_puppet)
    finally:
        await bob.close()
        await squatter.close()
        await watcher.close()


async def test_direct_chat_started_on_matrix(per_user: Env) -> None:
    env = per_user
    rita = await IrcTestClient.connect(env.ircd.port, "rita")
    try:
        puppet = env.puppet("rita")
        created = await env.human.client.room_create(is_direct=True, invite=[puppet])
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        await env.human.wait(
            room_id,
            lambda e: e.get("state_key") == puppet and content(e).get("membership") == "join",
            "the puppet to accept the direct chat",
        )
        await env.human.send(room_id, {"msgtype": "m.text", "body": "hi rita"})
        line = await env.from_irc(rita, lambda ln: ln.command == "PRIVMSG" and ln.nick == NICK)
        assert line.params == ("rita", "hi rita")
        await rita.privmsg(NICK, "hi Alice")
        await env.human.wait(room_id, message_from(puppet, "hi Alice"), "the answer in the room")
    finally:
        await rita.close()
