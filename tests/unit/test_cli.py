"""The `appservice` command (generate-registration, run, db -c, ping, doctor) through `main([...])`,
against real files and loopback HTTP servers; and the structured logging it configures."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import sqlite3
import stat
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appservice.bridge.config import BridgeConfig, LoggingConfig
from appservice.cli import DATABASE_ENV, main, marks
from appservice.logs import REDACTED, add_log_secrets, configure_logging
from appservice.registration import Registration
from appservice.server.context import room_id_var, txn_id_var
from tests.helpers.loopback import Reply, ScriptedApp, free_port, serve

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_TOKEN = "as-5c1e93b7d20f8a64"
HS_TOKEN = "hs-8e2a61f49c3b07d5"
CONNECTOR = "tests.unit.test_cli:make_connector"


def make_connector(config: BridgeConfig) -> object:
    """The connector factory named in the test configs (doctor imports it; run calls it)."""
    return ("connector for", config.appservice.id)


@pytest.fixture(autouse=True)
def _clean_env_and_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("APPSERVICE_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def config_data(tmp_path: Path, homeserver: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "homeserver": {"address": homeserver, "domain": "example.org"},
        "appservice": {
            "address": "http://127.0.0.1:29331",
            "id": "irc",
            "bot_username": "ircbot",
            "as_token": AS_TOKEN,
            "hs_token": HS_TOKEN,
            "database": f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}",
            "user_prefix": "_irc_",
        },
        "network": {"connector": CONNECTOR},
    }


def write_config(tmp_path: Path, data: dict[str, Any] | None = None, **hs: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data or config_data(tmp_path, **hs)), encoding="utf-8")
    return path


def write_registration(config_path: Path, **changes: Any) -> Path:
    reg = BridgeConfig.load(config_path, {}).to_registration().to_dict() | changes
    path = config_path.parent / "registration.yaml"
    path.write_text(yaml.safe_dump(reg), encoding="utf-8")
    return path


def no_secrets(*texts: str) -> None:
    for text in texts:
        assert AS_TOKEN not in text
        assert HS_TOKEN not in text
        assert "Traceback" not in text


# --- generate-registration -------------------------------------------------------------------


def test_generate_registration_fills_tokens_and_keeps_the_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "config.yaml"
    shutil.copy(REPO_ROOT / "config.example.yaml", config_path)
    before = config_path.read_text(encoding="utf-8").splitlines()
    reg_path = tmp_path / "out" / "registration.yaml"
    reg_path.parent.mkdir()

    assert main(["generate-registration", "-c", str(config_path), "-r", str(reg_path)]) == 0
    out, err = capsys.readouterr()

    after = config_path.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [a for a, _ in changed] == ["  as_token: null", "  hs_token: null"]
    config = BridgeConfig.load(config_path, {})
    assert len(config.appservice.as_token) == 64
    assert config.appservice.as_token != config.appservice.hs_token
    registration = Registration.load(reg_path)
    assert config.check_registration(registration) == []
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(reg_path.stat().st_mode) == 0o600
    assert "app_service_config_files:" in out
    assert f"- {reg_path.resolve()}" in out
    assert "Generated as_token and hs_token" in out
    for text in (out, err):
        assert config.appservice.as_token not in text
        assert config.appservice.hs_token not in text

    assert main(["generate-registration", "-c", str(config_path), "-r", str(reg_path)]) == 0
    out = capsys.readouterr().out
    assert "unchanged" in out
    assert "Generated" not in out
    assert BridgeConfig.load(config_path, {}) == config


def test_generate_registration_adds_missing_token_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["appservice"]["as_token"], data["appservice"]["hs_token"]
    text = "# my bridge\n" + yaml.safe_dump(data, sort_keys=False) + "# end\n"
    config_path = tmp_path / "config.yaml"
    config_path.write_text(text, encoding="utf-8")
    assert main(["generate-registration", "-c", str(config_path)]) == 0
    new_text = config_path.read_text(encoding="utf-8")
    assert new_text.startswith("# my bridge\n")
    assert new_text.endswith("# end\n")
    config = BridgeConfig.load(config_path, {})
    assert config.appservice.has_tokens
    reg = Registration.load(tmp_path / "registration.yaml")  # default: beside the config
    assert reg.as_token == config.appservice.as_token


def test_generate_registration_writes_through_a_symlinked_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["appservice"]["as_token"], data["appservice"]["hs_token"]
    real = tmp_path / "real" / "bridge.yaml"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(data), encoding="utf-8")
    link = tmp_path / "config.yaml"
    link.symlink_to(real)
    assert main(["generate-registration", "-c", str(link)]) == 0
    assert link.is_symlink()
    assert BridgeConfig.load(real, {}).appservice.has_tokens


def test_generate_registration_rewrites_a_flow_style_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["appservice"]["as_token"], data["appservice"]["hs_token"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, default_flow_style=True), encoding="utf-8")
    assert main(["generate-registration", "-c", str(config_path)]) == 0
    assert "comments could not be kept" in capsys.readouterr().out
    config = BridgeConfig.load(config_path, {})
    assert config.appservice.has_tokens
    assert config.network == {"connector": CONNECTOR}


def test_tokens_from_the_environment_are_not_written_into_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["appservice"]["as_token"], data["appservice"]["hs_token"]
    config_path = write_config(tmp_path, data)
    before = config_path.read_bytes()
    monkeypatch.setenv("APPSERVICE_APPSERVICE_AS_TOKEN", AS_TOKEN)
    monkeypatch.setenv("APPSERVICE_APPSERVICE_HS_TOKEN", HS_TOKEN)
    assert main(["generate-registration", "-c", str(config_path)]) == 0
    assert config_path.read_bytes() == before
    reg = Registration.load(tmp_path / "registration.yaml")
    assert (reg.as_token, reg.hs_token) == (AS_TOKEN, HS_TOKEN)
    no_secrets(*capsys.readouterr())


def test_a_bad_or_missing_config_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["generate-registration", "-c", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == f"appservice: {missing}: file not found\n"
    data = config_data(tmp_path)
    data["appservice"]["port"] = "abc"
    path = write_config(tmp_path, data)
    for command in ("generate-registration", "run", "ping"):
        assert main([command, "-c", str(path)]) == 1
        err = capsys.readouterr().err
        assert (
            err == f"appservice: {path}: appservice.port: expected an integer 1-65535, got 'abc'\n"
        )


# --- run -------------------------------------------------------------------------------------


def test_run_refuses_a_registration_that_does_not_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    write_registration(config_path, as_token="other-token", url="http://10.1.1.1:1")
    assert main(["run", "-c", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "registration.yaml does not match" in err
    assert "  - url: registration has 'http://10.1.1.1:1'" in err
    assert "  - as_token: the registration's differs from config appservice.as_token" in err
    assert "appservice generate-registration -c" in err
    no_secrets(err)
    assert "other-token" not in err


def test_run_needs_a_registration_file_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    del data["network"]
    config_path = write_config(tmp_path, data)
    assert main(["run", "-c", str(config_path)]) == 1
    assert "no registration file at" in capsys.readouterr().err
    assert main(["run", "-c", str(config_path), "--no-registration-check"]) == 1
    assert "network.connector: missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("connector", "expected"),
    [
        ("no_such_pkg_4821.mod:make", "cannot import module 'no_such_pkg_4821.mod'"),
        ("tests.unit.test_cli:nothing_here", "module 'tests.unit.test_cli' has no 'nothing_here'"),
        ("tests.unit.test_cli:AS_TOKEN", "'tests.unit.test_cli:AS_TOKEN' is not callable"),
    ],
)
def test_run_reports_a_connector_that_cannot_be_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], connector: str, expected: str
) -> None:
    data = config_data(tmp_path)
    data["network"]["connector"] = connector
    config_path = write_config(tmp_path, data)
    write_registration(config_path)
    assert main(["run", "-c", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert f"network.connector: {expected}" in err
    no_secrets(err)


def test_run_starts_the_bridge_with_config_connector_and_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[tuple[Any, ...]] = []

    class StandInBridge:
        def __init__(self, config: BridgeConfig, connector: object, **kw: Any) -> None:
            started.append((config, connector, kw["registration"]))

        async def run(self) -> None:
            logging.getLogger("bridge").info("running with token %s", AS_TOKEN)

    module = types.ModuleType("appservice.bridge.bridge")
    module.Bridge = StandInBridge  # type: ignore[attr-defined]
    module.BridgeError = RuntimeError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "appservice.bridge.bridge", module)
    data = config_data(tmp_path)
    data["logging"] = {"format": "json", "level": "info"}
    config_path = write_config(tmp_path, data)
    reg_path = write_registration(config_path)

    assert main(["run", "-c", str(config_path), "-r", str(reg_path)]) == 0
    [(config, connector, registration)] = started
    assert config == BridgeConfig.load(config_path, {})
    assert connector == ("connector for", "irc")
    assert registration == Registration.load(reg_path)
    err = capsys.readouterr().err
    record = json.loads(err.strip().splitlines()[-1])
    assert record["message"] == f"running with token {REDACTED}"
    assert record["level"] == "INFO"


# --- db with -c ------------------------------------------------------------------------------


def test_db_takes_the_database_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    monkeypatch.setenv(DATABASE_ENV, f"sqlite+aiosqlite:///{tmp_path / 'env.db'}")
    assert main(["db", "upgrade", "-c", str(config_path)]) == 0
    assert "created the schema" in capsys.readouterr().out
    assert (tmp_path / "bridge.db").exists()
    assert not (tmp_path / "env.db").exists()
    assert main(["db", "current", "--check", "-c", str(config_path)]) == 0
    other = tmp_path / "other.db"
    assert main(["db", "current", "-c", str(config_path), "--database", f"sqlite:///{other}"]) == 0
    assert "empty database" in capsys.readouterr().out.splitlines()[-1]


# --- ping ------------------------------------------------------------------------------------


def run_main(*argv: str) -> int:
    """`main` in a worker thread: it runs its own event loop, the test's serves the stand-in."""
    return main(list(argv))


