"""pytest plugin: a real Synapse homeserver for tests (fixtures `synapse` and `synapse_factory`).

Loaded in every pytest run of anyone who installs this package, so it imports only pytest at
import time; the harness (and Synapse itself) is touched only when a test asks for a fixture.
Without matrix-synapse installed those tests are skipped, or failed when the environment has
CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from appservice.testing.synapse import SynapseFactory, SynapseServer

_FIXTURES = frozenset({"synapse", "synapse_factory"})


def pytest_configure(config: pytest.Config) -> None:
    """Declare the `synapse` marker (added to every test that uses a Synapse fixture)."""
    config.addinivalue_line("markers", "synapse: needs a real Synapse homeserver")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a Synapse fixture, so `-m "not synapse"` deselects them."""
    for item in items:
        if _FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker("synapse")


def require_synapse() -> None:
    """Skip the current test when Synapse is not installed; fail instead when CI=true."""
    from appservice.testing.synapse import synapse_missing_reason

    reason = synapse_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"Synapse is required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One Synapse for the whole session (one per xdist worker), stopped at the end.

    A plain (sync) fixture: the server holds no event-loop state, so async tests on any loop
    scope can use it. Its data dir (log, database) is kept under pytest's basetemp.
    """
    require_synapse()
    from appservice.testing.synapse import start_synapse

    server = start_synapse(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synapse_factory(tmp_path: Path) -> Iterator[SynapseFactory]:
    """Start extra Synapse servers with their own settings: `await synapse_factory(...)`.

    For the rare test that needs a differently configured homeserver (rate limits back, other
    registrations); every server it started is stopped after the test.
    """
    require_synapse()
    from appservice.testing.synapse import SynapseFactory

    factory = SynapseFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
