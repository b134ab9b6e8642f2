"""A real Synapse homeserver on loopback, for tests and demos, with one appservice registered.

`start_synapse()` writes a test configuration (SQLite, no federation, rate limits lifted, an
appservice registration), starts `python -m synapse.app.homeserver` from the installed
`matrix-synapse` package and waits until it answers. `SynapseServer.register_user()` makes users
through the shared-secret admin API, independent of this project's client.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import hashlib
import hmac
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from appservice.testing.config import (
    ExtraRegistration,
    appservice_registration,
    extra_registration_path,
    homeserver_config,
    log_config,
    merge_overrides,
    write_yaml,
)

__all__ = [
    "RegisteredUser",
    "SynapseFactory",
    "SynapseHarnessError",
    "SynapseServer",
    "astart_synapse",
    "start_synapse",
    "synapse_missing_reason",
    "synapse_server",
]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 40


class SynapseHarnessError(RuntimeError):
    """Synapse could not be started, or refused a harness request (user registration)."""


@dataclass(frozen=True)
class RegisteredUser:
    """A user created on the test homeserver, with a logged-in device."""

    user_id: str
    access_token: str = field(repr=False)
    device_id: str
    password: str = field(repr=False)


@dataclass(eq=False)
class SynapseServer:
    """A running test Synapse and the appservice registration it was started with.

    Use it as a (sync or async) context manager, or call `stop()` when done.
    """

    url: str
    server_name: str
    as_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    appservice_id: str
    sender_localpart: str
    appservice_port: int
    user_namespace_prefix: str
    alias_namespace_prefix: str
    data_dir: Path
    registration_path: Path
    registration_shared_secret: str = field(repr=False)
    port: int
    config_path: Path
    log_path: Path
    stdout_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    remove_data_dir: bool = field(default=False, repr=False, compare=False)

    @property
    def appservice_url(self) -> str:
        """The URL Synapse pushes transactions to (http://127.0.0.1:<appservice_port>)."""
        return f"http://127.0.0.1:{self.appservice_port}"

    @property
    def sender_user_id(self) -> str:
        """The appservice bot's user ID, e.g. `@_test_bot:localhost`."""
        return f"@{self.sender_localpart}:{self.server_name}"

    def user_id(self, localpart: str) -> str:
        """The full user ID for `localpart` on this server."""
        return f"@{localpart}:{self.server_name}"

    def bridge_config(self, database: str) -> dict[str, Any]:
        """The `homeserver` and `appservice` sections of a bridge config (see
        `appservice.bridge.config`) matching this server's appservice registration."""
        return {
            "homeserver": {"address": self.url, "domain": self.server_name},
            "appservice": {
                "address": self.appservice_url,
                "hostname": "127.0.0.1",
                "port": self.appservice_port,
                "id": self.appservice_id,
                "bot_username": self.sender_localpart,
                "as_token": self.as_token,
                "hs_token": self.hs_token,
                "database": database,
                "user_prefix": self.user_namespace_prefix,
                "alias_prefix": self.alias_namespace_prefix,
                "ephemeral_events": True,  # the harness registration receives them
            },
        }

    async def register_user(
        self, localpart: str | None = None, *, admin: bool = False
    ) -> RegisteredUser:
        """Create a user through the shared-secret admin API (random localpart when None)."""
        if localpart is None:
            localpart = f"user_{secrets.token_hex(6)}"
        elif not isinstance(localpart, str) or not localpart:
            raise ValueError(f"register_user: localpart must be a non-empty str, got {localpart!r}")
        password = secrets.token_urlsafe(18)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        async with httpx.AsyncClient(timeout=30.0) as http:
            nonce_resp = await http.get(endpoint)
            _check_response(nonce_resp, f"register_user({localpart!r}): nonce")
            nonce = str(nonce_resp.json()["nonce"])
            mac = _registration_mac(
                self.registration_shared_secret, nonce, localpart, password, admin
            )
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac,
            }
            resp = await http.post(endpoint, json=body)
            _check_response(resp, f"register_user({localpart!r})")
        data = resp.json()
        return RegisteredUser(
            user_id=str(data["user_id"]),
            access_token=str(data["access_token"]),
            device_id=str(data.get("device_id", "")),
            password=password,
        )

    @property
    def running(self) -> bool:
        """True while the Synapse process is alive."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of Synapse's log and of its stdout/stderr, for error messages."""
        parts = []
        for path in (self.log_path, self.stdout_path):
            tail = _tail(path, lines)
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts) or "(Synapse wrote no log)"

    def stop(self, kill_after: float = STOP_TIMEOUT) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL after `kill_after` seconds. Idempotent."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(kill_after)
            except subprocess.TimeoutExpired:
                log.warning("Synapse on port %d ignored SIGTERM; killing it", self.port)
                proc.kill()
                proc.wait()
        _live_servers.discard(self)
        if self.remove_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.remove_data_dir = False

    async def astop(self, kill_after: float = STOP_TIMEOUT) -> None:
        """`stop()` without blocking the event loop."""
        await asyncio.to_thread(self.stop, kill_after)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()


