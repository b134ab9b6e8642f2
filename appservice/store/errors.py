"""Errors raised when a store cannot be opened or its schema cannot be used.

Every message names the database by its URL with any password masked, so it can be logged and
shown to an operator as is.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class: the database could not be opened or used; ``url`` has the password masked."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class DatabaseURLError(StoreError, ValueError):
    """The database URL is malformed or names a backend the store does not support."""


class StoreUnavailableError(StoreError):
    """The database could not be reached or opened (refused, missing, not a database, timeout)."""


class ReadOnlyStoreError(StoreUnavailableError):
    """The database can be read but not written (read-only file, ``mode=ro``, read-only role)."""


class SchemaError(StoreError):
    """The database's schema cannot be used by this code; nothing was changed."""


class ForeignDatabaseError(SchemaError):
    """The database belongs to another program: another owner row, or tables and no owner row."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer version of this code than the one running."""


class UpgradeRequiredError(SchemaError):
    """The schema is older than the code and the store was told not to upgrade it."""