async def test_ping_success_sends_the_as_token_and_a_transaction_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = ScriptedApp(Reply(200, {"duration_ms": 17}))
    async with serve(app) as url:
        config_path = write_config(tmp_path, homeserver=url)
        code = await asyncio.to_thread(run_main, "ping", "-c", str(config_path))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "reached the appservice at http://127.0.0.1:29331 in 17 ms" in out
    [request] = app.requests
    assert request.method == "POST"
    assert request.raw_path == "/_matrix/client/v1/appservice/irc/ping"
    assert request.headers["authorization"] == f"Bearer {AS_TOKEN}"
    assert json.loads(request.body)["transaction_id"].startswith("appservice-cli-")
    no_secrets(out, err)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"}),
            "does not know appservice.as_token (M_UNKNOWN_TOKEN): list the registration file in "
            "its homeserver.yaml `app_service_config_files` and restart it",
        ),
        (
            Reply(403, {"errcode": "M_FORBIDDEN", "error": "id mismatch"}),
            "refused the ping for appservice.id 'irc' (HTTP 403 M_FORBIDDEN id mismatch): the "
            "as_token belongs to a registration with another id",
        ),
        (
            Reply(404, {"errcode": "M_NOT_FOUND", "error": "no such appservice"}),
            "make appservice.id match the `id` of the registration the homeserver loaded",
        ),
        (
            Reply(502, {"errcode": "M_CONNECTION_FAILED", "error": "refused"}),
            "could not connect to the appservice at http://127.0.0.1:29331 (HTTP 502 "
            "M_CONNECTION_FAILED): is `appservice run` running, and is appservice.address right "
            "from the homeserver's point of view",
        ),
        (
            Reply(504, {"errcode": "M_CONNECTION_TIMEOUT", "error": "timeout"}),
            "did not answer the homeserver in time (HTTP 504 M_CONNECTION_TIMEOUT)",
        ),
        (
            Reply(502, {"errcode": "M_BAD_STATUS", "error": "403"}),
            "answered the homeserver's ping with an error (HTTP 502 M_BAD_STATUS 403)",
        ),
        (
            Reply(400, {"errcode": "M_URL_NOT_SET", "error": "no url"}),
            "has `url: null`",
        ),
        (
            Reply(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}),
            "does not support the appservice ping endpoint",
        ),
        (Reply(500, {"errcode": "M_UNKNOWN", "error": "boom"}), "answered HTTP 500 M_UNKNOWN boom"),
    ],
    ids=lambda v: v.json["errcode"] if isinstance(v, Reply) else "",
)
async def test_ping_failure_explains_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reply: Reply, expected: str
) -> None:
    app = ScriptedApp(reply)
    async with serve(app) as url:
        config_path = write_config(tmp_path, homeserver=url)
        code = await asyncio.to_thread(run_main, "ping", "-c", str(config_path))
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"{marks()[1]} ping failed: ")
    assert expected in err
    assert len(app.requests) == 1  # a final answer: not retried
    no_secrets(out, err)


