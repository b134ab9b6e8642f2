"""Log context for the push side: the transaction id and room id travel in contextvars.

Install :class:`ContextFilter` on a handler (or call :func:`install_log_context`) and format with
``%(txn_id)s`` / ``%(room_id)s``. Tokens are never put in a context variable or a log record.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

txn_id_var: ContextVar[str] = ContextVar("appservice_txn_id", default="-")
room_id_var: ContextVar[str] = ContextVar("appservice_room_id", default="-")


class ContextFilter(logging.Filter):
    """Adds ``txn_id`` and ``room_id`` attributes from the current context to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.txn_id = txn_id_var.get()
        record.room_id = room_id_var.get()
        return True


def install_log_context(handler: logging.Handler) -> None:
    """Attach a :class:`ContextFilter` to ``handler`` so its format may use txn_id and room_id."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
