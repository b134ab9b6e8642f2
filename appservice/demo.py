"""The README's main job: a local Synapse, a user, a room, and a message sent and synced back.

Run it with `./run demo` (or `python -m appservice.demo`); `--once` exits after the round trip
instead of keeping Synapse up for a Matrix client to connect to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
import tempfile
import time

from appservice.api import ReqCreateRoom, ReqInviteUser, ReqRegister
from appservice.client import Client
from appservice.events import Event
from appservice.sync import DefaultSyncer
from appservice.testing.synapse import SynapseServer, synapse_missing_reason, synapse_server

ROUND_TRIP_TIMEOUT = 30.0


def _say(text: str) -> None:
    print(text, flush=True)


class _Inbox:
    """Messages the sync loop has handed us, so the demo can wait for a given event id."""

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.changed = asyncio.Event()

    def on_message(self, event: Event) -> None:
        self.events[event.id] = event
        self.changed.set()

    async def wait_for(self, event_id: str, sync_task: asyncio.Task[None]) -> Event:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            while event_id not in self.events:
                if sync_task.done():
                    sync_task.result()
                    raise RuntimeError("the sync loop ended before the message came back")
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.5)
        return self.events[event_id]


async def _round_trip(synapse: SynapseServer) -> tuple[str, str, str]:
    """Register a user, create a room, send a message and wait until /sync hands it back;
    then let the appservice register a puppet and speak as it through identity assertion."""
    password = secrets.token_urlsafe(12)
    async with (
        Client(synapse.url) as client,
        Client(synapse.url, access_token=synapse.as_token) as appservice,
    ):
        reg = await client.register_dummy(ReqRegister(username="demo", password=password))
        if reg.access_token is None:
            raise RuntimeError("Synapse registered the demo user but returned no access token")
        client.set_credentials(reg.user_id, reg.access_token)
        _say(f"registered {reg.user_id} (m.login.dummy flow)")

        room = await client.create_room(ReqCreateRoom(name="appservice demo"))
        _say(f"created room {room.room_id}")

        inbox = _Inbox()
        assert isinstance(client.syncer, DefaultSyncer)
        client.syncer.on_event_type("m.room.message", inbox.on_message)
        sync_task = asyncio.create_task(client.sync())
        try:
            # The first /sync only sets the starting point (it dispatches nothing): send after it.
            while await client.store.load_next_batch(reg.user_id) is None:
                if sync_task.done():
                    sync_task.result()
                await asyncio.sleep(0.05)

            text = f"hello from appservice at {time.strftime('%H:%M:%S')}"
            started = time.monotonic()
            sent = await client.send_text(room.room_id, text)
            _say(f"sent     {sent.event_id}: {text!r}")
            event = await inbox.wait_for(sent.event_id, sync_task)
            took_ms = (time.monotonic() - started) * 1000
            _say(f"synced   {event.id} from {event.sender}: {event.body()!r} ({took_ms:.0f} ms)")
            if event.body() != text or event.sender != reg.user_id:
                raise RuntimeError("the message synced back is not the one that was sent")

            localpart = f"{synapse.user_namespace_prefix}demo_puppet"
            await appservice.register(
                ReqRegister(
                    username=localpart, type="m.login.application_service", inhibit_login=True
                )
            )
            puppet_id = synapse.user_id(localpart)
            await client.invite_user(room.room_id, ReqInviteUser(user_id=puppet_id))
            puppet = appservice.as_user(puppet_id)
            await puppet.join_room(room.room_id)
            sent = await puppet.send_text(room.room_id, "and hello from a puppet")
            event = await inbox.wait_for(sent.event_id, sync_task)
            _say(f"synced   {event.id} from {event.sender}: {event.body()!r} (identity assertion)")
            if event.sender != puppet_id:
                raise RuntimeError(f"expected the puppet {puppet_id} as sender, got {event.sender}")
        finally:
            client.stop_sync()
            await sync_task
        return reg.user_id, password, room.room_id


async def _main(once: bool) -> int:
    missing = synapse_missing_reason()
    if missing:
        _say(f"demo: {missing}")
        return 1
    with tempfile.TemporaryDirectory(prefix="appservice-demo-") as data_dir:
        _say("starting Synapse on 127.0.0.1 ...")
        async with synapse_server(data_dir) as synapse:
            _say(f"Synapse {synapse.url} (server name {synapse.server_name}) is up")
            user_id, password, room_id = await _round_trip(synapse)
            _say("demo: OK, messages went out and came back through /sync")
            if once:
                return 0
            _say(
                "\nTry it with any Matrix client:\n"
                f"  homeserver  {synapse.url}\n"
                f"  user        {user_id}\n"
                f"  password    {password}\n"
                f"  room        {room_id}\n"
                "Press Ctrl-C to stop Synapse and exit."
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            _say("stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m appservice.demo`."""
    parser = argparse.ArgumentParser(prog="appservice.demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit after the round trip")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.once))


if __name__ == "__main__":
    sys.exit(main())