def test_ping_homeserver_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config_path = write_config(tmp_path, homeserver=url)
    assert main(["ping", "-c", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert f"homeserver unreachable at {url} (cannot connect): is it running" in err


async def test_ping_homeserver_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = ScriptedApp(Reply(200, {"duration_ms": 1}, delay=3.0))
    async with serve(app) as url:
        config_path = write_config(tmp_path, homeserver=url)
        code = await asyncio.to_thread(run_main, "ping", "-c", str(config_path), "--timeout", "0.5")
    assert code == 1
    assert "(no answer in time)" in capsys.readouterr().err


# --- doctor ----------------------------------------------------------------------------------


async def doctor(tmp_path: Path, *replies: Reply, data: dict[str, Any] | None = None) -> int:
    app = ScriptedApp(*replies)
    async with serve(app) as url:
        d = data or config_data(tmp_path)
        d["homeserver"]["address"] = url
        config_path = write_config(tmp_path, d)
        if not (tmp_path / "registration.yaml").exists():
            write_registration(config_path)
        return await asyncio.to_thread(run_main, "doctor", "-c", str(config_path))


VERSIONS = Reply(200, {"versions": ["v1.11", "v1.12"]})
WHOAMI = Reply(200, {"user_id": "@ircbot:example.org"})


async def test_doctor_all_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = await doctor(tmp_path, VERSIONS, WHOAMI)
    out = capsys.readouterr().out
    ok = marks()[0]
    assert result == 0, out
    lines = out.splitlines()
    assert lines[0] == f"{ok} config {tmp_path / 'config.yaml'} is valid"
    assert lines[1] == f"{ok} network.connector '{CONNECTOR}' imports"
    assert lines[2].startswith(f"{ok} registration ")
    assert lines[3].startswith(f"{ok} database sqlite+aiosqlite:///")
    assert "new or empty" in lines[3]
    assert not (tmp_path / "bridge.db").exists()  # doctor creates nothing
    assert lines[4].startswith(f"{ok} homeserver http://127.0.0.1:")
    assert "(v1.12)" in lines[4]
    assert (
        lines[5] == f"{ok} as_token accepted: the homeserver knows the bot as @ircbot:example.org"
    )
    no_secrets(out)


async def test_doctor_reports_each_failure_with_a_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    data["network"]["connector"] = "no_such_pkg_4821:make"
    with sqlite3.connect(tmp_path / "bridge.db") as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    config_path = write_config(tmp_path, data)
    write_registration(config_path, sender_localpart="otherbot")
    result = await doctor(
        tmp_path, VERSIONS, Reply(200, {"user_id": "@_other:example.org"}), data=data
    )
    out = capsys.readouterr().out
    bad = marks()[1]
    assert result == 1
    assert f"{bad} {config_path}: network.connector: cannot import module 'no_such_pkg_4821'" in out
    assert f"{bad} registration: {tmp_path / 'registration.yaml'} does not match" in out
    assert "  - sender_localpart: registration has 'otherbot'" in out
    assert f"{bad} database: database " in out
    assert "no appservice owner row" in out
    assert f"{bad} as_token: belongs to @_other:example.org, not to @ircbot:example.org" in out
    assert "    check homeserver.domain" in out
    no_secrets(out)


async def test_doctor_rejected_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = Reply(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token"})
    assert await doctor(tmp_path, VERSIONS, unknown) == 1
    out = capsys.readouterr().out
    assert f"{marks()[1]} as_token: rejected by the homeserver" in out
    assert "app_service_config_files" in out


def test_doctor_unreachable_homeserver_skips_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path, homeserver=f"http://127.0.0.1:{free_port()}")
    write_registration(config_path)
    assert main(["doctor", "-c", str(config_path)]) == 1
    out = capsys.readouterr().out
    assert f"{marks()[1]} homeserver unreachable at" in out
    assert out.splitlines()[-1] == "- as_token not checked (homeserver unreachable)"


def test_doctor_stops_at_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_data(tmp_path)
    data["appservice"]["bot_usrname"] = "x"
    path = write_config(tmp_path, data)
    assert main(["doctor", "-c", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"{marks()[1]} config: {path}: appservice.bot_usrname: unknown key; "
        "did you mean 'bot_username'?"
    )
    assert len(out.splitlines()) == 2


def test_marks_fall_back_to_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    assert marks() in (("✓", "✗"), ("OK", "FAIL"))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert marks() == ("OK", "FAIL")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert marks() == ("✓", "✗")


# --- structured logging (appservice.logs) ----------------------------------------------------


def test_json_logs_carry_context_and_extras() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig("DEBUG", "json"), stream=stream)
    log = logging.getLogger("appservice.test")
    txn, room = txn_id_var.set("42"), room_id_var.set("!room:example.org")
    try:
        log.info("handled %d events", 3, extra={"event_type": "m.room.message"})
    finally:
        txn_id_var.reset(txn)
        room_id_var.reset(room)
    log.debug("outside any transaction")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "handled 3 events"
    assert (first["level"], first["logger"]) == ("INFO", "appservice.test")
    assert (first["txn_id"], first["room_id"]) == ("42", "!room:example.org")
    assert first["event_type"] == "m.room.message"
    assert first["time"].endswith("+00:00")
    assert "txn_id" not in second
    assert "room_id" not in second


def test_text_logs_append_the_context() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig("INFO", "text"), stream=stream)
    log = logging.getLogger("appservice.test")
    token = txn_id_var.set("7")
    try:
        log.info("hello")
    finally:
        txn_id_var.reset(token)
    log.info("bye")
    log.debug("hidden at INFO")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" INFO appservice.test: hello [txn=7]")
    assert second.endswith(" INFO appservice.test: bye")


