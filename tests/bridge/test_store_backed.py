"""Puppets, portals, users and the message map on SQL, with bounded caches and no homeserver.

The bridge runs without serving (``serve=False``) and with an HTTP pool that records and refuses
every request: making rows must never cost a homeserver request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from appservice.bridge import (
    Bridge,
    BridgeError,
    MatrixMessage,
    MessageRef,
    Portal,
    User,
)
from appservice.bridge.config import BridgeConfig


class Quiet:
    async def start(self, bridge: Bridge) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str | Sequence[str] | None:
        return None


def make_config(db: Path) -> BridgeConfig:
    return BridgeConfig.from_dict(
        {
            "homeserver": {"address": "http://127.0.0.1:9", "domain": "example.org"},
            "appservice": {
                "address": "http://127.0.0.1:29331",
                "id": "fake",
                "bot_username": "fakebot",
                "as_token": "a" * 32,
                "hs_token": "h" * 32,
                "database": f"sqlite+aiosqlite:///{db}",
                "user_prefix": "_fake_",
                "alias_prefix": "_fake_",
            },
            "bridge": {
                "permissions": {"example.org": "user", "@boss:example.org": "admin", "*": "relay"}
            },
        }
    )


class Refuse:
    """Every request is recorded and answered 500: none should be made."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.clients: list[httpx.AsyncClient] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "no requests here"})


@pytest.fixture
async def refuse() -> AsyncIterator[Refuse]:
    r = Refuse()
    yield r
    for http in r.clients:
        await http.aclose()


async def started(db: Path, refuse: Refuse, *, puppets: int = 4096, portals: int = 1024) -> Bridge:
    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    refuse.clients.append(http)
    bridge = Bridge(
        make_config(db),
        Quiet(),
        http=http,
        serve=False,
        max_cached_puppets=puppets,
        max_cached_portals=portals,
    )
    await bridge.start()
    return bridge


@pytest.fixture
async def bridge(tmp_path: Path, refuse: Refuse) -> AsyncIterator[Bridge]:
    b = await started(tmp_path / "b.db", refuse, puppets=8, portals=4)
    yield b
    await b.stop()
    assert refuse.requests == []


async def test_puppets_are_rows_with_a_bounded_cache(bridge: Bridge) -> None:
    made = [await bridge.puppets.get(f"Remote User/{n}") for n in range(50)]
    assert len(bridge.puppets) == 8
    first = made[0]
    assert first is not None
    assert first.user_id == "@_fake__remote=20_user=2f0:example.org"
    again = await bridge.puppets.get("Remote User/0", create=False)
    assert again is not None
    assert again.user_id == first.user_id
    assert await bridge.puppets.by_user_id(first.user_id) is again
    assert await bridge.puppets.get("never seen", create=False) is None
    assert await bridge.puppets.by_user_id("@someone:example.org") is None
    assert len(bridge.puppets) == 8


async def test_portals_by_chat_and_room_with_bounded_caches(bridge: Bridge) -> None:
    portals = [await bridge.portals.get(f"chat-{n}") for n in range(30)]
    assert len(bridge.portals) == 4
    assert await bridge.portals.by_room("!nothing") is None  # remembered as not a portal
    p = portals[0]
    assert p is not None
    p.room_id, p.name, p.public = "!nothing", "Zero", True
    await bridge.portals.save(p)  # the room is no longer "not a portal"
    found = await bridge.portals.by_room("!nothing")
    assert found is not None
    assert (found.remote_id, found.name, found.public) == ("chat-0", "Zero", True)
    dm = await bridge.portals.get("chat-0", "@alice:example.org")
    assert dm is not None
    assert dm is not found
    assert dm.room_id is None


def test_aliases_round_trip(tmp_path: Path) -> None:
    bridge = Bridge(make_config(tmp_path / "x.db"), Quiet())
    alias = bridge.portals.alias_for("#Chan/One")
    assert alias == "#_fake_=23_chan=2f_one:example.org"
    assert bridge.portals.remote_id_for_alias(alias) == "#Chan/One"
    assert bridge.portals.remote_id_for_alias("#_fake_x:elsewhere.org") is None
    assert bridge.portals.remote_id_for_alias("#other:example.org") is None
    assert bridge.portals.remote_id_for_alias("#_fake_:example.org") is None
    assert bridge.portals.remote_id_for_alias("#_fake_=zz:example.org") is None


