"""The bridge's IRC connection against a real ngIRCd, without Matrix: flood control, the outbox
while the server is away, giving up on time, and rejoining after a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from bridges.irc.client import Disconnected, IrcEvent, Message, Registered, SelfJoined
from bridges.irc.config import IrcConfig
from bridges.irc.connection import Connection, NotDelivered
from bridges.irc.testing import IrcTestClient, NgircdServer
from tests.irc.reset_proxy import ResetProxy
from tests.irc_bridge.conftest import until


def config(server: NgircdServer, **kw: object) -> IrcConfig:
    network: dict[str, object] = {"server": {"host": server.host, "port": server.port}}
    network.update(kw)
    return IrcConfig.from_network(network)


async def test_flood_control_paces_lines_in_order(ngircd: NgircdServer) -> None:
    watcher = await IrcTestClient.connect(ngircd.port, "watcher")
    events: list[IrcEvent] = []
    conn = Connection(config(ngircd, flood_burst=3, flood_rate=10), "pacer", events.append)
    try:
        await watcher.join("#flood")
        await conn.start()
        await conn.join("#flood")
        assert await conn.wait_joined("#flood", 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        lines = [f"line {i}" for i in range(13)]
        await conn.send("#flood", "PRIVMSG", lines, 10)
        sent_in = loop.time() - started
        got = [
            (await watcher.wait_for(lambda ln: ln.command == "PRIVMSG" and ln.nick == "pacer")).text
            for _ in lines
        ]
        assert got == lines
        assert sent_in >= 0.9  # 3 at once, then 10 at 10 per second
        # what the watcher says reaches the connection's events; its own lines do not
        await watcher.privmsg("#flood", "hi pacer")
        await asyncio.sleep(0.3)
        messages = [e for e in events if isinstance(e, Message)]
        assert messages == [Message("#flood", "watcher", "hi pacer", "text")]
    finally:
        await conn.stop()
        await watcher.close()


async def test_outbox_waits_for_the_server_and_gives_up_on_time(
    fresh_ngircd: NgircdServer,
) -> None:
    events: list[IrcEvent] = []
    await fresh_ngircd.astop()
    conn = Connection(
        config(fresh_ngircd, reconnect_max_delay=0.2, connect_timeout=0.5), "patient", events.append
    )
    try:
        await conn.start()  # the server is down: start returns and keeps trying
        assert not conn.registered.is_set()
        await conn.join("#later")
        with pytest.raises(NotDelivered, match="not reachable"):
            await conn.send("#later", "PRIVMSG", ["too late"], 0.3)
        waiting = asyncio.create_task(conn.send("#later", "PRIVMSG", ["queued"], 20))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await fresh_ngircd.astart()
        watcher = await IrcTestClient.connect(fresh_ngircd.port, "watcher")
        try:
            await watcher.join("#later")
            await asyncio.wait_for(waiting, 20)
            line = await watcher.wait_for(lambda ln: ln.command == "PRIVMSG")
            assert line.text == "queued"  # the line that gave up was never sent
            assert any(isinstance(e, Registered) for e in events)
            assert any(isinstance(e, SelfJoined) and e.channel == "#later" for e in events)
        finally:
            await watcher.close()
    finally:
        await conn.stop()


async def test_stop_leaves_queued_lines_pending(fresh_ngircd: NgircdServer) -> None:
    """A stopped connection neither sends nor fails what waits: the sender stays pending until
    cancelled, so the Matrix event behind it is redelivered after a restart."""
    await fresh_ngircd.astop()
    conn = Connection(config(fresh_ngircd, connect_timeout=0.2), "stopper", lambda e: None)
    await conn.start()
    waiting = asyncio.create_task(conn.send("#x", "PRIVMSG", ["never"], 30))
    await asyncio.sleep(0.1)
    await conn.stop()
    await asyncio.sleep(0.3)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_reset_connection_reconnects_and_rejoins(ngircd: NgircdServer) -> None:
    """A reset (RST) loses the connection like a clean close: the bridge reconnects, joins its
    channels again and sends what waits."""
    proxy = ResetProxy(ngircd.port)
    await proxy.start()
    events: list[IrcEvent] = []
    network = {"server": {"host": ngircd.host, "port": proxy.port}, "reconnect_max_delay": 0.2}
    conn = Connection(IrcConfig.from_network(network), "resetme", events.append)
    watcher = await IrcTestClient.connect(ngircd.port, "resetwatch")
    try:
        await watcher.join("#reset")
        await conn.start()
        await conn.join("#reset")
        assert await conn.wait_joined("#reset", 5)
        assert proxy.reset() == 1
        lost = Disconnected(expected=False)
        await until(lambda: lost in events, "the connection to notice the reset", 5.0)
        await until(lambda: conn.reconnects == 1, "the reconnect", 10.0)
        assert await conn.wait_joined("#reset", 5)
        await conn.send("#reset", "PRIVMSG", ["after the reset"], 5)
        line = await watcher.wait_for(lambda ln: ln.command == "PRIVMSG")
        assert line.text == "after the reset"
    finally:
        await conn.stop()
        await watcher.close()
        await proxy.close()
