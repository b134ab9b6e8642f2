"""The real-Synapse harness: the `synapse` fixture, register_user, the appservice registration,
extra servers from `synapse_factory`, and skip-or-fail when Synapse is missing."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from appservice.testing import (
    SynapseFactory,
    SynapseHarnessError,
    SynapseServer,
    start_synapse,
)

WHOAMI = "/_matrix/client/v3/account/whoami"


async def whoami(server: SynapseServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        return await http.get(WHOAMI, headers={"Authorization": f"Bearer {token}"})


async def failed_login_statuses(server: SynapseServer, user_id: str, attempts: int) -> list[int]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": "wrong password",
    }
    statuses = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        for _ in range(attempts):
            resp = await http.post("/_matrix/client/v3/login", json=body)
            statuses.append(resp.status_code)
    return statuses


async def test_versions_lists_v1_spec_versions(synapse: SynapseServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", synapse.url)
    async with httpx.AsyncClient(timeout=10.0) as http:
        resp = await http.get(f"{synapse.url}/_matrix/client/versions")
    assert resp.status_code == 200
    versions = resp.json()["versions"]
    assert any(re.fullmatch(r"v1\.\d+", v) for v in versions), versions


async def test_registered_user_token_works(synapse: SynapseServer) -> None:
    user = await synapse.register_user()
    assert user.user_id.startswith("@user_")
    assert user.user_id.endswith(":localhost")
    assert user.device_id
    resp = await whoami(synapse, user.access_token)
    assert resp.status_code == 200
    assert resp.json()["user_id"] == user.user_id
    assert resp.json()["device_id"] == user.device_id


async def test_register_user_gives_distinct_users_and_honours_localpart(
    synapse: SynapseServer,
) -> None:
    first, second = await asyncio.gather(synapse.register_user(), synapse.register_user())
    assert first.user_id != second.user_id
    assert first.access_token != second.access_token
    named = await synapse.register_user("harness_named")
    assert named.user_id == "@harness_named:localhost"
    assert (await whoami(synapse, second.access_token)).json()["user_id"] == second.user_id


async def test_register_user_rejects_a_taken_localpart(synapse: SynapseServer) -> None:
    await synapse.register_user("harness_twice")
    with pytest.raises(SynapseHarnessError, match="HTTP 400"):
        await synapse.register_user("harness_twice")
    with pytest.raises(ValueError, match="localpart"):
        await synapse.register_user("")


async def test_admin_flag_grants_admin_api(synapse: SynapseServer) -> None:
    admin = await synapse.register_user(admin=True)
    plain = await synapse.register_user()
    path = f"/_synapse/admin/v2/users/{plain.user_id}"
    async with httpx.AsyncClient(base_url=synapse.url, timeout=10.0) as http:
        as_admin = await http.get(path, headers={"Authorization": f"Bearer {admin.access_token}"})
        as_plain = await http.get(path, headers={"Authorization": f"Bearer {plain.access_token}"})
    assert as_admin.status_code == 200
    assert as_admin.json()["admin"] is False
    assert as_plain.status_code == 403


async def test_as_token_is_the_appservice_bot(synapse: SynapseServer) -> None:
    resp = await whoami(synapse, synapse.as_token)
    assert resp.status_code == 200
    assert resp.json()["user_id"] == "@_test_bot:localhost" == synapse.sender_user_id
    bad = await whoami(synapse, synapse.hs_token)
    assert bad.status_code == 401
    assert bad.json()["errcode"] == "M_UNKNOWN_TOKEN"


def test_registration_file_matches_the_server(synapse: SynapseServer) -> None:
    reg = yaml.safe_load(synapse.registration_path.read_text())
    assert reg["id"] == synapse.appservice_id == "test-appservice"
    assert reg["as_token"] == synapse.as_token
    assert reg["hs_token"] == synapse.hs_token
    assert len(synapse.as_token) >= 64
    assert synapse.as_token != synapse.hs_token
    assert reg["url"] == f"http://127.0.0.1:{synapse.appservice_port}"
    assert reg["receive_ephemeral"] is True
    (users,) = reg["namespaces"]["users"]
    assert users["exclusive"] is True
    assert re.fullmatch(users["regex"], f"@{synapse.user_namespace_prefix}puppet:localhost")
    assert not re.fullmatch(users["regex"], "@alice:localhost")
    (aliases,) = reg["namespaces"]["aliases"]
    assert re.fullmatch(aliases["regex"], f"#{synapse.alias_namespace_prefix}room:localhost")


def test_secrets_stay_out_of_repr(synapse: SynapseServer) -> None:
    text = repr(synapse)
    for secret in (synapse.as_token, synapse.hs_token, synapse.registration_shared_secret):
        assert secret not in text


async def test_rate_limits_are_lifted_on_the_session_server(synapse: SynapseServer) -> None:
    user = await synapse.register_user()
    statuses = await failed_login_statuses(synapse, user.user_id, attempts=8)
    assert statuses == [403] * 8


async def test_factory_server_with_rate_limits_and_extra_registration(
    synapse_factory: SynapseFactory, tmp_path: Path
) -> None:
    second_as_token = "second_as_token_" + "x" * 40
    extra = {
        "id": "second-appservice",
        "url": None,
        "as_token": second_as_token,
        "hs_token": "second_hs_token_" + "y" * 40,
        "sender_localpart": "_second_bot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@_second_.*:localhost"}]},
    }
    server = await synapse_factory(
        lift_rate_limits=False,
        extra_registrations=[extra],
        config_overrides={"rc_login": {"failed_attempts": {"per_second": 0.1, "burst_count": 2}}},
    )
    assert server.data_dir.is_relative_to(tmp_path)
    second_bot = await whoami(server, second_as_token)
    assert second_bot.json()["user_id"] == "@_second_bot:localhost"
    user = await server.register_user()
    statuses = await failed_login_statuses(server, user.user_id, attempts=4)
    assert statuses[:2] == [403, 403]
    assert 429 in statuses[2:]


async def test_factory_rejects_bad_input_before_starting(
    synapse_factory: SynapseFactory, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"extra_registrations\[0\]"):
        await synapse_factory(extra_registrations=[tmp_path / "missing.yaml"])
    with pytest.raises(TypeError, match="config_overrides"):
        await synapse_factory(config_overrides=[("server_name", "x")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        start_synapse(tmp_path / "never", port=70000)
    assert synapse_factory.servers == []


async def test_a_synapse_that_exits_reports_its_log(synapse_factory: SynapseFactory) -> None:
    with pytest.raises(SynapseHarnessError, match="exited with status") as info:
        await synapse_factory(config_overrides={"database": {"name": "no_such_engine"}})
    assert "no_such_engine" in str(info.value)


PLUGIN_USER = """
def test_needs_synapse(synapse):
    raise AssertionError("must not run without Synapse")
"""


async def run_pytest_without_synapse(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    """Run pytest on PLUGIN_USER with a stand-in `synapse` package that has no homeserver."""
    (tmp_path / "shadow" / "synapse").mkdir(parents=True)
    (tmp_path / "shadow" / "synapse" / "__init__.py").write_text("")
    (tmp_path / "test_user.py").write_text(textwrap.dedent(PLUGIN_USER))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(tmp_path / "shadow")
    if ci is not None:
        env["CI"] = ci
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "-p", "no:xdist"),
        "test_user.py",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_missing_synapse_skips_or_fails_in_ci(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "ci").mkdir()
    (code, out), (ci_code, ci_out) = await asyncio.gather(
        run_pytest_without_synapse(tmp_path / "local", None),
        run_pytest_without_synapse(tmp_path / "ci", "true"),
    )
    assert code == 0, out
    assert "1 skipped" in out, out
    assert "matrix-synapse is not installed" in out, out
    assert ci_code == 1, ci_out
    assert "1 error" in ci_out, ci_out
    assert "Synapse is required in CI" in ci_out, ci_out
