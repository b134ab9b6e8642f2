"""A small appservice process for the crash test: ``python -m tests.server.crash_app ...``.

Its handler appends ``room n event_id`` to ``--out`` for every m.room.message. With
``--block-from K`` the handler blocks forever on each room's event number K (after appending the
room to ``--out.blocked``), so the test can SIGKILL the process with events accepted but unhandled.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import uvicorn

from appservice.events import Event
from appservice.registration import Registration
from appservice.server import AppService


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registration", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--block-from", type=int, default=-1)
    args = parser.parse_args()

    reg = Registration.load(args.registration, server_name="localhost")
    svc = AppService(reg, "http://127.0.0.1:1", database_url=args.database_url, retry_delay=0.01)

    @svc.on_event_type("m.room.message")
    async def on_message(event: Event) -> None:
        n = int(event.content["n"])
        if 0 <= args.block_from <= n:
            append(args.out + ".blocked", f"{event.room_id} {n}\n")
            await asyncio.Event().wait()
        await asyncio.sleep(0.002)  # some work, so the kill finds rooms mid-stream
        append(args.out, f"{event.room_id} {n} {event.id}\n")

    config = uvicorn.Config(
        svc.app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
