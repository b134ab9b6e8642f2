"""pydle (the asyncio IRC client the bridge will use) against the real ngIRCd.

The smoke test covers what the bridge needs from it (connect, join, messages, CTCP ACTION,
NOTICE, NAMES, TOPIC, nick changes, PART/KICK/QUIT). The "fact" tests pin down pydle 1.2
behaviour the bridge has to work around; if one starts failing after an upgrade, the workaround
can probably go.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydle  # type: ignore[import-untyped, unused-ignore]
import pytest

from bridges.irc.pytest_fixtures import IrcClientFactory
from bridges.irc.split import line_budget, split_message
from bridges.irc.testing import HOST, IrcTestClient, NgircdServer
from tests.irc.reset_proxy import ResetProxy
from tests.irc_bridge.conftest import until


class Recorder(pydle.Client):  # type: ignore[misc]
    """pydle's full client, recording every callback the bridge would use into a queue."""

    def __init__(self, nick: str, **kwargs: Any) -> None:
        super().__init__(nick, **kwargs)
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.sent: list[str] = []

    async def on_connect(self) -> None:
        await super().on_connect()
        self.ready.set()

    async def _send(self, data: Any) -> None:
        self.sent.append(str(data).rstrip("\r\n"))
        await super()._send(data)

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        self.events.put_nowait(("message", target, by, message))

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        self.events.put_nowait(("private", by, message))

    async def on_channel_notice(self, target: str, by: str, message: str) -> None:
        self.events.put_nowait(("notice", target, by, message))

    async def on_ctcp_action(self, by: str, target: str, contents: str) -> None:
        self.events.put_nowait(("action", target, by, contents))

    async def on_nick_change(self, old: str, new: str) -> None:
        self.events.put_nowait(("nick", old, new))

    async def on_topic_change(self, channel: str, message: str, by: str) -> None:
        self.events.put_nowait(("topic", channel, message, by))

    async def on_join(self, channel: str, user: str) -> None:
        self.events.put_nowait(("join", channel, user))

    async def on_part(self, channel: str, user: str, message: str | None = None) -> None:
        self.events.put_nowait(("part", channel, user, message))

    async def on_kick(self, channel: str, target: str, by: str, reason: str | None = None) -> None:
        self.events.put_nowait(("kick", channel, target, by, reason))

    async def on_quit(self, user: str, message: str | None = None) -> None:
        self.events.put_nowait(("quit", user, message))

    async def next_event(self, kind: str, within: float = 5.0) -> tuple[Any, ...]:
        """The next recorded event of `kind` (others before it are dropped)."""
        async with asyncio.timeout(within):
            while True:
                event = await self.events.get()
                if event[0] == kind:
                    return event


class NoWhoisRecorder(Recorder):
    """No WHOIS per new or renamed user: pydle awaits the reply inside the handler, so later
    lines overtake the first message of an unseen user and a nick change."""

    async def _create_user(self, nickname: str) -> None:
        pydle.features.rfc1459.RFC1459Support._create_user(self, nickname)

    async def _rename_user(self, user: str, new: str) -> None:
        await pydle.features.rfc1459.RFC1459Support._rename_user(self, user, new)


class BridgeReadyClient(NoWhoisRecorder):
    """The workarounds the bridge needs: no WHOIS, its own reconnect loop (pydle's gives up
    when one attempt fails), and a reset connection counted as lost (pydle's read loop dies of
    it unseen)."""

    RECONNECT_ON_ERROR = False

    def __init__(self, nick: str, host: str, port: int, **kwargs: Any) -> None:
        super().__init__(nick, **kwargs)
        self.target = (host, port)
        self.wanted_channels: set[str] = set()
        self.reconnects = 0

    async def handle_forever(self) -> None:
        try:
            await super().handle_forever()
        except OSError:
            if self.connected:
                await self.disconnect(expected=False)

    async def on_connect(self) -> None:
        await super().on_connect()
        for channel in self.wanted_channels:
            await self.join(channel)

    async def on_disconnect(self, expected: bool) -> None:
        self.ready.clear()
        delay = 0.05
        while not expected:
            await asyncio.sleep(delay)
            try:
                await self.connect(*self.target)
            except OSError:
                delay = min(delay * 2, 1.0)
            else:
                self.reconnects += 1
                return


