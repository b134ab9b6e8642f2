"""The IRC bridge end to end, relay mode: a matrix-nio user and a raw IRC client talk through
the bridge running against the real Synapse and a real ngIRCd.

The tests share one bridge and one ngIRCd (module scope), each in a channel of its own, and
run in file order: the last ones restart ngIRCd and the bridge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nio
import pytest

from bridges.irc.split import line_budget, pessimistic_source
from bridges.irc.testing import IrcLine, IrcTestClient
from tests.irc_bridge.conftest import BOT_NICK, Env, until

pytestmark = pytest.mark.synapse

Matcher = Callable[[dict[str, Any]], bool]


def content(event: dict[str, Any]) -> dict[str, Any]:
    value = event.get("content")
    return value if isinstance(value, dict) else {}


def message_from(sender: str, body: str, msgtype: str = "m.text") -> Matcher:
    return lambda e: (
        e.get("type") == "m.room.message"
        and e.get("sender") == sender
        and content(e).get("msgtype") == msgtype
        and content(e).get("body") == body
    )


def from_bot(command: str = "PRIVMSG") -> Callable[[IrcLine], bool]:
    return lambda ln: ln.command == command and ln.nick == BOT_NICK


async def portal(env: Env, irc: IrcTestClient, channel: str) -> str:
    """The IRC user is in ``channel``; the Matrix human joins its alias; the room ID once the
    IRC user's puppet is in the room too."""
    await irc.join(channel)
    room_id = await env.human.join(env.alias(channel))
    puppet = env.puppet(irc.nick)
    await env.human.wait(
        room_id,
        lambda e: (
            e.get("type") == "m.room.member"
            and e.get("state_key") == puppet
            and content(e).get("membership") == "join"
        ),
        f"{puppet} to join {room_id}",
    )
    await irc.wait_for(lambda ln: ln.command == "JOIN" and ln.nick == BOT_NICK)
    return room_id


async def test_irc_messages_reach_matrix_as_puppet_messages(env: Env) -> None:
    irc = await IrcTestClient.connect(env.ircd.port, "Carol")
    try:
        room_id = await portal(env, irc, "#plain")
        carol = env.puppet("carol")
        await irc.privmsg("#plain", "hello from IRC")
        await env.human.wait(room_id, message_from(carol, "hello from IRC"), "the text")
        await irc.privmsg("#plain", "\x01ACTION waves\x01")
        await env.human.wait(room_id, message_from(carol, "waves", "m.emote"), "the emote")
        await irc.send("NOTICE #plain :a notice")
        await env.human.wait(room_id, message_from(carol, "a notice", "m.notice"), "the notice")
        await irc.privmsg("#plain", "\x02bold\x02 and \x0304red\x03")
        event = await env.human.wait(room_id, message_from(carol, "bold and red"), "formatting")
        assert content(event)["format"] == "org.matrix.custom.html"
        assert content(event)["formatted_body"] == (
            '<b>bold</b> and <font data-mx-color="#ff0000">red</font>'
        )
        member = env.human.find(
            room_id, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == carol
        )
        assert content(member[-1]).get("displayname") == "Carol"
        # order is kept: the four messages arrived as sent
        bodies = [
            content(e)["body"]
            for e in env.human.find(
                room_id, lambda e: e.get("type") == "m.room.message" and e.get("sender") == carol
            )
        ]
        assert bodies == ["hello from IRC", "waves", "a notice", "bold and red"]
    finally:
        await irc.close()


