"""End-to-end IRC bridge tests: real Synapse (``synapse``, from the appservice pytest plugin),
real ngIRCd, a matrix-nio user on the Matrix side and a raw IRC client on the IRC side."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nio
import pytest
import pytest_asyncio

from appservice.bridge import Bridge
from appservice.bridge.config import BridgeConfig
from appservice.testing import SynapseServer
from bridges.irc import IRCConnector, create_connector
from bridges.irc.pytest_fixtures import fresh_ngircd, irc_client, ngircd, require_ngircd
from bridges.irc.testing import BOT_NICK, IrcLine, IrcTestClient, NgircdServer, bridge_config

__all__ = ["BOT_NICK", "fresh_ngircd", "irc_client", "ngircd"]

Nudge = Callable[[], Awaitable[None]]
NUDGE_EVERY = 3.0


async def until(
    check: Callable[[], bool], what: str, seconds: float = 40.0, nudge: Nudge | None = None
) -> None:
    """Poll ``check`` until true; AssertionError naming ``what`` after ``seconds``.

    ``nudge`` runs every few seconds meanwhile: the bridge's ping, so Synapse resends a
    transaction it is backing off on now instead of after its production backoff.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    next_nudge = loop.time() + NUDGE_EVERY
    while not check():
        now = loop.time()
        if now > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        if nudge is not None and now > next_nudge:
            next_nudge = now + NUDGE_EVERY
            await nudge()
        await asyncio.sleep(0.02)


@dataclass
class MatrixHuman:
    """A matrix-nio user whose sync loop records every timeline event's raw JSON."""

    client: nio.AsyncClient
    user_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[Any] | None = None
    nudge: Nudge | None = None

    def on_event(self, room: nio.MatrixRoom, event: nio.Event) -> None:
        source = dict(event.source)
        source.setdefault("room_id", room.room_id)
        self.events.append(source)

    def find(self, room_id: str, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Events in ``room_id`` matching ``pred``."""
        return [e for e in self.events if e.get("room_id") == room_id and pred(e)]

    async def wait(
        self, room_id: str, pred: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The first event in ``room_id`` matching ``pred`` (waiting for it)."""
        await until(lambda: bool(self.find(room_id, pred)), what, nudge=self.nudge)
        return self.find(room_id, pred)[0]

    async def send(self, room_id: str, content: dict[str, Any]) -> str:
        """Send an ``m.room.message``; its event ID."""
        resp = await self.client.room_send(room_id, "m.room.message", content)
        assert isinstance(resp, nio.RoomSendResponse), resp
        return str(resp.event_id)

    async def join(self, alias: str) -> str:
        """Join by alias (the bridge's alias query makes the portal); the room ID."""
        resp = await self.client.join(alias)
        assert isinstance(resp, nio.JoinResponse), resp
        return str(resp.room_id)


@dataclass
class Env:
    """What every test uses: the bridge (restartable), its ngIRCd, and the Matrix human."""

    synapse: SynapseServer
    ircd: NgircdServer
    config: BridgeConfig
    human: MatrixHuman
    bridge: Bridge | None = None

    @property
    def connector(self) -> IRCConnector:
        assert self.bridge is not None
        connector = self.bridge.connector
        assert isinstance(connector, IRCConnector)
        return connector

    async def start_bridge(self) -> Bridge:
        self.bridge = Bridge(self.config, create_connector(self.config))
        await self.bridge.start()
        await self.nudge()
        return self.bridge

    async def nudge(self) -> None:
        """Have Synapse resend what it holds back for the bridge (its ping does that)."""
        if self.bridge is not None:
            with contextlib.suppress(Exception):
                await self.bridge.svc.ping()

    async def from_irc(
        self, irc: IrcTestClient, pred: Callable[[IrcLine], bool], within: float = 40.0
    ) -> IrcLine:
        """``irc.wait_for(pred)``, nudging Synapse every few seconds meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                return await irc.wait_for(pred, within=NUDGE_EVERY)
            except TimeoutError:
                if loop.time() > deadline:
                    raise
                await self.nudge()

    async def stop_bridge(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()

    def alias(self, channel: str) -> str:
        return f"#{self.synapse.alias_namespace_prefix}{channel.lstrip('#')}:localhost"

    def puppet(self, nick: str) -> str:
        return f"@{self.synapse.user_namespace_prefix}{nick.lower()}:localhost"


@contextlib.asynccontextmanager
async def open_env(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory, **network: Any
) -> AsyncIterator[Env]:
    """A running bridge (with ``network`` config overrides), its ngIRCd and a Matrix human."""
    require_ngircd()
    ircd = NgircdServer(tmp_path_factory.mktemp("ngircd-bridge"))
    await ircd.astart()
    db: Path = tmp_path_factory.mktemp("irc-bridge") / "bridge.db"
    user = await synapse.register_user()
    config = bridge_config(synapse, f"sqlite+aiosqlite:///{db}", ircd, user.user_id, network)
    client = nio.AsyncClient(synapse.url, user.user_id)
    login = await client.login(user.password)
    assert isinstance(login, nio.LoginResponse), login
    await client.set_displayname("Alice M")
    human = MatrixHuman(client, user.user_id)
    client.add_event_callback(human.on_event, nio.Event)
    await client.sync(timeout=0)
    human.task = asyncio.create_task(client.sync_forever(timeout=500))
    run = Env(synapse, ircd, config, human)
    human.nudge = run.nudge
    try:
        await run.start_bridge()
        yield run
    finally:
        await run.stop_bridge()
        human.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await human.task
        await client.close()
        await ircd.astop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    """The relay-mode bridge every test of a module shares."""
    async with open_env(synapse, tmp_path_factory) as run:
        yield run
