"""Benchmark: the bridge framework's memory with 10,000 puppets and 1,000 portals.

Everything goes through the framework's own API — ``bridge.puppets.get`` + ``puppet.update_info``
for each puppet, ``bridge.portals.get`` + ``portal.ensure_room`` for each portal, and remote
messages through ``portal.handle_remote_message`` — on a real SQL store, but with a no-op
homeserver: an in-process ``httpx.MockTransport`` that answers every request at once (a made-up
room or event ID), so no request leaves the process. The caches in front of SQL are bounded, so
peak RSS must not grow with the number of puppets or portals (target: under 150 MB).

    .venv/bin/python bench/bridge_memory.py
    .venv/bin/python bench/bridge_memory.py --puppets 20000 --portals 2000 --messages 20000
    .venv/bin/python bench/bridge_memory.py --database postgresql+asyncpg://postgres@127.0.0.1/test

With ``--database`` the tables are written into that (existing, appservice-owned or empty) database.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from _machine import machine, package_versions
from sqlalchemy import func, select

from appservice.bridge import Bridge, ChatInfo, MatrixMessage, Portal, RemoteMessage, RemoteUser
from appservice.bridge import User as BridgeUser
from appservice.bridge.config import BridgeConfig
from appservice.store.schema import bridge_message, bridge_portal, bridge_puppet

TARGET_MB = 150


class NoNetwork:
    """A connector for a network that never says anything to Matrix."""

    async def start(self, bridge: Bridge) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle_matrix_message(
        self, portal: Portal, sender: BridgeUser, message: MatrixMessage
    ) -> str | Sequence[str] | None:
        return None


class NoopHomeserver:
    """Answers every client-server request in-process, as Synapse would in shape."""

    def __init__(self) -> None:
        self.requests = 0
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path
        n = next(self._ids)
        if path.endswith("/createRoom"):
            return httpx.Response(200, json={"room_id": f"!bench{n}"})
        if "/join/" in path:
            return httpx.Response(200, json={"room_id": path.rsplit("/", 1)[-1]})
        if "/send/" in path or "/state/" in path:
            return httpx.Response(200, json={"event_id": f"$bench{n}"})
        if path.endswith("/register"):
            return httpx.Response(200, json={"user_id": "@x:bench.example"})
        return httpx.Response(200, json={})


VERSIONED = ("appservice", "sqlalchemy", "aiosqlite", "asyncpg", "httpx")


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    current = peak
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    except OSError:
        pass
    return current, peak


def config(database: str) -> BridgeConfig:
    return BridgeConfig.from_dict(
        {
            "homeserver": {"address": "http://127.0.0.1:9", "domain": "bench.example"},
            "appservice": {
                "address": "http://127.0.0.1:29331",
                "id": "bench",
                "bot_username": "benchbot",
                "as_token": "a" * 64,
                "hs_token": "h" * 64,
                "database": database,
                "user_prefix": "_bench_",
                "alias_prefix": "_bench_",
            },
        }
    )


async def run(args: argparse.Namespace, database: str) -> int:
    base_now, _ = rss_mb()
    homeserver = NoopHomeserver()
    http = httpx.AsyncClient(transport=httpx.MockTransport(homeserver))
    bridge = Bridge(config(database), NoNetwork(), http=http, serve=False)
    await bridge.start()
    started = time.perf_counter()
    try:
        for n in range(args.puppets):
            puppet = await bridge.puppets.get(f"remote-user-{n}")
            assert puppet is not None
            await puppet.update_info(displayname=f"Remote User {n}")
        t_puppets = time.perf_counter() - started
        for n in range(args.portals):
            portal = await bridge.portals.get(f"remote-chat-{n}")
            assert portal is not None
            await portal.ensure_room(ChatInfo(name=f"Chat {n}", public=True))
        t_portals = time.perf_counter() - started - t_puppets
        for n in range(args.messages):
            portal = await bridge.portals.get(f"remote-chat-{n % args.portals}")
            assert portal is not None
            sender = RemoteUser(
                f"remote-user-{n % args.puppets}", f"Remote User {n % args.puppets}"
            )
            await portal.handle_remote_message(RemoteMessage(f"msg-{n}", sender, f"message {n}"))
        t_messages = time.perf_counter() - started - t_puppets - t_portals
        async with bridge.store.reading() as conn:
            counts = [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (bridge_puppet, bridge_portal, bridge_message)
            ]
        cached = (len(bridge.puppets), len(bridge.portals), len(bridge.users))
    finally:
        await bridge.stop()
        await http.aclose()
    now, peak = rss_mb()
    print(f"machine: {machine()}; Python {platform.python_version()}")
    print(f"versions: {package_versions(VERSIONED)}")
    print(f"database: {bridge.config.appservice.database.split('@')[-1]}")
    print(
        f"rows: {counts[0]} puppets, {counts[1]} portals, {counts[2]} messages; "
        f"cached at the end: {cached[0]} puppets, {cached[1]} portals, {cached[2]} users"
    )
    print(f"no-op homeserver answered {homeserver.requests} requests (none left the process)")
    print(
        f"time: puppets {t_puppets:.1f} s, portals {t_portals:.1f} s, messages {t_messages:.1f} s"
    )
    print(
        f"RSS: {base_now:.1f} MB after imports, {now:.1f} MB at the end, "
        f"peak {peak:.1f} MB (target < {TARGET_MB} MB)"
    )
    ok = counts[0] >= args.puppets and counts[1] >= args.portals and peak < TARGET_MB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--puppets", type=int, default=10_000)
    parser.add_argument("--portals", type=int, default=1_000)
    parser.add_argument(
        "--messages",
        type=int,
        default=10_000,
        help="remote messages bridged, spread over the portals and puppets",
    )
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    if args.puppets < 1 or args.portals < 1 or args.messages < 0:
        parser.error("--puppets and --portals must be >= 1, --messages >= 0")
    if args.database:
        return asyncio.run(run(args, args.database))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(args, f"sqlite+aiosqlite:///{tmp}/bench.db"))


if __name__ == "__main__":
    sys.exit(main())
