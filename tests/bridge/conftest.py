"""Shared pieces of the bridge tests: a config for the test Synapse, and a request recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from appservice.bridge.config import BridgeConfig
from appservice.testing import SynapseServer


def bridge_config(
    synapse: SynapseServer, database: str, *, permissions: dict[str, str] | None = None
) -> BridgeConfig:
    """A config matching the test Synapse's appservice registration."""
    sections = synapse.bridge_config(database)
    sections["appservice"]["bot_displayname"] = "Test bridge bot"
    sections["bridge"] = {
        "permissions": permissions or {synapse.server_name: "user"},
        "command_prefix": "!br",
    }
    return BridgeConfig.from_dict(sections)


@dataclass
class Wire:
    """Every request that went over the bridge's HTTP pool, as (method, path)."""

    requests: list[tuple[str, str]] = field(default_factory=list)

    def clear(self) -> None:
        self.requests.clear()

    def kinds(self) -> list[str]:
        """Each request as a short name: register, profile, join, invite, send, ..."""
        out = []
        for method, path in self.requests:
            parts = path.split("/")
            if parts[-1] == "register":
                out.append("register")
            elif "profile" in parts:
                out.append(f"profile {method}")
            elif "join" in parts:
                out.append("join")
            elif "invite" in parts:
                out.append("invite")
            elif "send" in parts:
                out.append("send")
            else:
                out.append(f"{method} {parts[-1]}")
        return out

    def client(self) -> httpx.AsyncClient:
        """An HTTP pool whose event hooks record here."""

        async def on_request(request: httpx.Request) -> None:
            self.requests.append((request.method, request.url.path))

        hooks: dict[str, list[Callable[[Any], Awaitable[None]]]] = {"request": [on_request]}
        return httpx.AsyncClient(timeout=30.0, event_hooks=hooks)


async def until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll ``check`` until true; AssertionError naming ``what`` after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.02)
