"""The README's main job: Synapse, ngIRCd and the IRC bridge on loopback, a message each way.

Run it with `./run demo` (or `python -m bridges.irc.demo`). It starts a throwaway Synapse and
ngIRCd, runs the bridge in relay mode with SQLite, has a Matrix user and an IRC user meet in
`#demo`, shows one message crossing each way, then prints how to connect your own Matrix and IRC
clients and keeps everything running until Ctrl-C. `--once` exits after the crossing (for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appservice import Client, DefaultSyncer, Event
from appservice.bridge import Bridge
from appservice.testing import SynapseServer, synapse_missing_reason, synapse_server
from bridges.irc import create_connector
from bridges.irc.testing import (
    BOT_NICK,
    IrcLine,
    IrcTestClient,
    NgircdServer,
    bridge_config,
    find_ngircd,
)

CHANNEL = "#demo"
IRC_NICK = "bob"
MATRIX_NAME = "Alice"
WAIT = 60.0


def _say(text: str) -> None:
    print(text, flush=True)


class _Timeline:
    """The Matrix user's synced messages, so the demo can wait for one it expects."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def on_message(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, pred: Callable[[Event], bool], sync: asyncio.Task[None]) -> Event:
        async with asyncio.timeout(WAIT):
            while True:
                for event in self.events:
                    if pred(event):
                        return event
                if sync.done():
                    sync.result()
                    raise RuntimeError("the Matrix sync loop ended before the message arrived")
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self.changed.wait()


async def _cross(
    synapse: SynapseServer, ircd: NgircdServer, human: Client, irc: IrcTestClient
) -> str:
    """Meet in the portal, send one message each way; the portal's room ID."""
    alias = f"#{synapse.alias_namespace_prefix}{CHANNEL.lstrip('#')}:{synapse.server_name}"
    room = await human.join_room(alias)
    _say(f"Matrix: {human.user_id} joined {alias} -> portal room {room.room_id}")
    await irc.wait_for(lambda ln: ln.command == "JOIN" and ln.nick == BOT_NICK, within=WAIT)
    _say(f"IRC:    the bridge's {BOT_NICK} joined {CHANNEL} on 127.0.0.1:{ircd.port}")

    timeline = _Timeline()
    assert isinstance(human.syncer, DefaultSyncer)
    human.syncer.on_event_type("m.room.message", timeline.on_message)
    sync = asyncio.create_task(human.sync())
    try:
        # The first /sync only sets the starting point (it dispatches nothing): send after it.
        async with asyncio.timeout(WAIT):
            while await human.store.load_next_batch(human.user_id) is None:
                if sync.done():
                    sync.result()
                await asyncio.sleep(0.05)

        text = f"hello from IRC at {time.strftime('%H:%M:%S')}"
        started = time.monotonic()
        await irc.privmsg(CHANNEL, text)
        event = await timeline.wait_for(
            lambda e: e.room_id == room.room_id and e.body() == text, sync
        )
        took = (time.monotonic() - started) * 1000
        _say(f"IRC -> Matrix: <{IRC_NICK}> {text!r} arrived as {event.sender} ({took:.0f} ms)")

        text = f"hello from Matrix at {time.strftime('%H:%M:%S')}"
        started = time.monotonic()
        await human.send_text(room.room_id, text)
        line = await irc.wait_for(_relayed(text), within=WAIT)
        took = (time.monotonic() - started) * 1000
        _say(f"Matrix -> IRC: {text!r} arrived as {line.nick}: {line.text!r} ({took:.0f} ms)")
    finally:
        human.stop_sync()
        await sync
    return room.room_id


def _relayed(text: str) -> Callable[[IrcLine], bool]:
    return lambda ln: ln.command == "PRIVMSG" and ln.nick == BOT_NICK and ln.text.endswith(text)


async def _wait_for_ctrl_c() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _main(once: bool) -> int:
    missing = synapse_missing_reason()
    if missing is None and find_ngircd() is None:
        missing = "ngIRCd is not installed (apt-get install ngircd)"
    if missing:
        _say(f"demo: {missing}")
        return 1
    with tempfile.TemporaryDirectory(prefix="appservice-irc-demo-") as tmp:
        data = Path(tmp)
        _say("starting Synapse and ngIRCd on 127.0.0.1 ...")
        ircd = NgircdServer(data / "ngircd")
        async with synapse_server(data / "synapse") as synapse:
            await ircd.astart()
            try:
                return await _with_servers(synapse, ircd, data, once)
            finally:
                await ircd.astop()


async def _with_servers(synapse: SynapseServer, ircd: NgircdServer, data: Path, once: bool) -> int:
    _say(f"Synapse {synapse.url} (server name {synapse.server_name}), ngIRCd 127.0.0.1:{ircd.port}")
    user = await synapse.register_user("alice")
    config = bridge_config(synapse, f"sqlite+aiosqlite:///{data / 'bridge.db'}", ircd, user.user_id)
    bridge = Bridge(config, create_connector(config))
    await bridge.start()
    _say(f"bridge up: appservice on {synapse.appservice_url}, bot {bridge.bot.user_id}")
    irc = await IrcTestClient.connect(ircd.port, IRC_NICK)
    try:
        async with Client(synapse.url, user.user_id, user.access_token) as human:
            await human.set_display_name(MATRIX_NAME)
            await irc.join(CHANNEL)
            room_id = await _cross(synapse, ircd, human, irc)
        _say("demo: OK, a message crossed each way")
        if once:
            return 0
        alias = f"#{synapse.alias_namespace_prefix}<channel>:{synapse.server_name}"
        _say(
            "\nTry it yourself:\n"
            f"  Matrix client  homeserver {synapse.url}\n"
            f"                 user {user.user_id}  password {user.password}\n"
            f"                 room {room_id}; any IRC channel is the alias {alias}\n"
            f"  IRC client     server 127.0.0.1 port {ircd.port}, then /join {CHANNEL}\n"
            "Press Ctrl-C to stop the bridge, ngIRCd and Synapse."
        )
        await _wait_for_ctrl_c()
        _say("stopping")
        return 0
    finally:
        await irc.close()
        await bridge.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bridges.irc.demo`."""
    parser = argparse.ArgumentParser(prog="bridges.irc.demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the messages crossed")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.once))


if __name__ == "__main__":
    sys.exit(main())