def test_logs_never_carry_a_token() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig("INFO", "json"), secrets=[AS_TOKEN, HS_TOKEN], stream=stream)
    log = logging.getLogger("appservice.test")
    log.info("config %s", {"as_token": AS_TOKEN})
    log.warning("GET /sync?since=s1&access_token=syt_secret_value&timeout=0", extra={"h": HS_TOKEN})
    log.info("header Authorization: Bearer syt_other_secret")
    add_log_secrets(["learnt-later-3f9a"])
    log.info("double puppet token learnt-later-3f9a")
    try:
        raise ValueError(f"bad token {HS_TOKEN}")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    assert AS_TOKEN not in text
    assert HS_TOKEN not in text
    assert "syt_secret_value" not in text
    assert "syt_other_secret" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["message"] == f"config {{'as_token': '{REDACTED}'}}"
    assert records[1]["message"] == f"GET /sync?since=s1&access_token={REDACTED}&timeout=0"
    assert records[1]["h"] == REDACTED
    assert records[2]["message"] == f"header Authorization: Bearer {REDACTED}"
    assert records[3]["message"] == f"double puppet token {REDACTED}"
    assert "ValueError: bad token <redacted>" in records[4]["exception"]


def test_configure_logging_replaces_its_own_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LoggingConfig("INFO", "text"), stream=first)
    handler = configure_logging(LoggingConfig("WARNING", "text"), stream=second)
    assert handler in logging.getLogger().handlers
    logging.getLogger("appservice.test").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert logging.getLogger().level == logging.WARNING


def test_httpx_request_lines_only_when_debugging() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig("INFO", "text"), stream=stream)
    logging.getLogger("httpx").info('HTTP Request: PUT http://hs/send "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a warning still shows")
    assert "HTTP Request" not in stream.getvalue()
    assert "a warning still shows" in stream.getvalue()
    configure_logging(LoggingConfig("DEBUG", "text"), stream=stream)
    logging.getLogger("httpx").info('HTTP Request: PUT http://hs/send "HTTP/1.1 200 OK"')
    assert "HTTP Request" in stream.getvalue()
    configure_logging(LoggingConfig("WARNING", "text"), stream=io.StringIO())  # quiet again