async def test_matrix_messages_reach_irc_relayed(env: Env) -> None:
    irc = await IrcTestClient.connect(env.ircd.port, "dave")
    try:
        room_id = await portal(env, irc, "#relay")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "hi IRC"})
        line = await env.from_irc(irc, from_bot())
        assert line.params == ("#relay", "<Alice M> hi IRC")

        await env.human.send(room_id, {"msgtype": "m.emote", "body": "waves"})
        line = await env.from_irc(irc, from_bot())
        assert line.text == "\x01ACTION Alice M waves\x01"

        await env.human.send(room_id, {"msgtype": "m.notice", "body": "fyi"})
        line = await env.from_irc(irc, from_bot("NOTICE"))
        assert line.text == "<Alice M> fyi"

        await env.human.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": "**bold** plain",
                "format": "org.matrix.custom.html",
                "formatted_body": "<b>bold</b> plain",
            },
        )
        assert (await env.from_irc(irc, from_bot())).text == "<Alice M> \x02bold\x02 plain"

        long_words = " ".join(f"wörd{i}" for i in range(250))
        await env.human.send(room_id, {"msgtype": "m.text", "body": f"first line\n{long_words}"})
        budget = line_budget(pessimistic_source(BOT_NICK, "matrix"), "PRIVMSG", "#relay")
        got: list[IrcLine] = [await env.from_irc(irc, from_bot())]
        while True:
            try:
                got.append(await irc.wait_for(from_bot(), within=1.0))
            except TimeoutError:
                break
        texts = [ln.text for ln in got]
        assert texts[0] == "<Alice M> first line"
        assert len(texts) >= 4  # about 2 KB of words
        assert all(t.startswith("<Alice M> ") for t in texts)
        assert all(len(t.encode()) <= budget for t in texts)
        assert " ".join(t.removeprefix("<Alice M> ") for t in texts[1:]) == long_words

        image = {
            "msgtype": "m.image",
            "body": "cat.png",
            "url": "mxc://localhost/AbCdEf",
        }
        await env.human.send(room_id, image)
        expected = (
            f"<Alice M> image: cat.png {env.synapse.url}"
            "/_matrix/client/v1/media/download/localhost/AbCdEf/cat.png"
        )
        assert (await env.from_irc(irc, from_bot())).text == expected

        # a reply names the replied-to IRC user
        await irc.privmsg("#relay", "question?")
        question = await env.human.wait(
            room_id, message_from(env.puppet("dave"), "question?"), "the question"
        )
        await env.human.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": "answer",
                "m.relates_to": {"m.in_reply_to": {"event_id": question["event_id"]}},
            },
        )
        assert (await env.from_irc(irc, from_bot())).text == "<Alice M> dave: answer"
        # the bot's own lines never come back to Matrix
        await asyncio.sleep(0.5)
        assert not env.human.find(room_id, lambda e: "Alice M>" in str(content(e).get("body")))
    finally:
        await irc.close()


async def test_nick_change_part_and_quit_become_profile_and_membership(env: Env) -> None:
    erin = await IrcTestClient.connect(env.ircd.port, "erin")
    frank = await IrcTestClient.connect(env.ircd.port, "frank")
    try:
        await frank.join("#members")
        room_id = await portal(env, erin, "#members")
        erin_puppet, frank_puppet = env.puppet("erin"), env.puppet("frank")
        await env.human.wait(
            room_id,
            lambda e: e.get("type") == "m.room.member" and e.get("state_key") == frank_puppet,
            "frank's puppet, already in the channel, to join",
        )

        await erin.send("NICK erin_away")
        await env.human.wait(
            room_id,
            lambda e: (
                e.get("state_key") == erin_puppet and content(e).get("displayname") == "erin_away"
            ),
            "the display name to follow the nick",
        )
        await erin.privmsg("#members", "still me")
        await env.human.wait(room_id, message_from(erin_puppet, "still me"), "same puppet")
        # someone else taking the old nick meanwhile gets a puppet of their own
        other = await IrcTestClient.connect(env.ircd.port, "erin", username="other")
        try:
            await other.join("#members")
            await other.privmsg("#members", "a different erin")
            assert env.bridge is not None
            other_puppet = env.bridge.puppets.user_id_for("erin!2")
            await env.human.wait(room_id, message_from(other_puppet, "a different erin"), "other")
        finally:
            await other.close()

        def left(user_id: str) -> Matcher:
            return lambda e: (
                e.get("type") == "m.room.member"
                and e.get("state_key") == user_id
                and content(e).get("membership") == "leave"
            )

        await erin.send("PART #members :bye")
        await env.human.wait(room_id, left(erin_puppet), "erin's puppet to leave on PART")
        await frank.close("gone")
        await env.human.wait(room_id, left(frank_puppet), "frank's puppet to leave on QUIT")

        # a new IRC user joining shows up as a puppet joining
        grace = await IrcTestClient.connect(env.ircd.port, "grace")
        try:
            await grace.join("#members")
            await env.human.wait(
                room_id,
                lambda e: (
                    e.get("state_key") == env.puppet("grace")
                    and content(e).get("membership") == "join"
                ),
                "grace's puppet to join on JOIN",
            )
        finally:
            await grace.close()
    finally:
        await erin.close()
        await frank.close()


