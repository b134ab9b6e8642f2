"""Relay rendering of Matrix messages as IRC lines, the network config, and channel <-> portal
IDs: pure functions, no servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appservice.bridge.config import BridgeConfig, ConfigError
from bridges.irc.config import IrcConfig
from bridges.irc.connector import channel_for, remote_id_for
from bridges.irc.render import media_url, relay_lines, strip_reply_fallback
from bridges.irc.split import MIN_BUDGET

HS = "http://127.0.0.1:8008"


def render(
    msgtype: str,
    body: str,
    html: str | None = None,
    *,
    content: dict[str, Any] | None = None,
    reply_to_name: str | None = None,
    edit: bool = False,
) -> list[str]:
    out = relay_lines(
        "Alice",
        msgtype,
        body,
        html,
        content or {},
        budget=400,
        media_base_url=HS,
        reply_to_name=reply_to_name,
        edit=edit,
    )
    return [] if out is None else list(out.lines)


def test_text_notice_emote_and_formatting() -> None:
    assert render("m.text", "hi") == ["<Alice> hi"]
    out = relay_lines("Alice", "m.notice", "fyi", None, {}, budget=400, media_base_url=HS)
    assert out is not None
    assert (out.command, out.lines) == ("NOTICE", ("<Alice> fyi",))
    assert render("m.emote", "waves") == ["\x01ACTION Alice waves\x01"]
    assert render("m.text", "**b**", "<b>b</b> <i>i</i>") == [
        "<Alice> \x02b\x02 \x1di"
    ]  # closed by the line end
    assert render("m.text", "") == []
    assert render("m.text", "a\x03 04red\x01CTCP") == ["<Alice> a 04redCTCP"]  # no injection


def test_multiline_and_long_messages_fit_the_budget() -> None:
    words = " ".join(f"ünï{i}" for i in range(200))
    lines = render("m.text", f"one\n\ntwo\n{words}")
    assert lines[:2] == ["<Alice> one", "<Alice> two"]
    assert all(len(line.encode()) <= 400 for line in lines)
    assert " ".join(line.removeprefix("<Alice> ") for line in lines[2:]) == words
    actions = render("m.emote", words)
    assert all(a.startswith("\x01ACTION Alice ") and len(a.encode()) <= 400 for a in actions)
    assert len(actions) > 1


def test_media_become_links() -> None:
    assert media_url("mxc://hs.example/abc", HS + "/", "a b.png") == (
        f"{HS}/_matrix/client/v1/media/download/hs.example/abc/a%20b.png"
    )
    assert media_url("https://x/y", HS) is None
    assert media_url("mxc://hs/a/b", HS) is None
    lines = render("m.file", "report.pdf", content={"url": "mxc://hs/id1"})
    assert lines == [
        f"<Alice> file: report.pdf {HS}/_matrix/client/v1/media/download/hs/id1/report.pdf"
    ]
    assert render("m.image", "x.png", content={"url": 5}) == ["<Alice> image: x.png"]


def test_replies_and_edits() -> None:
    body = "> <@bob:hs> question\n> more\n\nanswer"
    assert strip_reply_fallback(body) == "answer"
    assert strip_reply_fallback("no quote") == "no quote"
    assert render("m.text", body, reply_to_name="bob") == ["<Alice> bob: answer"]
    html = "<mx-reply><blockquote>q</blockquote></mx-reply>answer"
    assert render("m.text", body, html, reply_to_name="bob") == ["<Alice> bob: answer"]
    assert render("m.text", "fixed", edit=True) == ["<Alice> * fixed"]


def test_budget_too_small_is_an_error() -> None:
    with pytest.raises(ValueError, match="budget"):
        relay_lines("A" * 30, "m.text", "x", None, {}, budget=MIN_BUDGET + 5, media_base_url=HS)


def test_channel_and_portal_ids() -> None:
    assert remote_id_for("#Chan") == "chan"
    assert remote_id_for("#Chan", "#chan") == "chan"
    assert remote_id_for("&local") == "&local"
    assert channel_for("chan") == "#chan"
    assert channel_for("&local") == "&local"
    assert channel_for("bad name") is None
    assert channel_for("") is None
    assert channel_for("a,b") is None


def test_config_defaults_and_errors() -> None:
    cfg = IrcConfig.from_network({"server": {"host": "127.0.0.1", "port": 6697}, "nick": "br"})
    assert (cfg.host, cfg.port, cfg.nick, cfg.mode) == ("127.0.0.1", 6697, "br", "relay")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"server": {"port": 0}}, "network.server.port"),
        ({"server": {"hots": "x"}}, "network.server.hots"),
        ({"mode": "puppets"}, "network.mode"),
        ({"nick": "two words"}, "network.nick"),
        ({"flood_rate": 0}, "network.flood_rate"),
        ({"flood_burst": True}, "network.flood_burst"),
        ({"bogus": 1}, "network.bogus"),
        ({"media_base_url": "nope"}, "network.media_base_url"),
    ]
    for network, key in cases:
        with pytest.raises(ConfigError) as err:
            IrcConfig.from_network(network)
        assert err.value.key == key, network


def test_example_config_is_valid() -> None:
    path = Path(__file__).parents[2] / "bridges" / "irc" / "config.example.yaml"
    config = BridgeConfig.load(path, {}, require_tokens=False)
    assert config.connector == "bridges.irc:create_connector"
    irc = IrcConfig.from_network(config.network)
    assert (irc.mode, irc.flood_burst, irc.nick_suffix) == ("relay", 5, "[m]")
    assert irc.media_base_url == "https://matrix.example.org"
