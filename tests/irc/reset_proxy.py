"""A loopback TCP relay in front of ngIRCd that can reset its clients' connections.

A reset (RST, as after a server crash, a NAT timeout or a firewall) is what a real ngIRCd can't
be made to send on demand: stopping it closes connections cleanly, and only a race turns that
into a reset. Everything else passes through to the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from bridges.irc.testing import HOST


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


class ResetProxy:
    """Relays ``127.0.0.1:port`` to ``upstream_port``; ``reset`` aborts every relayed
    connection with a TCP reset towards the client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.append(pair)
        await asyncio.gather(
            _pump(reader, up_writer), _pump(up_reader, writer), return_exceptions=True
        )
        if pair in self._pairs:  # closed by either side, not reset
            self._pairs.remove(pair)

    def reset(self) -> int:
        """Reset every open connection (the client gets ECONNRESET); how many there were."""
        pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing left to reset
                client.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            client.transport.abort()
            upstream.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