async def test_kick_and_edit(env: Env) -> None:
    kate = await IrcTestClient.connect(env.ircd.port, "kate")
    leo = await IrcTestClient.connect(env.ircd.port, "leo")
    try:
        await leo.join("#kicks")
        room_id = await portal(env, kate, "#kicks")  # kate came second: leo is the operator
        leo_puppet, kate_puppet = env.puppet("leo"), env.puppet("kate")
        await env.human.wait(
            room_id,
            lambda e: e.get("state_key") == leo_puppet and content(e).get("membership") == "join",
            "leo's puppet to join",
        )
        await leo.send("KICK #kicks kate :behave")
        await env.human.wait(
            room_id,
            lambda e: e.get("state_key") == kate_puppet and content(e).get("membership") == "leave",
            "kate's puppet to leave on KICK",
        )

        original = await env.human.send(room_id, {"msgtype": "m.text", "body": "tpyo"})
        assert (await env.from_irc(leo, from_bot())).text == "<Alice M> tpyo"
        await env.human.send(
            room_id,
            {
                "msgtype": "m.text",
                "body": "* typo",
                "m.new_content": {"msgtype": "m.text", "body": "typo"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": original},
            },
        )
        assert (await env.from_irc(leo, from_bot())).text == "<Alice M> * typo"
    finally:
        await kate.close()
        await leo.close()


async def test_topic_both_ways(env: Env) -> None:
    # the bot makes the channel (so it is its operator and may set the topic)
    room_id = await env.human.join(env.alias("#topics"))
    heidi = await IrcTestClient.connect(env.ircd.port, "heidi")
    try:
        await heidi.join("#topics")
        # the portal is a public room where only moderators set the topic: the bot promotes her
        assert env.bridge is not None
        bot = env.bridge.bot
        levels = await bot.client.state_event(room_id, "m.room.power_levels", "")
        levels.setdefault("users", {})[env.human.user_id] = 50
        await bot.send_state(room_id, "m.room.power_levels", "", levels)
        resp = await env.human.client.room_put_state(
            room_id, "m.room.topic", {"topic": "from Matrix"}
        )
        assert isinstance(resp, nio.RoomPutStateResponse), resp
        line = await env.from_irc(heidi, lambda ln: ln.command == "TOPIC")
        assert line.params == ("#topics", "from Matrix")
        await heidi.send("MODE #topics -t")
        await heidi.send("TOPIC #topics :from IRC")
        await env.human.wait(
            room_id,
            lambda e: e.get("type") == "m.room.topic" and content(e).get("topic") == "from IRC",
            "the IRC topic in the room",
        )
    finally:
        await heidi.close()


async def test_admin_links_and_unlinks_an_existing_room(env: Env) -> None:
    assert env.bridge is not None
    bot = env.bridge.bot.user_id
    created = await env.human.client.room_create(name="our room", invite=[bot])
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id

    def notice(text: str) -> Matcher:
        return lambda e: e.get("sender") == bot and text in str(content(e).get("body"))

    await env.human.wait(room_id, notice("management room"), "the bot to join on invite")
    kim = await IrcTestClient.connect(env.ircd.port, "kim")
    try:
        await kim.join("#linked")
        await env.human.send(room_id, {"msgtype": "m.text", "body": f"link {room_id} #linked"})
        await env.human.wait(room_id, notice("Linked"), "the link confirmation")
        await env.from_irc(kim, lambda ln: ln.command == "JOIN" and ln.nick == BOT_NICK)
        await kim.privmsg("#linked", "hi linked room")
        await env.human.wait(room_id, message_from(env.puppet("kim"), "hi linked room"), "msg")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "hello kim"})
        assert (await env.from_irc(kim, from_bot())).text == "<Alice M> hello kim"

        await env.human.send(room_id, {"msgtype": "m.text", "body": "!bridge unlink #linked"})
        await env.human.wait(room_id, notice("Unlinked"), "the unlink confirmation")
        await env.from_irc(kim, lambda ln: ln.command == "PART" and ln.nick == BOT_NICK)
        await env.human.wait(
            room_id,
            lambda e: e.get("state_key") == bot and content(e).get("membership") == "leave",
            "the bot to leave the unlinked room",
        )
    finally:
        await kim.close()


