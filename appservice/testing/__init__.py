"""Test harness for bridge authors: a real Synapse homeserver on loopback, as a pytest plugin.

Names are loaded on first use so that the pytest plugin (imported in every pytest run of anyone
who installs this package) stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appservice.testing.synapse import (
        RegisteredUser,
        SynapseFactory,
        SynapseHarnessError,
        SynapseServer,
        astart_synapse,
        start_synapse,
        synapse_missing_reason,
        synapse_server,
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("appservice.testing.synapse"), name)
    raise AttributeError(f"module 'appservice.testing' has no attribute {name!r}")
