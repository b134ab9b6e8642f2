"""A real IRC network for tests: ngIRCd on loopback, and a tiny raw IRC client for "the human".

`NgircdServer` writes a test configuration (no PAM, DNS or ident, no connection-per-IP limit, no
flood penalties, nicks up to 30 characters, an operator), starts ``ngircd -n -f <config>`` in the
foreground on a free loopback port and waits until it accepts connections. It can be stopped
(SIGTERM, then SIGKILL) and started again on the same port, for tests that need the IRC server to
go away mid-conversation. `IrcTestClient` speaks just enough IRC for a test to act as a person.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from appservice.bridge.config import BridgeConfig

if TYPE_CHECKING:
    from appservice.testing import SynapseServer

__all__ = [
    "BOT_NICK",
    "HOST",
    "IrcLine",
    "IrcTestClient",
    "NgircdError",
    "NgircdServer",
    "bridge_config",
    "find_ngircd",
    "free_port",
    "parse_line",
]

HOST: Final = "127.0.0.1"
BOT_NICK: Final = "relaybot"
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0
_LOG_TAIL_LINES: Final = 30
_MAX_PENDING: Final = 10_000
_live: set[NgircdServer] = set()


class NgircdError(RuntimeError):
    """ngIRCd is missing, did not start, or exited unexpectedly (the message has its log tail)."""


def find_ngircd() -> str | None:
    """Path of the ngircd binary (PATH, then /usr/sbin), or None when it is not installed."""
    found = shutil.which("ngircd")
    if found:
        return found
    fallback = "/usr/sbin/ngircd"
    return fallback if os.access(fallback, os.X_OK) else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _config_text(server: NgircdServer) -> str:
    return f"""\
[Global]
    Name = {server.server_name}
    Info = appservice test network
    Network = {server.network}
    Listen = {HOST}
    Ports = {server.port}
    MotdPhrase = "test network"
    AdminInfo1 = test
    AdminInfo2 = loopback
    AdminEMail = test@localhost

