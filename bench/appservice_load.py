"""Appservice transaction intake benchmark (the load of shared/notes/baselines.md), one run:

    .venv/bin/python bench/appservice_load.py [--transactions 2000] [--warmup 200] [--concurrency 1]
                                              [--rounds 4] [--servers KIND ...]

Servers, each in its own process pinned to CPU 0 (the load generator is pinned to CPU 1):
  ours-sqlite   appservice.AppService, durable intake on SQLite (WAL, synchronous=FULL)
  ours-sqlite-normal  the same with synchronous=NORMAL (survives a killed process, not power loss)
  ours-postgres the same on PostgreSQL (only when named in --servers: a fresh database on the
                server --postgres names, dropped afterwards)
  ours-memory   appservice.AppService with the in-memory inbox
  mautrix       mautrix-python's AppService (aiohttp), handlers counting events
  bare          starlette + uvicorn that parses with orjson and counts (the floor)
Each gets 200 warm-up then 2,000 transactions of 50 m.room.message events (about 15 KB) with
unique txnIds, PUT with Authorization: Bearer, from a small asyncio HTTP/1.1 client (keep-alive).
Printed per server: events/s, p50/p99 latency, server CPU ms per transaction (utime+stime of the
server process from just before the timed run until every event was handled, / transactions);
the handled event count is checked against what was sent. The servers run ``--rounds`` times,
interleaved, every other round in reverse order; each row is the server's median run, and each
ratio is the median of the ratios within a round. Ratios and machine/versions follow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import orjson
from _machine import machine, package_versions, process_cpu_ms, thread_run_ns
from _postgres import fresh_database

HS_TOKEN = "h" * 64
AS_TOKEN = "a" * 64
EVENTS_PER_TXN = 50
ROOMS = 10
SERVER_CPU = 0
CLIENT_CPU = 1
KINDS = [  # each compared pair next to each other (see main_async)
    "ours-sqlite",
    "mautrix",
    "ours-sqlite-normal",
    "ours-postgres",
    "ours-memory",
    "bare",
]
DEFAULT_KINDS = [kind for kind in KINDS if kind != "ours-postgres"]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# --- the servers (run in a child process: --serve KIND) ---------------------------------------


def serve(kind: str, port: int, workdir: str) -> None:
    """Run one server until killed; GET /bench/count answers the number of handled events."""
    os.sched_setaffinity(0, {SERVER_CPU})
    import uvloop

    if kind == "mautrix":
        uvloop.run(_serve_mautrix(port))
        return
    import uvicorn

    app = _bare_app() if kind == "bare" else _ours_app(kind, workdir)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", lifespan="on",
    )  # fmt: skip
    profile_to = os.environ.get("BENCH_PROFILE")
    if profile_to:  # developer aid: cProfile the server, stats written at shutdown
        import cProfile
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # uvicorn re-raises it at exit
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            uvicorn.Server(config).run()
        finally:
            profiler.disable()
            profiler.dump_stats(profile_to)
        return
    uvicorn.Server(config).run()


def _count_route(counter: list[int]) -> Any:
    from starlette.responses import Response

    async def count(request: Any) -> Response:
        return Response(str(counter[0]))

    return count


def _bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    counter = [0]

    async def transaction(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {HS_TOKEN}":
            return Response(b'{"errcode":"M_FORBIDDEN"}', 403, media_type="application/json")
        body = orjson.loads(await request.body())
        counter[0] += len(body["events"])
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/_matrix/app/v1/transactions/{txn_id}", transaction, methods=["PUT"]),
            Route("/bench/count", _count_route(counter)),
        ]
    )


def _ours_app(kind: str, workdir: str) -> Any:
    from starlette.types import Receive, Scope, Send

    from appservice.events import Event
    from appservice.registration import Namespace, Namespaces, Registration
    from appservice.server import AppService, MemoryInbox

    reg = Registration(
        id="bench", url="http://127.0.0.1:1", as_token=AS_TOKEN, hs_token=HS_TOKEN,
        sender_localpart="bot", namespaces=Namespaces(users=[Namespace("@_b_.*:bench", True)]),
        server_name="bench",
    )  # fmt: skip
    if kind == "ours-memory":
        svc = AppService(reg, "http://127.0.0.1:1", inbox=MemoryInbox(), max_pending=1_000_000)
    elif kind == "ours-postgres":
        url = os.environ["BENCH_POSTGRES_URL"]
        svc = AppService(reg, "http://127.0.0.1:1", database_url=url, max_pending=1_000_000)
    else:
        sync: Literal["NORMAL", "FULL"] = "NORMAL" if kind == "ours-sqlite-normal" else "FULL"
        db = Path(workdir) / f"{kind}.db"
        svc = AppService(
            reg, "http://127.0.0.1:1", database_url=f"sqlite+aiosqlite:///{db}",
            sqlite_synchronous=sync, max_pending=1_000_000,
        )  # fmt: skip
    counter = [0]

    @svc.on_event_type("m.room.message")
    def on_message(event: Event) -> None:
        counter[0] += 1

    inner = svc.app
    body_of = _count_route(counter)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/count":
            from starlette.requests import Request

            await (await body_of(Request(scope, receive)))(scope, receive, send)
            return
        await inner(scope, receive, send)

    return app


async def _serve_mautrix(port: int) -> None:
    import logging

    from mautrix.appservice import AppService as MautrixAppService
    from mautrix.types import Event as MautrixEvent

    logging.basicConfig(level=logging.WARNING)
    counter = [0]
    appserv = MautrixAppService(
        server="http://127.0.0.1:1", domain="bench", as_token=AS_TOKEN, hs_token=HS_TOKEN,
        bot_localpart="bot", id="bench",
    )  # fmt: skip

    @appserv.matrix_event_handler
    async def on_event(event: MautrixEvent) -> None:
        counter[0] += 1

    from aiohttp import web

    async def count(request: web.Request) -> web.Response:
        return web.Response(text=str(counter[0]))

    appserv.app.router.add_get("/bench/count", count)
    await appserv.start("127.0.0.1", port)
    await asyncio.Event().wait()


# --- the load generator ---------------------------------------------------------------------


def make_bodies(n: int) -> list[bytes]:
    """``n`` transaction bodies of 50 Synapse-shaped m.room.message events each."""
    bodies = []
    for t in range(n):
        events = []
        for i in range(EVENTS_PER_TXN):
            k = t * EVENTS_PER_TXN + i
            sender = f"@user{k % 37}:bench.example"
            events.append(
                {
                    "type": "m.room.message",
                    "room_id": f"!room{k % ROOMS}abcdefghijklmnop:bench.example",
                    "sender": sender,
                    "user_id": sender,
                    "event_id": f"$evt{k:08d}ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
                    "origin_server_ts": 1_700_000_000_000 + k,
                    "age": 42,
                    "unsigned": {"age": 42},
                    "content": {
                        "msgtype": "m.text",
                        "body": f"benchmark message {k}, lorem ipsum dolor sit amet",
                    },
                }
            )
        bodies.append(orjson.dumps({"events": events, "ephemeral": []}))
    return bodies


class Conn:
    """One keep-alive HTTP/1.1 connection doing PUT requests in sequence."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {HS_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        self.writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = await Conn.open(port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            status, _ = await conn.request("GET", "/bench/count")
            if status == 200:
                return
        finally:
            conn.close()
        await asyncio.sleep(0.05)
    raise RuntimeError("server did not come up")