async def test_users_get_their_level_from_the_config(bridge: Bridge) -> None:
    levels = {
        u: (await bridge.users.get(u)).level
        for u in ("@boss:example.org", "@alice:example.org", "@eve:elsewhere.org")
    }
    assert levels == {
        "@boss:example.org": "admin",
        "@alice:example.org": "user",
        "@eve:elsewhere.org": "relay",
    }
    with pytest.raises(ValueError, match="expected a Matrix user ID"):
        await bridge.users.get("alice")


async def test_rows_survive_a_restart(tmp_path: Path, refuse: Refuse) -> None:
    db = tmp_path / "r.db"
    bridge = await started(db, refuse)
    user = await bridge.users.get("@alice:example.org")
    await user.set_management_room("!dm")
    await user.set_remote_id("alice-remote")
    puppet = await bridge.puppets.get("bob")
    assert puppet is not None
    puppet.displayname, puppet.name_set = "Bob", True
    await bridge.puppets.save(puppet)
    portal = await bridge.portals.get("chat")
    assert portal is not None
    portal.room_id = "!room"
    await bridge.portals.save(portal)
    await bridge.messages.add(MessageRef("chat", "", "r1", "$e1", "!room", sender="@x:example.org"))
    await bridge.stop()

    bridge = await started(db, refuse)
    try:
        user = await bridge.users.get("@alice:example.org")
        assert (user.management_room, user.remote_id) == ("!dm", "alice-remote")
        assert await bridge.users.by_remote_id("alice-remote") is user
        puppet = await bridge.puppets.get("bob", create=False)
        assert puppet is not None
        assert (puppet.displayname, puppet.name_set) == ("Bob", True)
        found = await bridge.portals.by_room("!room")
        assert found is not None
        assert found.remote_id == "chat"
        ref = await bridge.messages.by_event("$e1")
        assert ref is not None
        assert (ref.remote_chat, ref.remote_id, ref.room_id) == ("chat", "r1", "!room")
        assert ref.sent_at > 0
    finally:
        await bridge.stop()
    assert refuse.requests == []


async def test_message_map(bridge: Bridge) -> None:
    await bridge.portals.get("c")
    messages = bridge.messages
    await messages.add(MessageRef("c", "", "r1", "$a", "!room"))
    await messages.add(MessageRef("c", "", "r1", "$b", "!room", part="1"))
    assert [r.event_id for r in await messages.parts("c", "", "r1")] == ["$a", "$b"]
    main = await messages.by_remote("c", "", "r1")
    assert main is not None
    assert main.event_id == "$a"
    assert await messages.by_remote("c", "@u:example.org", "r1") is None
    assert await messages.delete_event("$a")
    assert not await messages.delete_event("$a")
    assert await messages.by_event("$a") is None
    with pytest.raises(ValueError, match="event_id must be a non-empty str"):
        await messages.add(MessageRef("c", "", "r2", "", "!room"))


async def test_a_busy_port_fails_start_cleanly(tmp_path: Path, refuse: Refuse) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = make_config(tmp_path / "p.db")
        cfg = replace(cfg, appservice=replace(cfg.appservice, port=port))
        bridge = Bridge(cfg, Quiet())
        with pytest.raises(BridgeError, match=rf"cannot listen on 127.0.0.1:{port} \(appservice"):
            await bridge.start()
    with pytest.raises(BridgeError, match="only after"):
        _ = bridge.store  # everything that started was stopped again
    again = await started(tmp_path / "p.db", refuse)  # the database is free again
    await again.stop()


async def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = make_config(tmp_path / "s.db")
    cfg = replace(cfg, appservice=replace(cfg.appservice, port=port))
    network = Tracked()
    bridge = Bridge(cfg, network)
    task = asyncio.create_task(bridge.run())
    for _ in range(500):
        if network.started:
            break
        await asyncio.sleep(0.01)
    assert network.started
    async with httpx.AsyncClient() as http:
        resp = await http.put(
            f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/1",
            json={"events": []},
            headers={"Authorization": "Bearer " + "h" * 32},
        )
    assert resp.status_code == 200
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 15)
    assert network.stopped
    with pytest.raises(BridgeError):
        _ = bridge.svc


class Tracked(Quiet):
    def __init__(self) -> None:
        self.started = self.stopped = False

    async def start(self, bridge: Bridge) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True
