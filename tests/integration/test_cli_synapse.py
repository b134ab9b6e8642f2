"""`appservice doctor`, `ping` and `run` against the real test Synapse."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appservice.bridge.config import BridgeConfig
from appservice.cli import main, marks
from appservice.registration import Registration
from appservice.testing import SynapseServer
from tests.helpers.loopback import serve

pytestmark = pytest.mark.synapse

REPO_ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = "tests.integration.test_cli_synapse:make_connector"


class IdleConnector:
    """A network connector with no network: enough for `appservice run` to start and stop."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config

    async def start(self, bridge: Any) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle_matrix_message(self, portal: Any, sender: Any, message: Any) -> None:
        return None


def make_connector(config: BridgeConfig) -> IdleConnector:
    """The factory the test configs name in network.connector."""
    return IdleConnector(config)


def write_config(synapse: SynapseServer, tmp_path: Path, **appservice: Any) -> Path:
    """A config agreeing with the fixture's registration (tokens, id, url, namespaces)."""
    reg = Registration.load(synapse.registration_path)
    data = {
        "homeserver": {"address": synapse.url, "domain": synapse.server_name},
        "appservice": {
            "address": reg.url,
            "id": reg.id,
            "bot_username": reg.sender_localpart,
            "as_token": reg.as_token,
            "hs_token": reg.hs_token,
            "database": f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}",
            "user_prefix": synapse.user_namespace_prefix,
            "alias_prefix": synapse.alias_namespace_prefix,
            "ephemeral_events": reg.receive_ephemeral,
        }
        | appservice,
        "network": {"connector": CONNECTOR},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def run_cli(*argv: str) -> int:
    """`main` in a worker thread (it runs its own event loop; this one serves stand-ins)."""
    args: Sequence[str] = list(argv)
    return await asyncio.to_thread(main, args)


def assert_no_tokens(synapse: SynapseServer, *texts: str) -> None:
    for text in texts:
        assert synapse.as_token not in text
        assert synapse.hs_token not in text
        assert "Traceback" not in text


async def test_doctor_passes_with_a_config_matching_the_registration(
    synapse: SynapseServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(synapse, tmp_path)
    code = await run_cli("doctor", "-c", str(config), "-r", str(synapse.registration_path))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    ok = marks()[0]
    lines = out.splitlines()
    assert len(lines) == 6, out
    assert all(line.startswith(f"{ok} ") for line in lines), out
    assert f"homeserver {synapse.url} answers" in out
    assert f"the homeserver knows the bot as {synapse.sender_user_id}" in out
    assert_no_tokens(synapse, out, err)


async def test_doctor_names_a_wrong_as_token(
    synapse: SynapseServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(synapse, tmp_path, as_token="not-the-registered-token")
    code = await run_cli("doctor", "-c", str(config), "-r", str(synapse.registration_path))
    out, err = capsys.readouterr()
    assert code == 1
    bad = marks()[1]
    assert f"{bad} registration: {synapse.registration_path} does not match" in out
    assert "  - as_token: the registration's differs from config appservice.as_token" in out
    assert f"{bad} as_token: rejected by the homeserver" in out
    assert "app_service_config_files" in out
    assert f"homeserver {synapse.url} answers" in out  # reachability is still fine
    assert_no_tokens(synapse, out, err)
    assert "not-the-registered-token" not in out


async def test_ping_reports_connection_failed_when_nothing_listens(
    synapse: SynapseServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(synapse, tmp_path)
    code = await run_cli("ping", "-c", str(config))
    out, err = capsys.readouterr()
    assert code == 1
    assert f"could not connect to the appservice at {synapse.appservice_url}" in err
    assert "(HTTP 502 M_CONNECTION_FAILED)" in err
    assert "is `appservice run` running" in err
    assert "from the homeserver's point of view" in err
    assert_no_tokens(synapse, out, err)


async def test_ping_succeeds_when_the_appservice_answers(
    synapse: SynapseServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pings: list[tuple[str, dict[str, Any]]] = []

    async def ping(request: Request) -> JSONResponse:
        pings.append((request.headers.get("authorization", ""), await request.json()))
        return JSONResponse({})

    app = Starlette(routes=[Route("/_matrix/app/v1/ping", ping, methods=["POST"])])
    config = write_config(synapse, tmp_path)
    async with serve(app, port=synapse.appservice_port):
        code = await run_cli("ping", "-c", str(config))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"reached the appservice at {synapse.appservice_url} in " in out
    [(authorization, body)] = pings
    assert authorization == f"Bearer {synapse.hs_token}"
    assert body["transaction_id"].startswith("appservice-cli-")
    assert_no_tokens(synapse, out, err)


async def test_run_serves_until_sigterm_and_ping_reaches_it(
    synapse: SynapseServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(synapse, tmp_path, hostname="127.0.0.1", port=synapse.appservice_port)
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    cfg["logging"] = {"level": "INFO", "format": "json"}
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    log_path = tmp_path / "run.log"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = ["-m", "appservice.cli", "run", "-c", str(config)]
    command += ["-r", str(synapse.registration_path)]
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            code = 1
            while time.monotonic() < deadline and proc.returncode is None:
                code = await run_cli("ping", "-c", str(config), "--timeout", "10")
                if code == 0:
                    break
                await asyncio.sleep(0.5)
            out, err = capsys.readouterr()
            assert proc.returncode is None, log_path.read_text(encoding="utf-8")
            assert code == 0, err + log_path.read_text(encoding="utf-8")
            assert f"reached the appservice at {synapse.appservice_url}" in out
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    logged = log_path.read_text(encoding="utf-8")
    assert_no_tokens(synapse, logged)
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert records, logged
    assert any("running" in r["message"] for r in records), logged