def synapse_missing_reason() -> str | None:
    """Why Synapse cannot be started from this interpreter, or None when it can."""
    spec = importlib.util.find_spec("synapse")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if any(Path(loc, "app", "homeserver.py").is_file() for loc in locations):
        return None
    return (
        f"matrix-synapse is not installed in {sys.executable} "
        "(install the extra: pip install 'appservice[testing]')"
    )


def start_synapse(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    appservice_port: int | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    extra_registrations: Sequence[ExtraRegistration] = (),
    lift_rate_limits: bool = True,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> SynapseServer:
    """Start Synapse on 127.0.0.1 and block until it answers `/_matrix/client/versions`.

    `data_dir` None uses a temporary directory removed by `stop()`; a given directory is kept
    (and reused: its database and signing key survive restarts). `config_overrides` is merged
    into homeserver.yaml (nested dicts merged; a None value removes the key). Raises
    `SynapseHarnessError` with the tail of Synapse's log if it exits or is not ready in time.
    """
    server = _launch(
        data_dir, port, appservice_port, config_overrides, extra_registrations, lift_rate_limits
    )
    _wait_ready_or_raise(server, startup_timeout)
    return server


async def astart_synapse(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    appservice_port: int | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    extra_registrations: Sequence[ExtraRegistration] = (),
    lift_rate_limits: bool = True,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> SynapseServer:
    """`start_synapse()` without blocking the event loop while Synapse starts."""
    server = _launch(
        data_dir, port, appservice_port, config_overrides, extra_registrations, lift_rate_limits
    )
    await asyncio.to_thread(_wait_ready_or_raise, server, startup_timeout)
    return server


@contextlib.asynccontextmanager
async def synapse_server(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    appservice_port: int | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    extra_registrations: Sequence[ExtraRegistration] = (),
    lift_rate_limits: bool = True,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> AsyncIterator[SynapseServer]:
    """Async context manager: a Synapse started as `start_synapse()` does, stopped on exit."""
    server = await astart_synapse(
        data_dir,
        port=port,
        appservice_port=appservice_port,
        config_overrides=config_overrides,
        extra_registrations=extra_registrations,
        lift_rate_limits=lift_rate_limits,
        startup_timeout=startup_timeout,
    )
    try:
        yield server
    finally:
        await server.astop()


class SynapseFactory:
    """Starts extra Synapse servers in subdirectories of `base_dir`; `stop_all()` stops them."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)
        self.servers: list[SynapseServer] = []
        self._started = 0

    async def __call__(
        self,
        *,
        config_overrides: Mapping[str, Any] | None = None,
        extra_registrations: Sequence[ExtraRegistration] = (),
        lift_rate_limits: bool = True,
        appservice_port: int | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> SynapseServer:
        """Start one more Synapse with these settings (see `start_synapse`)."""
        data_dir = self.base_dir / f"synapse-{self._started}"
        self._started += 1
        server = await astart_synapse(
            data_dir,
            appservice_port=appservice_port,
            config_overrides=config_overrides,
            extra_registrations=extra_registrations,
            lift_rate_limits=lift_rate_limits,
            startup_timeout=startup_timeout,
        )
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server this factory started."""
        for server in self.servers:
            server.stop()


# --- internals ---------------------------------------------------------------------------------

_live_servers: set[SynapseServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live_servers):
        server.stop(kill_after=5.0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port(name: str, port: int | None) -> int:
    if port is None:
        return _free_port()
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"start_synapse: {name} must be an int in 1..65535, got {port!r}")
    return port


def _launch(
    data_dir: str | os.PathLike[str] | None,
    port: int | None,
    appservice_port: int | None,
    config_overrides: Mapping[str, Any] | None,
    extra_registrations: Sequence[ExtraRegistration],
    lift_rate_limits: bool,
) -> SynapseServer:
    if config_overrides is not None and not isinstance(config_overrides, Mapping):
        raise TypeError(
            f"start_synapse: config_overrides must be a mapping, got {type(config_overrides)!r}"
        )
    if isinstance(extra_registrations, str | bytes) or not isinstance(
        extra_registrations, Sequence
    ):
        raise TypeError("start_synapse: extra_registrations must be a list of paths or mappings")
    hs_port = _check_port("port", port)
    as_port = _check_port("appservice_port", appservice_port)
    reason = synapse_missing_reason()
    if reason is not None:
        raise SynapseHarnessError(reason)
    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="appservice-synapse-") if data_dir is None else data_dir)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)

    server = SynapseServer(
        url=f"http://127.0.0.1:{hs_port}",
        server_name="localhost",
        as_token=secrets.token_urlsafe(48),
        hs_token=secrets.token_urlsafe(48),
        appservice_id="test-appservice",
        sender_localpart="_test_bot",
        appservice_port=as_port,
        user_namespace_prefix="_test_",
        alias_namespace_prefix="_test_",
        data_dir=root,
        registration_path=root / "registration.yaml",
        registration_shared_secret=secrets.token_urlsafe(32),
        port=hs_port,
        config_path=root / "homeserver.yaml",
        log_path=root / "homeserver.log",
        stdout_path=root / "synapse.stdout.log",
        remove_data_dir=owned,
    )
    try:
        write_yaml(
            server.registration_path,
            appservice_registration(
                appservice_id=server.appservice_id,
                url=server.appservice_url,
                as_token=server.as_token,
                hs_token=server.hs_token,
                sender_localpart=server.sender_localpart,
                server_name=server.server_name,
                user_namespace_prefix=server.user_namespace_prefix,
                alias_namespace_prefix=server.alias_namespace_prefix,
            ),
        )
        registration_files = [server.registration_path]
        for index, extra in enumerate(extra_registrations):
            registration_files.append(extra_registration_path(root, index, extra))
        config = homeserver_config(
            data_dir=root,
            server_name=server.server_name,
            port=hs_port,
            registration_shared_secret=server.registration_shared_secret,
            registration_files=registration_files,
            lift_rate_limits=lift_rate_limits,
        )
        if config_overrides is not None:
            merge_overrides(config, config_overrides)
        write_yaml(server.config_path, config)
        write_yaml(root / "log_config.yaml", log_config(server.log_path))
    except BaseException:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
        raise
    server.process = _spawn(server)
    _live_servers.add(server)
    return server


