"""The appservice server against a real Synapse: messages in, puppets out, queries, ping, and an
outage (500s) that loses and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from starlette.types import ASGIApp, Receive, Scope, Send

from appservice.api import ReqCreateRoom, ReqInviteUser, ReqRegister
from appservice.client import Client
from appservice.errors import HTTPError
from appservice.events import Event
from appservice.registration import Registration
from appservice.server import AppService
from appservice.testing.synapse import SynapseServer
from tests.helpers.loopback import LoopbackServer

pytestmark = pytest.mark.synapse


class OutageSwitch:
    """ASGI wrapper: in mode "refuse" transactions get a 500 untouched; in "lose" they are
    accepted by the appservice but the 200 is replaced by a 500 (a lost response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.mode = "ok"
        self.refused = 0
        self.lost = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_txn = scope["type"] == "http" and "/transactions/" in scope["path"]
        if not is_txn or self.mode == "ok":
            await self.app(scope, receive, send)
            return
        if self.mode == "refuse":
            self.refused += 1
        else:
            self.lost += 1

            async def swallow(message: object) -> None:
                return None

            await self.app(scope, receive, swallow)
        body = b'{"errcode":"M_UNKNOWN","error":"outage"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Running:
    svc: AppService
    switch: OutageSwitch
    synapse: SynapseServer
    seen: list[Event] = field(default_factory=list)
    alias_queries: list[str] = field(default_factory=list)
    user_queries: list[str] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


async def until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    reg = Registration.load(synapse.registration_path, server_name=synapse.server_name)
    db: Path = tmp_path_factory.mktemp("as-db") / "as.db"
    svc = AppService(reg, synapse.url, database_url=f"sqlite+aiosqlite:///{db}")
    run = Running(svc, OutageSwitch(svc.app), synapse)
    svc.on_event_type("m.room.message")(run.seen.append)

    @svc.on_alias_query
    async def alias_query(alias: str) -> bool:
        run.alias_queries.append(alias)
        localpart = alias[1:].split(":", 1)[0]
        await svc.bot.client.create_room(
            ReqCreateRoom(room_alias_name=localpart, preset="public_chat")
        )
        return True

    @svc.on_user_query
    async def user_query(user_id: str) -> bool:
        run.user_queries.append(user_id)
        localpart = user_id[1:].split(":", 1)[0]
        await register_puppet(svc, localpart)
        return True

    async with svc:
        server = LoopbackServer(run.switch, port=synapse.appservice_port)
        await server.start()
        try:
            await nudge(svc)
            yield run
        finally:
            await server.stop()


async def nudge(svc: AppService) -> None:
    """Ping, so Synapse retries what it backed off on now; without it Synapse still retries
    on its own backoff (2, 4, 8 s), so a ping that fails on a loaded machine is no failure."""
    with contextlib.suppress(HTTPError):
        await svc.ping()


async def register_puppet(svc: AppService, localpart: str) -> None:
    req = ReqRegister(username=localpart, type="m.login.application_service", inhibit_login=True)
    await svc.bot.client.register(req)


async def user_room(run: Running) -> tuple[Client, str]:
    user = await run.synapse.register_user()
    client = Client(run.synapse.url, user.user_id, user.access_token)
    created = await client.create_room(
        ReqCreateRoom(preset="public_chat", invite=[run.svc.bot_user_id])
    )
    await run.svc.bot.join_room(created.room_id)
    return client, created.room_id


async def test_message_from_a_normal_user_reaches_the_handler(running: Running) -> None:
    client, room = await user_room(running)
    sent = await client.send_text(room, "hello appservice")
    await until(lambda: sent.event_id in running.ids(), "the message")
    event = next(e for e in running.seen if e.id == sent.event_id)
    assert event.body() == "hello appservice"
    assert event.room_id == room
    assert event.sender == client.user_id
    assert not running.svc.is_echo(event)
    await client.aclose()


async def test_a_puppet_sends_into_the_room(running: Running) -> None:
    client, room = await user_room(running)
    localpart = f"{running.synapse.user_namespace_prefix}p{secrets.token_hex(4)}"
    puppet_id = f"@{localpart}:{running.synapse.server_name}"
    await register_puppet(running.svc, localpart)
    # svc.intent joins the public room by itself before sending (the cache knows nothing yet)
    puppet = running.svc.intent(puppet_id)
    sent_id = await puppet.send_text(room, "from the puppet")
    history = await client.messages(room, dir="b", limit=10)
    mine = [e for e in history.chunk if e.id == sent_id]
    assert [(e.sender, e.body()) for e in mine] == [(puppet_id, "from the puppet")]
    # the homeserver echoes it to us; it is marked as ours, and the cache saw the puppet join
    await until(lambda: sent_id in running.ids(), "the echo")
    assert await running.svc.state_cache.membership(room, puppet_id) == "join"
    echo = next(e for e in running.seen if e.id == sent_id)
    assert running.svc.is_echo(echo)
    await client.aclose()


async def test_alias_and_user_queries_reach_the_handlers(running: Running) -> None:
    client, room = await user_room(running)
    hs = running.synapse
    alias = f"#{hs.alias_namespace_prefix}q{secrets.token_hex(4)}:{hs.server_name}"
    joined = await client.join_room(alias)  # unknown alias: Synapse asks us, we create the room
    assert running.alias_queries[-1] == alias
    assert joined.room_id.startswith("!")
    assert (await client.resolve_alias(alias)).room_id == joined.room_id
    ghost = f"@{hs.user_namespace_prefix}g{secrets.token_hex(4)}:{hs.server_name}"
    await client.invite_user(room, ReqInviteUser(user_id=ghost))  # unknown user: Synapse asks us
    # Synapse asks while notifying interested services, after the invite has returned
    await until(lambda: ghost in running.user_queries, "the user query")
    missing = f"#notours{secrets.token_hex(3)}:{hs.server_name}"
    with pytest.raises(HTTPError) as err:
        await client.join_room(missing)  # outside our namespace: never asked
    assert err.value.code == 404
    assert missing not in running.alias_queries
    await client.aclose()


async def test_ping_round_trips(running: Running) -> None:
    before = len(running.svc.pings_received)
    duration = await running.svc.ping()
    assert duration >= 0
    assert len(running.svc.pings_received) == before + 1
    assert running.svc.pings_received[-1]


async def test_an_outage_of_500s_loses_and_doubles_nothing(running: Running) -> None:
    client, room = await user_room(running)
    warmup = (await client.send_text(room, "before the outage")).event_id
    await until(lambda: warmup in running.ids(), "the room's setup to be delivered")
    switch = running.switch
    switch.mode = "refuse"
    sent = [(await client.send_text(room, f"during outage {i}")).event_id for i in range(3)]
    await until(lambda: switch.refused >= 2, "Synapse to retry after a 500")  # 2 s backoff
    assert not set(sent) & set(running.ids())
    switch.mode = "lose"  # accepted here, but Synapse sees a 500 and will resend the same txnId
    accepted_before = running.svc.metrics.accepted_txns
    duplicates_before = running.svc.metrics.duplicate_txns
    await nudge(running.svc)
    await until(lambda: switch.lost >= 1, "a delivery whose 200 is lost")
    await until(lambda: running.svc.metrics.accepted_txns > accepted_before, "its acceptance")
    switch.mode = "ok"
    await nudge(running.svc)
    await until(lambda: set(sent) <= set(running.ids()), "every event of the outage")
    await until(
        lambda: running.svc.metrics.duplicate_txns > duplicates_before, "the resent transaction"
    )
    after = (await client.send_text(room, "after the outage")).event_id
    await until(lambda: after in running.ids(), "the message after the outage")
    counts = Counter(running.ids())
    assert [counts[i] for i in [*sent, after]] == [1, 1, 1, 1]
    order = [i for i in running.ids() if i in sent]
    assert order == sent
    await client.aclose()
