"""Schema ownership and alembic upgrades: create at head, upgrade, or refuse and change nothing.

A database is ours when its ``appservice_meta`` table has an ``owner`` row naming the expected
owner; its version is alembic's ``alembic_version``. Opening a store reads both in one transaction
(under an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite, so two processes opening at
once do not both create the schema) and then:

- empty database (no tables at all)   -> create the schema at head, with the owner row;
- ours, at head                       -> nothing to do;
- ours, older                         -> upgrade, or ``UpgradeRequiredError`` if told not to;
- ours, at a revision the code lacks  -> ``SchemaTooNewError`` (a newer version migrated it);
- another owner, or tables but no owner row (a Synapse database, say) -> ``ForeignDatabaseError``.

Every refusal is raised before the first write, and the transaction is rolled back.

The migration scripts live in ``appservice/store/migrations`` (inside the package, so an installed
copy finds them); ``migrations/alembic.ini`` at the repository root points the ``alembic`` command
at the same place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy.engine import URL

from appservice.store.engine import safe_url
from appservice.store.errors import (
    ForeignDatabaseError,
    SchemaError,
    SchemaTooNewError,
    UpgradeRequiredError,
)
from appservice.store.schema import DEFAULT_OWNER, OWNER_KEY, appservice_meta

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
_PG_LOCK_KEY = 0x6170_7073_7476  # "appstv": serialises schema checks and upgrades across processes


def alembic_config(owner: str = DEFAULT_OWNER) -> Config:
    """An alembic ``Config`` for the packaged migrations; ``owner`` goes into the owner row."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["owner"] = owner
    return config


def script_directory() -> ScriptDirectory:
    """The packaged migration scripts."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = script_directory().get_current_head()
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


class SchemaState(enum.Enum):
    """How a database's schema relates to this code."""

    EMPTY = "empty"
    CURRENT = "current"
    BEHIND = "behind"
    AHEAD = "ahead"
    FOREIGN = "foreign"
    UNOWNED = "unowned"
    BROKEN = "broken"


@dataclass(frozen=True)
class SchemaStatus:
    """What ``read_status`` found: owner row, alembic revision, and how they compare to the code."""

    state: SchemaState
    owner: str | None
    revision: str | None
    head: str
    tables: tuple[str, ...]

    def describe(self) -> str:
        """One line for operators (``appservice db current``)."""
        rev = self.revision or "none"
        match self.state:
            case SchemaState.EMPTY:
                return f"empty database (no tables); code is at {self.head}"
            case SchemaState.CURRENT:
                return f"{rev} (head), owner {self.owner!r}"
            case SchemaState.BEHIND:
                return f"{rev}, owner {self.owner!r}; code is at {self.head}: upgrade needed"
            case SchemaState.AHEAD:
                return f"{rev}, owner {self.owner!r}: unknown to this code (head {self.head})"
            case SchemaState.FOREIGN:
                return f"owned by {self.owner!r}, not by this program"
            case SchemaState.UNOWNED:
                return f"{len(self.tables)} table(s) and no appservice owner row: not ours"
            case SchemaState.BROKEN:
                return f"owner {self.owner!r} but no alembic revision recorded"


def read_status(conn: Connection, owner: str = DEFAULT_OWNER) -> SchemaStatus:
    """Inspect the database behind ``conn`` without changing it."""
    head = head_revision()
    tables = tuple(sorted(inspect(conn).get_table_names()))
    if not tables:
        return SchemaStatus(SchemaState.EMPTY, None, None, head, tables)
    found_owner: str | None = None
    if appservice_meta.name in tables:
        found_owner = conn.execute(
            select(appservice_meta.c.value).where(appservice_meta.c.key == OWNER_KEY)
        ).scalar_one_or_none()
    if found_owner is None:
        return SchemaStatus(SchemaState.UNOWNED, None, None, head, tables)
    heads: tuple[str, ...] = ()
    if "alembic_version" in tables:
        heads = MigrationContext.configure(conn).get_current_heads()
    revision = heads[0] if len(heads) == 1 else None
    if found_owner != owner:
        state = SchemaState.FOREIGN
    elif revision is None:
        state = SchemaState.BROKEN
    elif revision == head:
        state = SchemaState.CURRENT
    elif _known(revision):
        state = SchemaState.BEHIND
    else:
        state = SchemaState.AHEAD
    return SchemaStatus(state, found_owner, revision, head, tables)


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def refuse_unusable(status: SchemaStatus, url: URL, owner: str, *, upgrade: bool) -> None:
    """Raise the ``SchemaError`` that ``status`` calls for, if any; a clear message, no changes."""
    shown = safe_url(url)
    where = f"database {shown!r}"
    match status.state:
        case SchemaState.FOREIGN:
            raise ForeignDatabaseError(
                f"{where} belongs to {status.owner!r} (appservice_meta owner row), not to "
                f"{owner!r}; refusing to use it. Give this program its own database.",
                url=shown,
            )
        case SchemaState.UNOWNED:
            count = len(status.tables)
            sample = ", ".join(status.tables[:6]) + (", ..." if count > 6 else "")
            raise ForeignDatabaseError(
                f"{where} already holds {count} table{'s' if count > 1 else ''} ({sample}) but no "
                "appservice "
                "owner row: it is another program's database (Synapse's, say); refusing to touch "
                "it. Point the store at an empty database.",
                url=shown,
            )
        case SchemaState.BROKEN:
            raise SchemaError(
                f"{where} has an owner row for {status.owner!r} but no alembic revision "
                "(alembic_version is missing or has several heads); refusing to guess its schema.",
                url=shown,
            )
        case SchemaState.AHEAD:
            raise SchemaTooNewError(
                f"{where} is at schema revision {status.revision!r}, which this version of "
                f"appservice does not know (its newest is {status.head!r}): a newer version "
                "migrated it. Run that newer version, or restore a backup; nothing was changed.",
                url=shown,
            )
        case SchemaState.BEHIND if not upgrade:
            raise UpgradeRequiredError(
                f"{where} is at schema revision {status.revision!r} and the code needs "
                f"{status.head!r}; run `appservice db upgrade --database URL` (or open the "
                "store with upgrade=True).",
                url=shown,
            )
        case _:
            return


def ensure_schema(
    conn: Connection, url: URL, owner: str = DEFAULT_OWNER, *, upgrade: bool = True
) -> SchemaStatus:
    """Check ownership and version, then create or upgrade to head inside ``conn``'s transaction.

    Returns the status found before any change. The caller commits.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    status = read_status(conn, owner)
    refuse_unusable(status, url, owner, upgrade=upgrade)
    if status.state in (SchemaState.EMPTY, SchemaState.BEHIND):
        run_alembic(conn, "upgrade", "head", owner=owner)
    # Prove now that we may write (read-only file, mode=ro, read-only role), with a write that
    # changes nothing, rather than fail on the first real write later.
    conn.execute(
        update(appservice_meta)
        .where(appservice_meta.c.key == OWNER_KEY)
        .values(value=appservice_meta.c.value)
    )
    return status


def run_alembic(conn: Connection, action: str, target: str, *, owner: str = DEFAULT_OWNER) -> None:
    """Run alembic ``upgrade``/``downgrade`` to ``target`` on ``conn``, in its transaction."""
    config = alembic_config(owner)
    config.attributes["connection"] = conn
    if action == "upgrade":
        command.upgrade(config, target)
    elif action == "downgrade":
        command.downgrade(config, target)
    else:
        raise ValueError(f"run_alembic: action must be 'upgrade' or 'downgrade', not {action!r}")