def _spawn(server: SynapseServer) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(server.config_path)]
    with server.stdout_path.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            command,
            cwd=server.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent_hook(),
        )


def _die_with_parent_hook() -> Callable[[], None] | None:
    """On Linux, ask the kernel to SIGTERM Synapse if the thread that started it dies.

    The parent-death signal follows the creating *thread*, so it is used only from the main
    thread; elsewhere Synapse is stopped by `stop()` or at interpreter exit.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def _wait_ready_or_raise(server: SynapseServer, timeout: float) -> None:
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise


def _wait_ready(server: SynapseServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.url}/_matrix/client/versions"
    proc = server.process
    assert proc is not None
    with httpx.Client(timeout=2.0) as http:
        while True:
            code = proc.poll()
            if code is not None:
                raise SynapseHarnessError(
                    f"Synapse exited with status {code} while starting "
                    f"(data dir {server.data_dir}):\n{server.log_tail()}"
                )
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SynapseHarnessError(
                    f"Synapse did not answer {url} within {timeout:.0f} s "
                    f"(data dir {server.data_dir}):\n{server.log_tail()}"
                )
            time.sleep(0.1)


def _registration_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    for part in (nonce, user, password):
        mac.update(part.encode("utf-8"))
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def _check_response(resp: httpx.Response, what: str) -> None:
    if resp.status_code != 200:
        raise SynapseHarnessError(
            f"{what}: Synapse answered HTTP {resp.status_code}: {resp.text[:500]}"
        )


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
