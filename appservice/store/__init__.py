"""Durable state: the ``Storer`` protocol, ``InMemoryStore``, and ``SQLStore`` on SQLAlchemy.

``SQLStore("sqlite+aiosqlite:///bridge.db")`` is the embedded default;
``SQLStore("postgresql+asyncpg://user@host/db")`` is for large deployments. The schema is
``appservice.store.schema`` and its migrations ship in ``appservice/store/migrations``.

The SQL side (SQLAlchemy, alembic) is imported on first use of one of its names, so code that
only needs ``Storer`` or ``InMemoryStore`` does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from appservice.store.base import Storer
from appservice.store.errors import (
    DatabaseURLError,
    ForeignDatabaseError,
    ReadOnlyStoreError,
    SchemaError,
    SchemaTooNewError,
    StoreError,
    StoreUnavailableError,
    UpgradeRequiredError,
)
from appservice.store.memory import InMemoryStore

if TYPE_CHECKING:
    from appservice.store.engine import EngineOptions
    from appservice.store.migrate import SchemaState, SchemaStatus
    from appservice.store.sql import SQLStore

_LAZY = {
    "SQLStore": "appservice.store.sql",
    "EngineOptions": "appservice.store.engine",
    "SchemaState": "appservice.store.migrate",
    "SchemaStatus": "appservice.store.migrate",
}

__all__ = [
    "DatabaseURLError",
    "EngineOptions",
    "ForeignDatabaseError",
    "InMemoryStore",
    "ReadOnlyStoreError",
    "SQLStore",
    "SchemaError",
    "SchemaState",
    "SchemaStatus",
    "SchemaTooNewError",
    "StoreError",
    "StoreUnavailableError",
    "Storer",
    "UpgradeRequiredError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'appservice.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