[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = {server.max_nick_length}
    MaxPenaltyTime = 0
    PingTimeout = 120
    PongTimeout = 20

[Options]
    PAM = no
    DNS = no
    Ident = no
    OperCanUseMode = yes

[Operator]
    Name = {server.oper_name}
    Password = {server.oper_password}
"""


@dataclass(eq=False)
class NgircdServer:
    """One ngIRCd process on loopback; `port` stays the same across `stop()`/`start()`."""

    workdir: Path
    port: int = 0
    server_name: str = "irc.test.local"
    network: str = "TestNet"
    max_nick_length: int = 30
    oper_name: str = "oper"
    oper_password: str = field(default="operpass", repr=False)
    binary: str | None = None
    host: str = HOST
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        if not self.port:
            self.port = free_port()

    @property
    def config_path(self) -> Path:
        """The generated ngircd.conf (rewritten at each start)."""
        return self.workdir / "ngircd.conf"

    @property
    def log_path(self) -> Path:
        """ngIRCd's stdout and stderr, appended across restarts."""
        return self.workdir / "ngircd.log"

    @property
    def running(self) -> bool:
        """Whether the ngIRCd process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of ngIRCd's output (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the config, start ngIRCd and wait until it accepts a connection."""
        if self.running:
            return
        binary = self.binary or find_ngircd()
        if binary is None:
            raise NgircdError("ngircd is not installed (Debian package 'ngircd')")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_config_text(self))
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [binary, "-n", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                _live.discard(self)
                raise NgircdError(f"ngircd exited with status {code}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise NgircdError(
            f"ngircd did not listen on {HOST}:{self.port} in {timeout}s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; a stopped server is left alone."""
        proc, self._proc = self._proc, None
        _live.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> None:
        """Stop and start again on the same port (every client is disconnected)."""
        self.stop()
        self.start()

    async def astart(self) -> None:
        """`start` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        """`restart` without blocking the event loop."""
        await asyncio.to_thread(self.restart)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        server.stop(timeout=2.0)


@dataclass(frozen=True)
class IrcLine:
    """One parsed IRC line: ``[:prefix] COMMAND params... [:trailing]``."""

    raw: str
    prefix: str | None
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str | None:
        """The nick of the prefix (``nick!user@host``), or the server name."""
        return None if self.prefix is None else self.prefix.split("!", 1)[0]

    @property
    def text(self) -> str:
        """The last parameter (the message text of PRIVMSG/NOTICE), or ``""``."""
        return self.params[-1] if self.params else ""


def parse_line(raw: str) -> IrcLine:
    """Parse one IRC line (without CRLF); IRCv3 tags are skipped. ValueError when empty."""
    rest = raw
    if rest.startswith("@"):
        _, _, rest = rest.partition(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    head, sep, trailing = rest.partition(" :")
    words = head.split()
    if not words:
        raise ValueError(f"IRC line {raw!r} has no command")
    params = words[1:] + ([trailing] if sep else [])
    return IrcLine(raw, prefix, words[0].upper(), tuple(params))


class IrcTestClient:
    """A raw IRC client for tests: registers, answers PING, and keeps every received line.

    `wait_for` takes (and removes) the first received line, old or new, that matches a predicate,
    so a test never misses a line that arrived before it started waiting.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nick: str):
        self.nick = nick
        self._reader = reader
        self._writer = writer
        self.history: list[IrcLine] = []
        self._pending: list[IrcLine] = []
        self._changed = asyncio.Condition()
        self._closed = False
        self._task = asyncio.create_task(self._read_loop(), name=f"irc-test-client-{nick}")

    @classmethod
    async def connect(
        cls,
        port: int,
        nick: str,
        *,
        host: str = HOST,
        username: str | None = None,
        within: float = 10.0,
    ) -> Self:
        """Connect and register as `nick`; returns once the server sent 001 (welcome)."""
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer, nick)
        await client.send(f"NICK {nick}")
        await client.send(f"USER {username or nick.lower()} 0 * :{nick} (test)")
        welcome = await client.wait_for(
            lambda ln: ln.command in ("001", "432", "433", "ERROR"), within
        )
        if welcome.command != "001":
            await client.close()
            raise ConnectionError(f"IRC registration as {nick!r} failed: {welcome.raw}")
        return client

    @property
    def connected(self) -> bool:
        """False once the server closed the connection (or `close` was called)."""
        return not self._closed

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.readline()
                if not data:
                    break
                line = parse_line(data.decode("utf-8", "replace").rstrip("\r\n"))
                if line.command == "PING":
                    await self.send("PONG :" + line.text)
                async with self._changed:
                    self.history.append(line)
                    self._pending.append(line)
                    if len(self._pending) > _MAX_PENDING:
                        del self._pending[0]
                    self._changed.notify_all()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            async with self._changed:
                self._closed = True
                self._changed.notify_all()

    async def send(self, line: str) -> None:
        """Send one raw line (CRLF added); ValueError if it holds CR, LF or NUL."""
        if any(c in line for c in "\r\n\x00"):
            raise ValueError(f"an IRC line may not contain CR, LF or NUL: {line!r}")
        self._writer.write(line.encode("utf-8") + b"\r\n")
        await self._writer.drain()

    async def join(self, channel: str, within: float = 10.0) -> IrcLine:
        """JOIN and wait for the end of the NAMES list (366)."""
        await self.send(f"JOIN {channel}")
        return await self.wait_for(
            lambda ln: ln.command == "366" and ln.params[1].lower() == channel.lower(), within
        )

    async def privmsg(self, target: str, text: str) -> None:
        """Send one PRIVMSG line (no splitting: long text is the test's business)."""
        await self.send(f"PRIVMSG {target} :{text}")

    async def wait_for(self, predicate: Callable[[IrcLine], bool], within: float = 10.0) -> IrcLine:
        """The first received line matching `predicate`, removed from the pending lines.

        TimeoutError (listing the last lines received) when none comes within `within` seconds;
        ConnectionError when the connection closes first.
        """

        def take() -> IrcLine | None:
            for i, line in enumerate(self._pending):
                if predicate(line):
                    del self._pending[i]
                    return line
            return None

        async def wait() -> IrcLine:
            async with self._changed:
                while True:
                    found = take()
                    if found is not None:
                        return found
                    if self._closed:
                        raise ConnectionError(f"{self.nick}: connection closed while waiting")
                    await self._changed.wait()

        try:
            async with asyncio.timeout(within):
                return await wait()
        except TimeoutError:
            recent = "\n".join(line.raw for line in self.history[-15:])
            raise TimeoutError(
                f"{self.nick}: no matching IRC line within {within}s; last lines:\n{recent}"
            ) from None

    async def wait_closed(self, within: float = 10.0) -> None:
        """Wait until the server closes the connection."""
        async with asyncio.timeout(within):
            await asyncio.shield(self._task)

    async def close(self, message: str = "bye") -> None:
        """QUIT (when still connected) and close the socket."""
        if not self._closed:
            with contextlib.suppress(ConnectionError, OSError):
                await self.send(f"QUIT :{message}")
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def bridge_config(
    synapse: SynapseServer,
    database: str,
    irc: NgircdServer,
    admin: str,
    network: dict[str, Any] | None = None,
) -> BridgeConfig:
    """An IRC bridge config for a test Synapse's registration and ngIRCd ``irc``: relay mode,
    ``admin`` an admin and the server's users plain users, fast reconnects, no flood pacing
    to speak of; ``network`` overrides keys of the network section."""
    sections = synapse.bridge_config(database)
    sections["bridge"] = {"permissions": {synapse.server_name: "user", admin: "admin"}}
    sections["network"] = {
        "connector": "bridges.irc:create_connector",
        "server": {"host": irc.host, "port": irc.port},
        "nick": BOT_NICK,
        "flood_burst": 20,
        "flood_rate": 50,
        "reconnect_max_delay": 1.0,
        "connect_timeout": 10,
        **(network or {}),
    }
    return BridgeConfig.from_dict(sections)