async def drive(
    kind: str, bodies: list[bytes], warmup: int, concurrency: int, workdir: str, postgres: str
) -> dict[str, Any]:
    if kind != "ours-postgres":
        return await drive_server(kind, bodies, warmup, concurrency, workdir, {})
    async with fresh_database(postgres) as (url, _):
        env = {"BENCH_POSTGRES_URL": url.render_as_string(hide_password=False)}
        return await drive_server(kind, bodies, warmup, concurrency, workdir, env)


async def drive_server(
    kind: str,
    bodies: list[bytes],
    warmup: int,
    concurrency: int,
    workdir: str,
    env: dict[str, str],
) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--workdir", workdir]
    proc = subprocess.Popen(cmd, env={**os.environ, **env})  # noqa: ASYNC220
    try:
        await wait_up(port, proc)
        conns = [await Conn.open(port) for _ in range(concurrency)]
        prefix = f"/_matrix/app/v1/transactions/{kind}-"

        async def run(indices: range, latencies: list[float] | None) -> None:
            queue = iter(indices)

            async def worker(conn: Conn) -> None:
                for i in queue:
                    t0 = time.perf_counter()
                    status, payload = await conn.request("PUT", f"{prefix}{i}", bodies[i])
                    if latencies is not None:
                        latencies.append(time.perf_counter() - t0)
                    if status != 200:
                        raise RuntimeError(f"{kind}: txn {i} answered {status} {payload[:200]!r}")

            await asyncio.gather(*(worker(c) for c in conns))

        await run(range(warmup), None)
        latencies: list[float] = []
        cpu0 = process_cpu_ms(proc.pid)
        run0 = thread_run_ns(proc.pid)
        t0 = time.perf_counter()
        await run(range(warmup, len(bodies)), latencies)
        wall = time.perf_counter() - t0
        expected = len(bodies) * EVENTS_PER_TXN
        handled = 0
        for _ in range(600):
            _status, payload = await conns[0].request("GET", "/bench/count")
            handled = int(payload)
            if handled >= expected:
                break
            await asyncio.sleep(0.05)
        cpu1 = process_cpu_ms(proc.pid)
        run1 = thread_run_ns(proc.pid)
        other_ns = sum(ns - run0.get(tid, 0) for tid, ns in run1.items() if tid != proc.pid)
        for c in conns:
            c.close()
        timed = len(bodies) - warmup
        latencies.sort()
        return {
            "kind": kind,
            "tx_s": timed / wall,
            "events_s": timed * EVENTS_PER_TXN / wall,
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
            "cpu_ms_txn": (cpu1 - cpu0) / timed,
            # the event loop's thread (its id is the pid) and all the others, µs per transaction
            "loop_us_txn": (run1.get(proc.pid, 0) - run0.get(proc.pid, 0)) / timed / 1000,
            "other_us_txn": other_ns / timed / 1000,
            "rss_mib": rss_kib(proc.pid) / 1024,
            "handled": handled,
            "expected": expected,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def machine_line() -> str:
    """Where this ran: the machine, Python, SQLite and the servers' libraries."""
    libs = ("starlette", "uvicorn", "uvloop", "httptools", "orjson", "mautrix", "aiohttp")
    import sqlite3

    return (
        f"{machine()}; Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"{package_versions(libs)}"
    )


async def main_async(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {CLIENT_CPU})
    bodies = make_bodies(args.warmup + args.transactions)
    size = sum(map(len, bodies)) / len(bodies)
    print(f"# {args.transactions} transactions of {EVENTS_PER_TXN} events (~{size / 1024:.1f} KiB),"
          f" {args.warmup} warm-up, concurrency {args.concurrency}; server on CPU {SERVER_CPU},"
          f" load generator on CPU {CLIENT_CPU}")  # fmt: skip
    print(f"# {machine_line()}")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in args.servers}
    with tempfile.TemporaryDirectory(prefix="as-bench-") as workdir:
        for n in range(args.rounds):
            # Interleaved, so a slow spell of the machine hits all; every other round runs the
            # servers in reverse (A B B A), so a drift of the machine's speed favours no server
            # of a pair, and the pairs compared run next to each other.
            rounddir = Path(workdir) / f"round-{n}"
            rounddir.mkdir()
            for kind in args.servers if n % 2 == 0 else args.servers[::-1]:
                result = await drive(
                    kind, bodies, args.warmup, args.concurrency, str(rounddir), args.postgres
                )
                runs[kind].append(result)
    # Each server's median run (by events/s); the spread shows how noisy the machine was.
    results = {
        kind: sorted(rs, key=lambda r: r["events_s"])[len(rs) // 2] for kind, rs in runs.items()
    }
    print(f"{'server':<20}{'tx/s':>8}{'events/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'CPU ms/txn':>12}{'RSS MiB':>9}  {'events/s of each round':<30} handled")  # fmt: skip
    ok = True
    for kind, r in results.items():
        good = all(x["handled"] == x["expected"] for x in runs[kind])
        ok &= good
        spread = " ".join(f"{x['events_s'] / 1000:.1f}k" for x in runs[kind])
        print(f"{r['kind']:<20}{r['tx_s']:>8.0f}{r['events_s']:>11.0f}{r['p50_ms']:>9.2f}"
              f"{r['p99_ms']:>9.2f}{r['cpu_ms_txn']:>12.3f}{r['rss_mib']:>9.1f}  {spread:<30} "
              f"{r['handled']}/{r['expected']}{'' if good else '  MISMATCH'}")  # fmt: skip

    print("# scheduler run time per transaction in the median run, loop thread + other threads: "
          + "; ".join(f"{k} {r['loop_us_txn']:.0f} + {r['other_us_txn']:.0f} us"
                      for k, r in results.items()))  # fmt: skip

    def ratio(a: str, b: str, target: float) -> None:
        """The median over rounds of the two servers' ratio within a round (a paired
        comparison: both ran minutes apart at most), and the same for CPU per event."""
        if a in runs and b in runs:
            pairs = list(zip(runs[a], runs[b], strict=True))
            x = statistics.median(ra["events_s"] / rb["events_s"] for ra, rb in pairs)
            cpu = statistics.median(rb["cpu_ms_txn"] / ra["cpu_ms_txn"] for ra, rb in pairs)
            verdict = "meets" if x >= target else "MISSES"
            print(f"{a} / {b} events/s = {x:.2f}x (target >= {target}x: {verdict}); "
                  f"events per server CPU second = {cpu:.2f}x")  # fmt: skip

    ratio("ours-sqlite", "mautrix", 4.0)
    ratio("ours-sqlite-normal", "mautrix", 4.0)
    ratio("ours-memory", "bare", 0.5)
    ratio("ours-sqlite", "bare", 0.0)
    ratio("ours-postgres", "mautrix", 0.0)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="runs of each server, interleaved")
    parser.add_argument("--servers", nargs="+", default=DEFAULT_KINDS, choices=KINDS)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="server for ours-postgres")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return 0
    import uvloop

    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
