"""pytest fixtures for a real ngIRCd: `ngircd` (one per session), `fresh_ngircd` (one per test,
for tests that stop or restart it) and `irc_client` (connects raw test clients, closed after the
test).

Load them from a conftest with ``from bridges.irc.pytest_fixtures import *``. Without ngIRCd
installed the tests using them are skipped, or failed when the environment has CI=true.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from bridges.irc.testing import IrcTestClient, NgircdServer, find_ngircd

__all__ = ["IrcClientFactory", "fresh_ngircd", "irc_client", "ngircd", "require_ngircd"]

IrcClientFactory = Callable[..., Awaitable[IrcTestClient]]


def require_ngircd() -> None:
    """Skip the current test when ngIRCd is not installed; fail instead when CI=true."""
    if find_ngircd() is not None:
        return
    reason = "ngIRCd is not installed (apt-get install ngircd)"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"ngIRCd is required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ngircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NgircdServer]:
    """One ngIRCd for the whole session (one per xdist worker); its log is in its workdir.

    A test that stops it must start it again before it ends; prefer `fresh_ngircd` for that.
    """
    require_ngircd()
    server = NgircdServer(tmp_path_factory.mktemp("ngircd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_ngircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NgircdServer]:
    """An ngIRCd of the test's own, free to stop and restart (same port), stopped afterwards."""
    require_ngircd()
    server = NgircdServer(tmp_path_factory.mktemp("ngircd-fresh"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def irc_client(ngircd: NgircdServer) -> AsyncIterator[IrcClientFactory]:
    """`await irc_client("nick")` connects a raw client to the session ngIRCd (or, with
    ``server=``, to another one); every client is closed after the test."""
    clients: list[IrcTestClient] = []

    async def connect(nick: str, *, server: NgircdServer | None = None) -> IrcTestClient:
        client = await IrcTestClient.connect((server or ngircd).port, nick)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            await client.close()