async def _connected(client: Recorder, port: int) -> None:
    await client.connect(HOST, port)
    await asyncio.wait_for(client.ready.wait(), 10)


async def test_pydle_smoke(ngircd: NgircdServer, irc_client: IrcClientFactory) -> None:
    human = await irc_client("human")
    await human.join("#pydle")  # first in: channel operator, may kick
    bot = Recorder("pbot")
    await _connected(bot, ngircd.port)
    try:
        await bot.join("#pydle")
        assert await bot.next_event("join") == ("join", "#pydle", "pbot")
        for _ in range(50):  # NAMES arrives after the JOIN
            if "human" in bot.channels["#pydle"]["users"]:
                break
            await asyncio.sleep(0.02)
        assert {"human", "pbot"} <= bot.channels["#pydle"]["users"]
        assert bot._isupport["NICKLEN"] == "30"

        await human.privmsg("#pydle", "hello from IRC")
        assert await bot.next_event("message") == ("message", "#pydle", "human", "hello from IRC")
        await human.privmsg("#pydle", "\x01ACTION waves\x01")
        assert await bot.next_event("action") == ("action", "#pydle", "human", "waves")
        await human.send("NOTICE #pydle :a notice")
        assert await bot.next_event("notice") == ("notice", "#pydle", "human", "a notice")
        await human.privmsg("pbot", "psst")
        assert await bot.next_event("private") == ("private", "human", "psst")

        # the bot sends through our splitter with the exact budget for its prefix
        source = f"pbot!~{bot.username}@{HOST}"
        text = "ünïcode " * 120
        lines = split_message(text, line_budget(source, "PRIVMSG", "#pydle"))
        for line in lines:
            await bot.rawmsg("PRIVMSG", "#pydle", line)
        got = [
            (await human.wait_for(lambda ln: ln.command == "PRIVMSG" and ln.nick == "pbot")).text
            for _ in lines
        ]
        assert got == lines
        assert len(lines) == 3  # 1200 bytes
        assert " ".join(got) == text.strip()

        await human.send("TOPIC #pydle :new topic")
        assert await bot.next_event("topic") == ("topic", "#pydle", "new topic", "human")
        await human.send("NICK human2")
        assert await bot.next_event("nick") == ("nick", "human", "human2")
        assert "human2" in bot.channels["#pydle"]["users"]
        await bot.set_nickname("pbot2")
        assert await bot.next_event("nick") == ("nick", "pbot", "pbot2")
        assert bot.nickname == "pbot2"
        await human.send("KICK #pydle pbot2 :out")
        assert await bot.next_event("kick") == ("kick", "#pydle", "pbot2", "human2", "out")
        assert not bot.in_channel("#pydle")
        await bot.join("#pydle")
        await bot.next_event("join")
        await human.send("PART #pydle :later")
        assert await bot.next_event("part") == ("part", "#pydle", "human2", "later")
        await human.join("#pydle")
        await human.send("QUIT :gone")
        # ngIRCd quotes a user's quit reason
        assert await bot.next_event("quit") == ("quit", "human2", '"gone"')
    finally:
        await bot.disconnect(expected=True)


async def test_fact_default_client_sends_whois_per_new_user(
    ngircd: NgircdServer, irc_client: IrcClientFactory
) -> None:
    plain = Recorder("whoiser")
    fixed = BridgeReadyClient("nowhois", HOST, ngircd.port)
    await _connected(plain, ngircd.port)
    await _connected(fixed, ngircd.port)
    try:
        stranger = await irc_client("stranger")
        for target in ("whoiser", "nowhois"):
            for i in range(5):
                await stranger.privmsg(target, f"m{i}")
        plain_got = [(await plain.next_event("private"))[2] for _ in range(5)]
        fixed_got = [(await fixed.next_event("private"))[2] for _ in range(5)]
        assert "WHOIS stranger" in plain.sent  # one WHOIS per unseen nick (ngIRCd has no WHOX)
        assert sorted(plain_got) == [f"m{i}" for i in range(5)]  # order: m0 may come last
        assert fixed_got == [f"m{i}" for i in range(5)]
        await fixed.join("#order")
        await fixed.next_event("join")
        await stranger.join("#order")
        await fixed.next_event("join")
        await stranger.send("NICK renamed")
        await stranger.privmsg("#order", "after rename")
        assert await fixed.next_event("nick") == ("nick", "stranger", "renamed")
        assert await fixed.next_event("message") == ("message", "#order", "renamed", "after rename")
        assert not [line for line in fixed.sent if line.startswith("WHOIS")]
    finally:
        await plain.disconnect(expected=True)
        await fixed.disconnect(expected=True)


