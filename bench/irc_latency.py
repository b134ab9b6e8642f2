"""Benchmark: the IRC bridge's latency and CPU cost per message, one message at a time.

    .venv/bin/python bench/irc_latency.py --messages 300

Everything is real and on loopback: Synapse (``appservice.testing.synapse_server``), ngIRCd
(``bridges.irc.testing.NgircdServer``) and the IRC bridge in relay mode, started as
``python -m appservice.cli run -c bridge.yaml -r registration.yaml`` in a process of its own (SQLite
database, the log level of the default config). A matrix-nio user (the human, syncing) and a raw IRC
client (``IrcTestClient``) sit in one channel portal, made by the human joining its alias.

After a warm-up (``--warmup`` messages each way), ``--messages`` messages go IRC -> Matrix, each
sent only after the one before arrived: the latency runs from just before the PRIVMSG is written to
when the nio sync callback sees the puppet's message. Then as many go Matrix -> IRC: from just
before ``room_send`` to when the IRC client reads the relay bot's PRIVMSG. For each direction the
utime+stime of the bridge process and of the Synapse process (/proc/<pid>/stat) is read before and
after, with a short pause at both ends so trailing work is counted; it is printed per bridged
message. Synapse's share includes serving the human's sync. Every wait is bounded, and whatever
the script started is stopped on exit, on errors and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nio
import yaml
from _machine import machine, package_versions, process_cpu_ms

from appservice.bridge.config import BridgeConfig
from appservice.testing.synapse import SynapseServer, synapse_server
from bridges.irc.testing import BOT_NICK, IrcTestClient, NgircdServer, bridge_config, find_ngircd

CHANNEL = "#bench"
IRC_NICK = "ircbench"
DISPLAY_NAME = "Bench Human"
MESSAGE_TIMEOUT = 30.0  # seconds for one message to cross the bridge
SETUP_TIMEOUT = 60.0  # seconds for the bridge to come up, the portal to form
STOP_TIMEOUT = 10.0
SETTLE = 1.0  # seconds of quiet before and after a measured phase
SYNC_TIMEOUT_MS = 30_000  # the human's long poll

EventMatch = Callable[[str, dict[str, Any]], bool]
SendOne = Callable[[str], Awaitable[float]]


# --- the bridge process ---------------------------------------------------------------------


def write_config(config: BridgeConfig, path: Path) -> None:
    """``config`` as the YAML file ``appservice run`` loads."""
    data = dataclasses.asdict(config)
    data.pop("path")
    path.touch(mode=0o600)  # it holds the tokens
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    BridgeConfig.load(path)  # fail here, not in the child, if the round trip lost something


@dataclass
class BridgeProcess:
    """``appservice run`` in a child process of its own session; output in ``log_path``."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, config_path: Path, registration: Path, log_path: Path) -> BridgeProcess:
        command = [sys.executable, "-m", "appservice.cli", "run"]
        command += ["-c", str(config_path), "-r", str(registration)]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return cls(proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        """RuntimeError with the log's tail when the bridge has exited."""
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"the bridge exited with status {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def problems(self) -> list[str]:
        """The log's warning, error and traceback lines."""
        marks = ("WARNING", "ERROR", "CRITICAL", "Traceback")
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if any(mark in line for mark in marks)]

    def stop(self) -> None:
        """SIGTERM (the bridge stops cleanly), SIGKILL after STOP_TIMEOUT seconds."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


@contextlib.asynccontextmanager
async def running_bridge(
    synapse: SynapseServer, ircd: NgircdServer, admin: str, workdir: Path
) -> AsyncIterator[BridgeProcess]:
    """The bridge in relay mode against ``synapse`` and ``ircd``, stopped on exit."""
    database = f"sqlite+aiosqlite:///{workdir / 'bridge.db'}"
    config_path = workdir / "bridge.yaml"
    write_config(bridge_config(synapse, database, ircd, admin), config_path)
    bridge = BridgeProcess.start(config_path, synapse.registration_path, workdir / "bridge.log")
    try:
        yield bridge
    except Exception:
        print(f"--- the bridge's log, last lines ---\n{bridge.log_tail()}", file=sys.stderr)
        raise
    finally:
        await asyncio.to_thread(bridge.stop)


async def wait_until_pingable(synapse: SynapseServer, bridge: BridgeProcess) -> None:
    """Until Synapse's appservice ping reaches the bridge (which also flushes held-back work)."""
    url = f"{synapse.url}/_matrix/client/v1/appservice/{synapse.appservice_id}/ping"
    headers = {"Authorization": f"Bearer {synapse.as_token}"}
    async with asyncio.timeout(SETUP_TIMEOUT), httpx.AsyncClient(timeout=5.0) as http:
        while True:
            bridge.check_alive()
            with contextlib.suppress(httpx.TransportError):
                body = {"transaction_id": uuid.uuid4().hex}
                if (await http.post(url, json=body, headers=headers)).status_code == 200:
                    return
            await asyncio.sleep(0.1)


