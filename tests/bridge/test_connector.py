"""The connector contract: the required protocol, capability detection, and the checks a Bridge
makes before it starts (a non-connector, a registration that does not match the config)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from appservice.bridge import (
    Bridge,
    BridgeError,
    Capabilities,
    ChatInfo,
    MatrixMessage,
    MessageRef,
    NetworkConnector,
    Portal,
    SupportsEdits,
    SupportsRoomMeta,
    User,
    check_connector,
)
from appservice.bridge.config import BridgeConfig


class Minimal:
    async def start(self, bridge: Bridge) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle_matrix_message(
        self, portal: Portal, sender: User, message: MatrixMessage
    ) -> str | Sequence[str] | None:
        return None


class Editing(Minimal):
    async def handle_matrix_edit(
        self, portal: Portal, sender: User, target: MessageRef, message: MatrixMessage
    ) -> None:
        return None

    async def handle_matrix_redaction(
        self, portal: Portal, sender: User, target: MessageRef
    ) -> None:
        return None

    async def get_chat_info(self, remote_id: str) -> ChatInfo | None:
        return None


class HalfMeta(Minimal):
    """Has the name half of SupportsRoomMeta but not the topic half."""

    async def handle_matrix_room_name(self, portal: Portal, sender: User, name: str) -> None:
        return None


class NoSend:
    async def start(self, bridge: Bridge) -> None:
        return None

    async def stop(self) -> None:
        return None


def config(tmp_path: object, **appservice: object) -> BridgeConfig:
    return BridgeConfig.from_dict(
        {
            "homeserver": {"address": "http://127.0.0.1:9", "domain": "example.org"},
            "appservice": {
                "address": "http://127.0.0.1:29331",
                "id": "fake",
                "bot_username": "fakebot",
                "as_token": "a" * 32,
                "hs_token": "h" * 32,
                "database": f"sqlite+aiosqlite:///{tmp_path}/bridge.db",
                "user_prefix": "_fake_",
                "alias_prefix": "_fake_",
                **appservice,
            },
        }
    )


def test_capabilities_are_detected_per_protocol() -> None:
    assert Capabilities.of(Minimal()).names() == []
    caps = Capabilities.of(Editing())
    assert caps.names() == ["edits", "redactions", "chat_lookup"]
    assert (caps.edits, caps.reactions, caps.typing) == (True, False, False)
    assert isinstance(Editing(), SupportsEdits)
    assert isinstance(Minimal(), NetworkConnector)


def test_a_capability_needs_every_method_of_its_protocol() -> None:
    assert not isinstance(HalfMeta(), SupportsRoomMeta)
    assert not Capabilities.of(HalfMeta()).room_meta


def test_check_connector_names_what_is_missing() -> None:
    check_connector(Minimal())
    with pytest.raises(TypeError, match="NoSend is not a NetworkConnector: it lacks handle_matrix"):
        check_connector(NoSend())
    with pytest.raises(TypeError, match="lacks start, stop, handle_matrix_message"):
        check_connector(object())


def test_bridge_refuses_a_non_connector_before_anything_starts(tmp_path: object) -> None:
    with pytest.raises(TypeError, match="lacks handle_matrix_message"):
        Bridge(config(tmp_path), NoSend())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a BridgeConfig"):
        Bridge({"homeserver": {}}, Minimal())  # type: ignore[arg-type]


def test_bridge_refuses_a_registration_that_does_not_match_the_config(tmp_path: object) -> None:
    cfg = config(tmp_path)
    good = cfg.to_registration()
    bridge = Bridge(cfg, Editing(), registration=good)
    assert bridge.registration is good
    assert bridge.capabilities.edits
    wrong = replace(good, sender_localpart="otherbot", hs_token="x" * 32)
    with pytest.raises(BridgeError) as err:
        Bridge(cfg, Minimal(), registration=wrong)
    text = str(err.value)
    assert "sender_localpart" in text
    assert "hs_token" in text
    assert "x" * 32 not in text  # tokens never appear in messages
    assert "h" * 32 not in text


async def test_bridge_parts_are_unavailable_before_start(tmp_path: object) -> None:
    bridge = Bridge(config(tmp_path), Minimal())
    with pytest.raises(BridgeError, match=r"bridge.store is available only after"):
        _ = bridge.store
    with pytest.raises(BridgeError, match=r"bridge.bot is available only after"):
        _ = bridge.bot