async def test_fact_message_counts_characters_not_bytes(
    ngircd: NgircdServer, irc_client: IrcClientFactory
) -> None:
    watcher = await irc_client("watcher")
    await watcher.join("#bytes")
    bot = Recorder("chunker")
    await _connected(bot, ngircd.port)
    bot.RECONNECT_ON_ERROR = False
    try:
        await bot.join("#bytes")
        await bot.next_event("join")
        await bot.message("#bytes", "é" * 400)  # 400 characters, 800 bytes in one line
        quit_line = await watcher.wait_for(
            lambda ln: ln.nick == "chunker" and ln.command in ("QUIT", "PRIVMSG")
        )
        assert quit_line.command == "QUIT"
        assert quit_line.text == "Request too long"
    finally:
        await bot.disconnect(expected=True)


@pytest.mark.parametrize("client_kind", ["pydle-default", "bridge-ready"])
async def test_fact_reconnect_after_server_outage(
    fresh_ngircd: NgircdServer, client_kind: str
) -> None:
    if client_kind == "pydle-default":
        # without WHOIS: a WHOIS for the server's closing NOTICE can meet the closed socket,
        # and the reset it draws is test_fact_reset_goes_unnoticed's case, not this one
        bot: Recorder = NoWhoisRecorder("outage")
        bot.RECONNECT_DELAYS = [0.05]
        bot.RECONNECT_MAX_ATTEMPTS = 10
    else:
        bot = BridgeReadyClient("outage", HOST, fresh_ngircd.port)
        bot.wanted_channels.add("#back")
    await _connected(bot, fresh_ngircd.port)
    try:
        await fresh_ngircd.astop()
        # a loaded machine may notice the outage late: count the downtime from the notice
        await until(lambda: not bot.connected, "the client to notice the outage", 5.0)
        await asyncio.sleep(0.5)  # down longer than the first retry
        await fresh_ngircd.astart()
        if client_kind == "pydle-default":
            # the first failed attempt raises inside pydle's handler and ends its reconnect loop
            await asyncio.sleep(1.0)
            assert not bot.connected
            return
        await asyncio.wait_for(bot.ready.wait(), 5)
        assert bot.connected
        assert bot.reconnects == 1
        human = await IrcTestClient.connect(fresh_ngircd.port, "checker")
        try:
            await human.join("#back")
            names = next(ln for ln in human.history if ln.command == "353")
            assert "outage" in names.text.replace("@", "").split()
        finally:
            await human.close()
    finally:
        await bot.disconnect(expected=True)


@pytest.mark.parametrize("client_kind", ["pydle-default", "bridge-ready"])
async def test_fact_reset_goes_unnoticed(ngircd: NgircdServer, client_kind: str) -> None:
    """A reset connection (not a clean close) ends pydle's read loop with the error in a task
    nobody awaits: pydle still says it is connected and never reconnects."""
    proxy = ResetProxy(ngircd.port)
    await proxy.start()
    nick = f"reset{client_kind[0]}"
    if client_kind == "pydle-default":
        bot: Recorder = NoWhoisRecorder(nick)
        bot.RECONNECT_DELAYS = [0.05]
    else:
        bot = BridgeReadyClient(nick, HOST, proxy.port)
    try:
        await _connected(bot, proxy.port)
        bot.ready.clear()
        assert proxy.reset() == 1
        if client_kind == "pydle-default":
            await asyncio.sleep(1.0)
            assert bot.connected
            assert not bot.ready.is_set()
            assert proxy.connections == 1
            return
        await asyncio.wait_for(bot.ready.wait(), 5)
        assert bot.connected
        assert bot.reconnects == 1
        assert proxy.connections == 2
    finally:
        await bot.disconnect(expected=True)
        await proxy.close()