async def wait_for_relay_bot(irc: IrcTestClient, bridge: BridgeProcess) -> None:
    """Until the relay bot is on the IRC network (ISON names it)."""
    async with asyncio.timeout(SETUP_TIMEOUT):
        while True:
            bridge.check_alive()
            await irc.send(f"ISON {BOT_NICK}")
            reply = await irc.wait_for(lambda ln: ln.command == "303", SETUP_TIMEOUT)
            if BOT_NICK.lower() in reply.text.lower().split():
                return
            await asyncio.sleep(0.1)


# --- the Matrix side ------------------------------------------------------------------------


@dataclass
class Human:
    """A matrix-nio user whose sync callback timestamps every timeline event as it arrives."""

    client: nio.AsyncClient
    _pending: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _sync: asyncio.Task[Any] | None = None

    def on_event(self, room: nio.MatrixRoom, event: nio.Event) -> None:
        self._pending.append((time.perf_counter(), room.room_id, dict(event.source)))
        self._arrived.set()

    async def start_syncing(self) -> None:
        """One sync to skip the past, then the sync loop in the background."""
        self.client.add_event_callback(self.on_event, nio.Event)
        await self.client.sync(timeout=0)
        self._sync = asyncio.create_task(self.client.sync_forever(timeout=SYNC_TIMEOUT_MS))

    async def wait(self, match: EventMatch, what: str, within: float = MESSAGE_TIMEOUT) -> float:
        """When the first not yet taken event matching ``match(room_id, event)`` arrived."""
        try:
            async with asyncio.timeout(within):
                while True:
                    for i, (arrived, room_id, event) in enumerate(self._pending):
                        if match(room_id, event):
                            del self._pending[i]
                            return arrived
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            sync = self._sync
            state = "died" if sync is not None and sync.done() else "running"
            raise TimeoutError(f"Matrix: no {what} within {within} s (sync {state})") from None

    async def join(self, alias: str) -> str:
        resp = await self.client.join(alias)
        if not isinstance(resp, nio.JoinResponse):
            raise RuntimeError(f"joining {alias} failed: {resp}")
        return str(resp.room_id)

    async def send_text(self, room_id: str, body: str) -> None:
        content = {"msgtype": "m.text", "body": body}
        resp = await self.client.room_send(room_id, "m.room.message", content)
        if not isinstance(resp, nio.RoomSendResponse):
            raise RuntimeError(f"sending to {room_id} failed: {resp}")

    async def close(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sync
        await self.client.close()


@contextlib.asynccontextmanager
async def logged_in_human(synapse: SynapseServer) -> AsyncIterator[Human]:
    user = await synapse.register_user()
    client = nio.AsyncClient(synapse.url, user.user_id)
    human = Human(client)
    try:
        login = await client.login(user.password)
        if not isinstance(login, nio.LoginResponse):
            raise RuntimeError(f"nio login failed: {login}")
        await client.set_displayname(DISPLAY_NAME)
        await human.start_syncing()
        yield human
    finally:
        await human.close()


def member_joined(room: str, user_id: str) -> EventMatch:
    return lambda room_id, e: (
        room_id == room
        and e.get("type") == "m.room.member"
        and e.get("state_key") == user_id
        and e.get("content", {}).get("membership") == "join"
    )


def message_from(room: str, sender: str, body: str) -> EventMatch:
    return lambda room_id, e: (
        room_id == room
        and e.get("type") == "m.room.message"
        and e.get("sender") == sender
        and e.get("content", {}).get("body") == body
    )


# --- one conversation through the bridge ----------------------------------------------------


@dataclass
class Conversation:
    """The human and the IRC client in one channel portal."""

    human: Human
    irc: IrcTestClient
    room_id: str
    puppet: str

    async def irc_to_matrix(self, text: str) -> float:
        """Seconds from the PRIVMSG to the puppet's message in the human's sync."""
        sent = time.perf_counter()
        await self.irc.privmsg(CHANNEL, text)
        arrived = await self.human.wait(message_from(self.room_id, self.puppet, text), repr(text))
        return arrived - sent

    async def matrix_to_irc(self, text: str) -> float:
        """Seconds from ``room_send`` to the relay bot's PRIVMSG on IRC."""
        sent = time.perf_counter()
        await self.human.send_text(self.room_id, text)
        await self.irc.wait_for(
            lambda ln: (
                ln.command == "PRIVMSG" and ln.nick == BOT_NICK and ln.text.endswith(f" {text}")
            ),
            MESSAGE_TIMEOUT,
        )
        return time.perf_counter() - sent


async def open_portal(synapse: SynapseServer, human: Human, irc: IrcTestClient) -> Conversation:
    """The IRC client joins the channel, the human its alias; returns once both sides see the
    other (the puppet joined the room, the relay bot the channel)."""
    await irc.join(CHANNEL, SETUP_TIMEOUT)
    alias = f"#{synapse.alias_namespace_prefix}{CHANNEL.lstrip('#')}:{synapse.server_name}"
    room_id = await human.join(alias)
    puppet = synapse.user_id(f"{synapse.user_namespace_prefix}{IRC_NICK}")
    await human.wait(member_joined(room_id, puppet), f"{puppet} joining", SETUP_TIMEOUT)
    await irc.wait_for(lambda ln: ln.command == "JOIN" and ln.nick == BOT_NICK, SETUP_TIMEOUT)
    return Conversation(human, irc, room_id, puppet)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    direction: str
    latencies_ms: list[float]
    bridge_cpu_ms: float
    synapse_cpu_ms: float

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    def row(self) -> str:
        n = len(self.latencies_ms)
        bridge, synapse = self.bridge_cpu_ms / n, self.synapse_cpu_ms / n
        ratio = f"{bridge / synapse:.2f}" if synapse else "-"
        return (
            f"{self.direction:<15}{n:>9}{statistics.median(self.latencies_ms):>11.1f}"
            f"{self.percentile(99):>9.1f}{max(self.latencies_ms):>9.1f}"
            f"{bridge:>15.2f}{synapse:>16.2f}{ratio:>16}"
        )


HEADER = (
    f"{'direction':<15}{'messages':>9}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}"
    f"{'bridge CPU ms':>15}{'Synapse CPU ms':>16}{'bridge/Synapse':>16}"
)


async def measure(direction: str, count: int, send_one: SendOne, pids: tuple[int, int]) -> Phase:
    """``count`` messages one after the other; latencies and the two processes' CPU time."""
    bridge_pid, synapse_pid = pids
    await asyncio.sleep(SETTLE)
    bridge0, synapse0 = process_cpu_ms(bridge_pid), process_cpu_ms(synapse_pid)
    slug = direction.lower().replace(" -> ", "-to-")
    latencies = []
    for i in range(count):
        latencies.append(await send_one(f"{slug} {i}") * 1000)
    await asyncio.sleep(SETTLE)
    bridge1, synapse1 = process_cpu_ms(bridge_pid), process_cpu_ms(synapse_pid)
    return Phase(direction, latencies, bridge1 - bridge0, synapse1 - synapse0)


async def warm_up(chat: Conversation, count: int) -> None:
    for i in range(count):
        await chat.irc_to_matrix(f"warm-up IRC {i}")
        await chat.matrix_to_irc(f"warm-up Matrix {i}")


# --- the run --------------------------------------------------------------------------------


def ngircd_version() -> str:
    binary = find_ngircd()
    if binary is None:
        return "ngIRCd missing"
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return (out.stdout or out.stderr).splitlines()[0]


def print_report(args: argparse.Namespace, phases: list[Phase], bridge: BridgeProcess) -> None:
    versions = package_versions(("matrix-synapse", "matrix-nio", "pydle", "appservice"))
    print(f"# IRC bridge (relay mode, separate process): {args.messages} messages each way, one")
    print(f"# at a time, after {args.warmup} each way of warm-up; CPU ms are per bridged message")
    print(f"# machine: {machine()}")
    print(f"# Python {platform.python_version()}; {versions}; {ngircd_version()}")
    print(HEADER)
    for phase in phases:
        print(phase.row())
    problems = bridge.problems()
    kept = bridge.log_path if args.workdir else "removed with its temp dir; --workdir keeps it"
    print(f"# bridge log: {len(problems)} warning/error lines ({kept})")
    for line in problems[:10]:
        print(f"#   {line}")


async def run(args: argparse.Namespace, workdir: Path) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    ircd = NgircdServer(workdir / "ngircd")
    await ircd.astart()
    try:
        async with (
            synapse_server(workdir / "synapse") as synapse,
            logged_in_human(synapse) as human,
            running_bridge(synapse, ircd, human.client.user_id, workdir) as bridge,
        ):
            await wait_until_pingable(synapse, bridge)
            irc = await IrcTestClient.connect(ircd.port, IRC_NICK)
            try:
                await wait_for_relay_bot(irc, bridge)
                chat = await open_portal(synapse, human, irc)
                await warm_up(chat, args.warmup)
                assert synapse.process is not None
                pids = (bridge.pid, synapse.process.pid)
                phases = [
                    await measure("IRC -> Matrix", args.messages, chat.irc_to_matrix, pids),
                    await measure("Matrix -> IRC", args.messages, chat.matrix_to_irc, pids),
                ]
                bridge.check_alive()
            finally:
                await irc.close()
            print_report(args, phases, bridge)
    finally:
        await ircd.astop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300, help="measured messages each way")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up messages each way")
    parser.add_argument(
        "--workdir", type=Path, help="keep the logs and databases here (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.messages < 1 or args.warmup < 0:
        parser.error("--messages must be >= 1 and --warmup >= 0")
    if find_ngircd() is None:
        parser.error("ngIRCd is not installed (apt-get install ngircd)")
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return asyncio.run(run(args, args.workdir.resolve()))
        with tempfile.TemporaryDirectory(prefix="irc-latency-") as tmp:
            return asyncio.run(run(args, Path(tmp)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
