"""Real HTTP servers on 127.0.0.1 for tests: run an ASGI app under uvicorn inside the test's loop.

Usage::

    async with serve(app) as base_url:          # "http://127.0.0.1:PORT"
        ...

    server = LoopbackServer(app)                # port reserved now, refuses connections
    url = server.base_url                       # known before the server is up
    await server.start()                        # later: the same port starts answering
    await server.stop()                         # down again (can be started again)

    port = free_port()                          # a port nothing listens on (connection refused)

    app = ScriptedApp(Reply(429, {"errcode": "M_LIMIT_EXCEEDED"}), Reply(200, {}))
    # answers the replies in order (the last one repeats) and records every request:
    app.requests[0].raw_path, app.requests[0].headers["authorization"], app.requests[0].at

The port is held by a bound (not listening) socket between `LoopbackServer()` and `start()`, so no
other process can take it and connections to it are refused, exactly like a server that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LoopbackServer", "Recorded", "Reply", "ScriptedApp", "free_port", "serve"]

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers (pytest's Ctrl-C) alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LoopbackServer:
    """One ASGI app served by uvicorn on a fixed loopback port; start and stop at will."""

    def __init__(self, app: ASGIApp, *, port: int | None = None) -> None:
        self.app = app
        self._sock: socket.socket | None = _bind(0 if port is None else port)
        self.port: int = self._sock.getsockname()[1]
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """True between a successful `start()` and the next `stop()`."""
        return self._task is not None and not self._task.done()

    async def start(self, *, startup_timeout: float = 10.0) -> None:
        """Start answering on `port`; returns once the server accepts connections."""
        if self.running:
            raise RuntimeError(f"loopback server on port {self.port} is already running")
        sock = self._sock if self._sock is not None else _bind(self.port)
        self._sock = None
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            timeout_graceful_shutdown=2,
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"loopback:{self.port}")
        self._server, self._task = server, task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout
        while not server.started:
            if task.done():
                sock.close()
                exc = task.exception() if not task.cancelled() else None
                raise RuntimeError(f"loopback server on port {self.port} failed to start") from exc
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError(
                    f"loopback server on port {self.port} not up in {startup_timeout} s"
                )
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the server (port closed: connections refused). Safe to call twice."""
        server, task = self._server, self._task
        self._server = self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (a free port unless `port` is given) and yield its base URL."""
    server = LoopbackServer(app, port=port)
    try:
        await server.start()
        yield server.base_url
    finally:
        await server.stop()


@dataclass
class Reply:
    """One scripted answer: status, a JSON value (or raw ``body``), headers, an optional delay."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str | None = None

    def render(self) -> Response:
        """The Starlette response for this reply."""
        content: bytes
        media: str | None
        if self.body is not None:
            content, media = self.body, self.content_type or "text/plain"
        elif self.json is not None:
            content, media = json.dumps(self.json).encode(), "application/json"
        else:
            content, media = b"", self.content_type
        return Response(content, self.status, headers=self.headers, media_type=media)


@dataclass
class Recorded:
    """A request as the server saw it; ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


class ScriptedApp:
    """An ASGI app that answers ``replies`` in order (the last repeats) and records requests."""

    def __init__(self, *replies: Reply) -> None:
        if not replies:
            raise ValueError("ScriptedApp needs at least one Reply")
        self.replies = list(replies)
        self.requests: list[Recorded] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        at = time.monotonic()
        body = await request.body()
        self.requests.append(
            Recorded(
                method=request.method,
                raw_path=scope.get("raw_path", b"").decode("latin-1") or scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                at=at,
            )
        )
        index = min(len(self.requests), len(self.replies)) - 1
        reply = self.replies[index]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        await reply.render()(scope, receive, send)
