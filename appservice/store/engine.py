"""Database URLs and engines: SQLite set up for a server, PostgreSQL through asyncpg with a pool.

SQLite (``sqlite+aiosqlite:///path``): one connection, which is the single writer; every
transaction starts with ``BEGIN IMMEDIATE`` (so DDL is transactional and a writer waits on the busy
timeout instead of failing on a lock upgrade), foreign keys are enforced, and WAL is switched on
by the store once the database is known to be ours (journal mode is a persistent property of the
file, so it is never changed on a database the store refuses).

PostgreSQL (``postgresql+asyncpg://user@host:port/db``): a connection pool, pre-pinged.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from appservice.store.errors import (
    DatabaseURLError,
    ReadOnlyStoreError,
    StoreError,
    StoreUnavailableError,
)

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
_ALIASES = {
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}
READ_ONLY_OPTION = "appservice_read_only"
"""Execution option: on SQLite, BEGIN DEFERRED (takes no write lock) instead of IMMEDIATE."""
_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_EXPECTED = "expected sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"


@dataclass(frozen=True)
class EngineOptions:
    """Tuning knobs; the defaults suit a bridge."""

    busy_timeout_ms: int = 10_000
    sqlite_synchronous: str = "FULL"  # an accepted transaction survives power loss
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 30.0
    connect_timeout: float = 10.0


def safe_url(url: URL | str) -> str:
    """The URL as text with any password masked, fit for logs and error messages."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: mask whatever sits between "user:" and "@", as a password would.
        return _USERINFO_PASSWORD.sub(r"\1***@", url)


def parse_url(raw: str | URL) -> URL:
    """Parse and normalise a database URL; ``DatabaseURLError`` saying what is wrong.

    ``sqlite://`` and ``postgresql://`` (or ``postgres://``) are accepted and mapped to the async
    drivers. Whether the database exists or can be reached is found out by ``SQLStore.open``.
    """
    if isinstance(raw, str):
        if not raw.strip():
            raise DatabaseURLError(f"empty database URL; {_EXPECTED}")
        try:
            url = make_url(raw)
        except (exc.ArgumentError, ValueError) as e:
            shown = safe_url(raw)
            raise DatabaseURLError(
                f"malformed database URL {shown!r}: {e}; {_EXPECTED}", url=shown
            ) from None
    elif isinstance(raw, URL):
        url = raw
    else:
        raise TypeError(f"database URL must be a str or sqlalchemy URL, got {type(raw).__name__}")
    driver = _ALIASES.get(url.drivername)
    if driver is None:
        raise DatabaseURLError(
            f"unsupported database URL scheme {url.drivername!r} in {safe_url(url)!r}; {_EXPECTED}",
            url=safe_url(url),
        )
    url = url.set(drivername=driver)
    if driver == POSTGRES_DRIVER and not url.database:
        raise DatabaseURLError(
            f"database URL {safe_url(url)!r} names no database; {_EXPECTED}", url=safe_url(url)
        )
    if driver == POSTGRES_DRIVER and url.port is not None and not 0 < url.port < 65536:
        raise DatabaseURLError(f"database URL {safe_url(url)!r}: bad port", url=safe_url(url))
    return url


def is_sqlite(url: URL) -> bool:
    """True for a SQLite URL."""
    return url.get_backend_name() == "sqlite"


def is_memory_sqlite(url: URL) -> bool:
    """True for a private in-memory SQLite database (``sqlite+aiosqlite://``)."""
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL names; ``None`` for memory, ``file:`` URI and non-SQLite databases."""
    if not is_sqlite(url) or is_memory_sqlite(url) or url.query.get("uri") in ("true", "1"):
        return None
    assert url.database is not None
    return Path(url.database)


def check_sqlite_path(url: URL) -> None:
    """Refuse, before anything is created, a SQLite file whose directory is missing."""
    path = sqlite_path(url)
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StoreUnavailableError(
            f"cannot open SQLite database {safe_url(url)!r}: directory {str(parent)!r} "
            "does not exist",
            url=safe_url(url),
        )
    if path.exists() and not path.is_file():
        raise StoreUnavailableError(
            f"cannot open SQLite database {safe_url(url)!r}: {str(path)!r} is not a file",
            url=safe_url(url),
        )


def create_engine(url: URL, options: EngineOptions | None = None) -> AsyncEngine:
    """An async engine for ``url`` (already checked by ``parse_url``), set up as described above."""
    opts = options or EngineOptions()
    if is_sqlite(url):
        return _sqlite_engine(url, opts)
    return create_async_engine(
        url,
        pool_size=opts.pool_size,
        max_overflow=opts.max_overflow,
        pool_timeout=opts.pool_timeout,
        pool_pre_ping=True,
        connect_args={"timeout": opts.connect_timeout},
    )


def _sqlite_engine(url: URL, opts: EngineOptions) -> AsyncEngine:
    synchronous = opts.sqlite_synchronous.upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(
            f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}"
        )
    kwargs: dict[str, Any] = {}
    if is_memory_sqlite(url):
        kwargs["poolclass"] = StaticPool
    else:
        # One connection: the single writer. Tasks queue for it (up to pool_timeout).
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=opts.pool_timeout)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it before DDL); _on_begin emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(opts.busy_timeout_ms)}")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def translate_error(err: BaseException, url: URL, action: str) -> StoreError:
    """A ``StoreError`` for a driver or OS error met while ``action`` (e.g. "open")."""
    if isinstance(err, StoreError):
        return err
    shown = safe_url(url)
    reason = _reason(err, url)
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return ReadOnlyStoreError(
            f"cannot {action} {shown!r}: the database is read-only ({reason})", url=shown
        )
    return StoreUnavailableError(f"cannot {action} {shown!r}: {reason}", url=shown)


def _reason(err: BaseException, url: URL) -> str:
    inner: BaseException = err
    if isinstance(err, exc.DBAPIError) and err.orig is not None:
        inner = err.orig
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    name = type(inner).__name__
    reason = text if name == "Error" and text else f"{name}: {text}" if text else name
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def file_is_new(url: URL) -> bool:
    """True when the SQLite file of ``url`` does not exist yet (the store will create it)."""
    path = sqlite_path(url)
    return path is not None and not path.exists()


def remove_new_file(url: URL) -> None:
    """Delete a SQLite file (and its -wal/-shm) that this open created before failing."""
    path = sqlite_path(url)
    if path is None:
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
