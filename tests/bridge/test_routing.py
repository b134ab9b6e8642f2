"""Routing of Matrix events to the connector by capability, echo suppression and permissions.

The handlers are called directly with events shaped like Synapse's; the bridge runs without a
server and with an HTTP pool that refuses (and records) every request — routing a Matrix message
to the connector must not cost one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from appservice.bridge import Bridge, MatrixMessage, MessageRef, Portal, User
from appservice.events import Event
from tests.bridge.test_store_backed import Quiet, Refuse, make_config

ROOM = "!portal:example.org"
ALICE = "@alice:example.org"


class Recording(Quiet):
    """Required methods only: records messages and answers a remote ID."""

    def __init__(self) -> None:
        self.messages: list[tuple[Portal, User, MatrixMessage]] = []

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str | Sequence[str] | None:
        self.messages.append((portal, sender, message))
        return [f"r-{len(self.messages)}", "extra-part"]


class RecordingEdits(Recording):
    def __init__(self) -> None:
        super().__init__()
        self.edits: list[tuple[MessageRef, MatrixMessage]] = []

    async def handle_matrix_edit(
        self, portal: Portal, sender: User, target: MessageRef, message: MatrixMessage
    ) -> None:
        self.edits.append((target, message))


def message(event_id: str, sender: str = ALICE, content: dict[str, Any] | None = None) -> Event:
    body = {"msgtype": "m.text", "body": f"text of {event_id}", **(content or {})}
    return Event("m.room.message", sender, body, id=event_id, room_id=ROOM, timestamp=1)


def edit(event_id: str, target: str, text: str) -> Event:
    return message(
        event_id,
        content={
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


async def running(db: Path, refuse: Refuse, connector: Recording) -> Bridge:
    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    refuse.clients.append(http)
    bridge = Bridge(make_config(db), connector, http=http, serve=False)
    await bridge.start()
    portal = await bridge.portals.get("chat")
    assert portal is not None
    portal.room_id = ROOM
    await bridge.portals.save(portal)
    return bridge


@pytest.fixture
async def refuse() -> AsyncIterator[Refuse]:
    r = Refuse()
    yield r
    for http in r.clients:
        await http.aclose()


async def test_messages_reach_the_connector_once_with_replies_resolved(
    tmp_path: Path, refuse: Refuse
) -> None:
    network = Recording()
    bridge = await running(tmp_path / "r.db", refuse, network)
    try:
        await bridge.matrix.on_message(message("$one"))
        await bridge.matrix.on_message(message("$one"))  # redelivered: not handed over again
        reply = {"m.relates_to": {"m.in_reply_to": {"event_id": "$one"}}}
        await bridge.matrix.on_message(message("$two", content=reply))
        html = {"format": "org.matrix.custom.html", "formatted_body": "<i>x</i>"}
        await bridge.matrix.on_message(message("$three", content=html))
        assert [m.event_id for _, _, m in network.messages] == ["$one", "$two", "$three"]
        portal, sender, first = network.messages[0]
        assert (portal.remote_id, sender.user_id, sender.level) == ("chat", ALICE, "user")
        assert (first.body, first.reply_to, first.html) == ("text of $one", None, None)
        target = network.messages[1][2].reply_to
        assert target is not None
        assert (target.remote_id, target.event_id) == ("r-1", "$one")
        assert network.messages[2][2].html == "<i>x</i>"
        assert bridge.stats.messages_bridged == 3
    finally:
        await bridge.stop()
    assert refuse.requests == []


async def test_an_edit_goes_only_to_a_connector_that_supports_edits(
    tmp_path: Path, refuse: Refuse
) -> None:
    plain = Recording()
    bridge = await running(tmp_path / "a.db", refuse, plain)
    try:
        await bridge.matrix.on_message(message("$orig"))
        await bridge.matrix.on_message(edit("$edit", "$orig", "changed"))
        assert [m.event_id for _, _, m in plain.messages] == ["$orig"]
        assert bridge.stats.dropped == 1
    finally:
        await bridge.stop()

    editing = RecordingEdits()
    bridge = await running(tmp_path / "b.db", refuse, editing)
    try:
        await bridge.matrix.on_message(message("$orig"))
        await bridge.matrix.on_message(edit("$edit", "$orig", "changed"))
        await bridge.matrix.on_message(edit("$edit2", "$never-bridged", "lost"))
        assert [m.event_id for _, _, m in editing.messages] == ["$orig"]
        assert len(editing.edits) == 1
        target, new = editing.edits[0]
        assert (target.remote_id, new.body, new.event_id) == ("r-1", "changed", "$edit")
    finally:
        await bridge.stop()
    assert refuse.requests == []


async def test_echoes_and_unpermitted_users_are_not_bridged(tmp_path: Path, refuse: Refuse) -> None:
    network = Recording()
    bridge = await running(tmp_path / "r.db", refuse, network)
    try:
        puppet = bridge.config.puppet_user_id("bob")
        await bridge.matrix.on_message(message("$echo", sender=puppet))
        await bridge.matrix.on_message(message("$bot", sender=bridge.bot.user_id))
        assert bridge.stats.echoes_ignored == 2
        # "*" is relay in this config, so a user of another server is bridged...
        await bridge.matrix.on_message(message("$relay", sender="@eve:elsewhere.org"))
        assert [m.event_id for _, _, m in network.messages] == ["$relay"]
        assert network.messages[0][1].level == "relay"
        # ...and a message in a room that is no portal (nor a management room) is ignored.
        other = Event("m.room.message", ALICE, {"msgtype": "m.text", "body": "help"},
                      id="$x", room_id="!other:example.org")  # fmt: skip
        await bridge.matrix.on_message(other)
        assert len(network.messages) == 1
    finally:
        await bridge.stop()
    assert refuse.requests == []


async def test_start_logs_the_capabilities(
    tmp_path: Path, refuse: Refuse, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="appservice.bridge"):
        bridge = await running(tmp_path / "r.db", refuse, RecordingEdits())
        await bridge.stop()
    started = [r.getMessage() for r in caplog.records if "started: connector" in r.getMessage()]
    assert started == ["bridge fake started: connector RecordingEdits, capabilities: edits"]