async def test_irc_restart_loses_nothing(env: Env) -> None:
    irc = await IrcTestClient.connect(env.ircd.port, "ivan")
    room_id = await portal(env, irc, "#outage")
    await env.human.send(room_id, {"msgtype": "m.text", "body": "before"})
    assert (await env.from_irc(irc, from_bot())).text == "<Alice M> before"
    conn = env.connector.connection
    # hold the bridge's reconnect until the IRC user is back, so it sees the queued message
    gate = asyncio.Event()
    connect = conn.client.connect

    async def gated(*args: Any, **kwargs: Any) -> None:
        await gate.wait()
        await connect(*args, **kwargs)

    conn.client.connect = gated
    try:
        await env.ircd.astop()
        await until(lambda: not conn.registered.is_set(), "the bridge to see IRC go away")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "while IRC is down"})
        await asyncio.sleep(0.5)
        await env.ircd.astart()
        irc = await IrcTestClient.connect(env.ircd.port, "ivan")
        await irc.join("#outage")
        gate.set()
        line = await env.from_irc(irc, from_bot())
        assert line.text == "<Alice M> while IRC is down"
        assert conn.reconnects >= 1
        # and the bridge works both ways again
        await irc.privmsg("#outage", "welcome back")
        await env.human.wait(room_id, message_from(env.puppet("ivan"), "welcome back"), "msg")
    finally:
        del conn.client.connect
        gate.set()
        await irc.close()


async def test_bridge_restart_doubles_nothing(env: Env) -> None:
    irc = await IrcTestClient.connect(env.ircd.port, "judy")
    try:
        room_id = await portal(env, irc, "#restart")
        judy = env.puppet("judy")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "one"})
        assert (await env.from_irc(irc, from_bot())).text == "<Alice M> one"
        await irc.privmsg("#restart", "from IRC once")
        await env.human.wait(room_id, message_from(judy, "from IRC once"), "the IRC message")

        await env.stop_bridge()
        await irc.wait_for(lambda ln: ln.command == "QUIT" and ln.nick == BOT_NICK)
        await env.start_bridge()
        await irc.wait_for(lambda ln: ln.command == "JOIN" and ln.nick == BOT_NICK)
        await env.human.send(room_id, {"msgtype": "m.text", "body": "two"})
        assert (await env.from_irc(irc, from_bot())).text == "<Alice M> two"
        await irc.privmsg("#restart", "after restart")
        await env.human.wait(room_id, message_from(judy, "after restart"), "the new message")
        await asyncio.sleep(1.0)
        relayed = [ln.text for ln in irc.history if ln.command == "PRIVMSG" and ln.nick == BOT_NICK]
        assert relayed == ["<Alice M> one", "<Alice M> two"]
        assert len(env.human.find(room_id, message_from(judy, "from IRC once"))) == 1
        joins = env.human.find(
            room_id,
            lambda e: (
                e.get("type") == "m.room.member"
                and e.get("state_key") == judy
                and content(e).get("membership") == "join"
            ),
        )
        assert len(joins) == 1  # the restart re-synced members without a second join
    finally:
        await irc.close()


async def test_bridge_stopped_while_irc_is_down_delivers_after_restart(env: Env) -> None:
    irc = await IrcTestClient.connect(env.ircd.port, "nina")
    room_id = await portal(env, irc, "#both")
    conn = env.connector.connection
    try:
        await env.ircd.astop()
        await until(lambda: not conn.registered.is_set(), "the bridge to see IRC go away")
        await env.human.send(room_id, {"msgtype": "m.text", "body": "sent while all was down"})
        await asyncio.sleep(0.5)  # the handler now waits in the outbox
        await env.stop_bridge()  # the waiting handler is cancelled: its event stays pending
        await env.ircd.astart()
        irc = await IrcTestClient.connect(env.ircd.port, "nina")
        await irc.join("#both")
        await env.start_bridge()
        line = await env.from_irc(irc, from_bot())
        assert line.text == "<Alice M> sent while all was down"
        await asyncio.sleep(0.5)
        relayed = [ln for ln in irc.history if ln.command == "PRIVMSG" and ln.nick == BOT_NICK]
        assert len(relayed) == 1
    finally:
        await irc.close()
