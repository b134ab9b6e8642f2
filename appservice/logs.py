"""Structured logs for bridges: every record carries its context and never a token.

``configure_logging(config.logging, secrets=config.secrets())`` installs one handler on the root
logger with two filters and a formatter:

- context: the transaction id, room id and puppet from the ``contextvars`` the server and bridge
  set (``appservice.server.context``), as ``txn_id`` / ``room_id`` / ``puppet`` record attributes;
- redaction: the known secrets (as_token, hs_token, database password), any ``access_token=``
  query parameter and any ``Bearer`` credential are replaced by ``<redacted>`` in the message,
  the formatted exception, the stack and string extras;
- format: ``text`` (one human line) or ``json`` (one JSON object per line, for log shippers).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Final, Protocol

import orjson

from appservice.server import context as _context

__all__ = [
    "REDACTED",
    "JSONFormatter",
    "LogContextFilter",
    "LoggingSettings",
    "RedactingFilter",
    "TextFormatter",
    "add_log_secrets",
    "configure_logging",
]

REDACTED: Final = "<redacted>"
CONTEXT_FIELDS: Final = ("txn_id", "room_id", "puppet")
_UNSET: Final = ("", "-", None)
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"'#<>]+")
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',;<>]+", re.IGNORECASE)
# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"}
)
# The puppet variable is the server's when it defines one (see the module's docstring).
_PUPPET_VAR: ContextVar[str] | None = getattr(_context, "puppet_var", None)


class LoggingSettings(Protocol):
    """What ``configure_logging`` reads: ``LoggingConfig`` from the bridge config has both."""

    @property
    def level(self) -> str:
        """``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``."""
        ...

    @property
    def format(self) -> str:
        """``text`` or ``json``."""
        ...


class LogContextFilter(logging.Filter):
    """Copies the current transaction id, room id and puppet onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.txn_id = _context.txn_id_var.get()
        record.room_id = _context.room_id_var.get()
        record.puppet = _PUPPET_VAR.get() if _PUPPET_VAR is not None else "-"
        return True


class RedactingFilter(logging.Filter):
    """Replaces known secrets, ``access_token=`` values and ``Bearer`` credentials on records."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Also redact these values (empty ones are ignored; longest replaced first)."""
        known = set(self._secrets) | {s for s in secrets if isinstance(s, str) and s}
        self._secrets = sorted(known, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _QUERY_TOKEN.sub(rf"\g<1>{REDACTED}", text)
        return _BEARER.sub(rf"\g<1>{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} (log arguments did not fit: {record.args!r})"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value not in _UNSET:
            found[name] = str(value)
    return found


class TextFormatter(logging.Formatter):
    """``2025-01-01 12:00:00,000 INFO appservice.x: message [txn=5 room=!r puppet=@p:x]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = _context_of(record)
        if context:
            short = {"txn_id": "txn", "room_id": "room", "puppet": "puppet"}
            line += " [" + " ".join(f"{short[k]}={v}" for k, v in context.items()) + "]"
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_context_of(record))
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and name not in CONTEXT_FIELDS and name not in out:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


class _BridgeLogHandler(logging.StreamHandler[IO[str]]):
    """The handler ``configure_logging`` installs (so a second call replaces it)."""


def add_log_secrets(secrets: Iterable[str]) -> None:
    """Redact these values too (e.g. a double-puppeting access token learnt at run time) in the
    handler ``configure_logging`` installed; nothing happens before it was called."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _BridgeLogHandler):
            for f in handler.filters:
                if isinstance(f, RedactingFilter):
                    f.add_secrets(secrets)


def configure_logging(
    settings: LoggingSettings, *, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> logging.Handler:
    """Log to ``stream`` (default stderr) at ``settings.level`` in ``settings.format``.

    Replaces the handler an earlier call installed; other handlers are left alone. Returns the
    new handler (its ``RedactingFilter`` can learn more secrets with ``add_secrets``).
    """
    if settings.format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {settings.format!r}")
    level = logging.getLevelName(str(settings.level).upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {settings.level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BridgeLogHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _BridgeLogHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(LogContextFilter())
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JSONFormatter() if settings.format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO (a line per bridged message); the client's own logs and
    # metrics already tell failures and retries, so its lines show only when debugging.
    logging.getLogger("httpx").setLevel(level if level <= logging.DEBUG else logging.WARNING)
    return handler
