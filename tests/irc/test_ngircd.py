"""The ngIRCd harness against the real server: messages, limits, restart, no flood penalty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridges.irc import pytest_fixtures
from bridges.irc.nicks import nicklen_from_isupport
from bridges.irc.pytest_fixtures import IrcClientFactory, require_ngircd
from bridges.irc.split import line_budget, split_message
from bridges.irc.testing import IrcLine, IrcTestClient, NgircdError, NgircdServer, parse_line


def _privmsg_from(nick: str, target: str) -> Callable[[IrcLine], bool]:
    return lambda ln: ln.command == "PRIVMSG" and ln.nick == nick and ln.params[0] == target


def _isupport(client: IrcTestClient) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for line in client.history:
        if line.command == "005":
            for token in line.params[1:-1]:
                key, _, value = token.partition("=")
                tokens[key] = value
    return tokens


def test_parse_line() -> None:
    line = parse_line("@time=x :nick!u@h PRIVMSG #chan :hello :world")
    assert (line.prefix, line.command, line.params) == (
        "nick!u@h",
        "PRIVMSG",
        ("#chan", "hello :world"),
    )
    assert line.nick == "nick"
    assert parse_line("PING :irc.test").text == "irc.test"
    with pytest.raises(ValueError, match="no command"):
        parse_line(":only.prefix")


async def test_two_clients_talk_in_a_channel(irc_client: IrcClientFactory) -> None:
    alice = await irc_client("alice")
    bob = await irc_client("bob")
    await alice.join("#room")
    await bob.join("#room")
    await alice.privmsg("#room", "hello bob, ünïcode ✓")
    got = await bob.wait_for(lambda ln: ln.command == "PRIVMSG" and ln.nick == "alice")
    assert got.params == ("#room", "hello bob, ünïcode ✓")
    await bob.privmsg("alice", "hi in private")
    dm = await alice.wait_for(lambda ln: ln.command == "PRIVMSG" and ln.nick == "bob")
    assert dm.params == ("alice", "hi in private")


async def test_test_config_limits(ngircd: NgircdServer, irc_client: IrcClientFactory) -> None:
    client = await irc_client("limits")
    isupport = _isupport(client)
    assert nicklen_from_isupport(isupport.get("NICKLEN")) == ngircd.max_nick_length == 30
    assert isupport["CASEMAPPING"] == "ascii"
    long_ok = "n" * 30
    await client.send(f"NICK {long_ok}")
    changed = await client.wait_for(lambda ln: ln.command in ("NICK", "432"))
    assert changed.command == "NICK"
    assert changed.text == long_ok
    await client.send(f"NICK {'n' * 31}")
    refused = await client.wait_for(lambda ln: ln.command == "432")
    assert "too long" in refused.text


async def test_operator_block(ngircd: NgircdServer, irc_client: IrcClientFactory) -> None:
    client = await irc_client("wannabe")
    await client.send(f"OPER {ngircd.oper_name} {ngircd.oper_password}")
    assert (await client.wait_for(lambda ln: ln.command in ("381", "464", "491"))).command == "381"


async def test_line_budget_matches_the_server(irc_client: IrcClientFactory) -> None:
    sender = await irc_client("budgeter")
    reader = await irc_client("reader")
    await sender.join("#budget")
    await reader.join("#budget")
    echo = next(ln for ln in sender.history if ln.command == "JOIN")
    assert echo.prefix is not None
    budget = line_budget(echo.prefix, "PRIVMSG", "#budget")
    await sender.privmsg("#budget", "é" * (budget // 2))  # exactly at the budget when even
    await sender.privmsg("#budget", "x" * (budget + 1))  # one byte over: the server truncates
    whole = await reader.wait_for(_privmsg_from("budgeter", "#budget"))
    cut = await reader.wait_for(_privmsg_from("budgeter", "#budget"))
    assert whole.text == "é" * (budget // 2)
    assert cut.text != "x" * (budget + 1)  # ngIRCd cuts the relayed line (marking it "[CUT]")
    assert len(cut.text.encode()) <= budget
    text = "long message " * 200 + "🇫🇷 the end"
    lines = split_message(text, budget)
    for line in lines:
        await sender.privmsg("#budget", line)
    received = [(await reader.wait_for(_privmsg_from("budgeter", "#budget"))).text for _ in lines]
    assert received == lines
    assert " ".join(received) == text.rstrip()


async def test_restart_on_same_port_and_reconnect(fresh_ngircd: NgircdServer) -> None:
    port = fresh_ngircd.port
    alice = await IrcTestClient.connect(port, "alice")
    bob = await IrcTestClient.connect(port, "bob")
    try:
        await alice.join("#r")
        await bob.join("#r")
        await fresh_ngircd.arestart()
        assert fresh_ngircd.port == port
        assert fresh_ngircd.running
        await alice.wait_closed()
        await bob.wait_closed()
        assert not alice.connected
        with pytest.raises(ConnectionError):
            await alice.wait_for(lambda ln: False, within=1)
    finally:
        await alice.close()
        await bob.close()
    alice = await IrcTestClient.connect(port, "alice")
    bob = await IrcTestClient.connect(port, "bob")
    try:
        await alice.join("#r")
        await bob.join("#r")
        await alice.privmsg("#r", "after restart")
        got = await bob.wait_for(lambda ln: ln.command == "PRIVMSG")
        assert got.text == "after restart"
    finally:
        await alice.close()
        await bob.close()


async def test_stopped_server_refuses_and_stop_is_idempotent(fresh_ngircd: NgircdServer) -> None:
    await fresh_ngircd.astop()
    assert not fresh_ngircd.running
    with pytest.raises(ConnectionRefusedError):
        await IrcTestClient.connect(fresh_ngircd.port, "nobody", within=2)
    fresh_ngircd.stop()
    await fresh_ngircd.astart()
    client = await IrcTestClient.connect(fresh_ngircd.port, "back")
    await client.close()


def test_bad_binary_reports_clearly(tmp_path: Path) -> None:
    server = NgircdServer(tmp_path, binary="/bin/false")
    with pytest.raises(NgircdError, match="exited with status 1"):
        server.start()


async def test_bursts_arrive_without_flood_penalty(irc_client: IrcClientFactory) -> None:
    sender = await irc_client("burster")
    reader = await irc_client("counter")
    await sender.join("#flood")
    await reader.join("#flood")
    bursts, per_burst = 30, 10
    start = time.monotonic()
    for b in range(bursts):
        for m in range(per_burst):
            await sender.privmsg("#flood", f"burst {b} message {m}")
        await asyncio.sleep(0)
    got: list[IrcLine] = []
    for _ in range(bursts * per_burst):
        got.append(await reader.wait_for(lambda ln: ln.command == "PRIVMSG", within=10))
    elapsed = time.monotonic() - start
    assert [ln.text for ln in got] == [
        f"burst {b} message {m}" for b in range(bursts) for m in range(per_burst)
    ]
    # with ngIRCd's default penalties 20 messages took about 6 s; here 300 take well under 5 s
    assert elapsed < 5.0, f"{bursts * per_burst} messages took {elapsed:.2f}s"


def test_missing_ngircd_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytest_fixtures, "find_ngircd", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="ngIRCd is not installed"):
        require_ngircd()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        require_ngircd()
