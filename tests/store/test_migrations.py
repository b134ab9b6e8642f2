"""Migrations as data: the versions at head build exactly ``schema.py`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import BigInteger, Column, Connection, MetaData, Text
from sqlalchemy.ext.asyncio import create_async_engine

import appservice
from appservice.store import SQLStore, migrate
from appservice.store import schema as s
from tests.store.helpers import execute, table_names

REPO = Path(__file__).resolve().parents[2]
ALEMBIC_INI = REPO / "migrations" / "alembic.ini"
ALEMBIC = Path(sys.executable).with_name("alembic")


def _diff(conn: Connection, metadata: MetaData = s.metadata) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _drifted_metadata() -> MetaData:
    """schema.py with one column retyped and one added, as a forgotten migration would leave it."""
    drifted = MetaData()
    for table in s.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["bridge_user"].append_column(Column("zz_forgotten", Text, nullable=True))
    drifted.tables["as_txn"].c.event_count.type = BigInteger()
    return drifted


async def test_migrations_at_head_match_schema_py(store_url: str) -> None:
    """The equivalent of ``alembic check``: no difference between the database and schema.py."""
    async with SQLStore(store_url):
        pass
    engine = create_async_engine(store_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            drift = await conn.run_sync(_diff, _drifted_metadata())
    finally:
        await engine.dispose()
    # the check can fail: a schema.py ahead of the migrations is reported
    kinds = sorted(str(d[0][0] if isinstance(d, list) else d[0]) for d in drift)
    assert kinds == ["add_column", "modify_type"]


async def test_upgrade_downgrade_upgrade(store_url: str) -> None:
    async with SQLStore(store_url) as store:
        async with store.transaction() as conn:
            await conn.run_sync(migrate.run_alembic, "downgrade", "base")
        assert await table_names(store_url) - {"sqlite_sequence"} == {"alembic_version"}
        async with store.transaction() as conn:
            await conn.run_sync(migrate.run_alembic, "upgrade", "head")
    assert await table_names(store_url) - {"sqlite_sequence"} == set(s.metadata.tables) | {
        "alembic_version"
    }


def test_versions_are_a_single_numbered_line() -> None:
    script = migrate.script_directory()
    assert script.get_heads() == [migrate.head_revision()]
    revisions = list(reversed(list(script.walk_revisions())))
    assert revisions[0].down_revision is None
    for number, (prev, rev) in enumerate(zip([None, *revisions], revisions, strict=False), 1):
        assert rev.revision == f"{number:04d}"
        assert rev.down_revision == (prev.revision if prev else None)
        assert rev.path is not None
        assert re.fullmatch(rf"{rev.revision}_\w+\.py", Path(rev.path).name)
        assert rev.doc, f"{rev.path}: a version says what it changes in its docstring"


def test_migrations_ship_inside_the_package_and_alembic_ini_points_there() -> None:
    package_dir = Path(appservice.__file__).resolve().parent / "store" / "migrations"
    assert package_dir == migrate.MIGRATIONS_DIR
    for name in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (package_dir / name).is_file(), name
    ini_script = ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))
    assert Path(ini_script.dir).resolve() == package_dir
    assert ini_script.get_current_head() == migrate.head_revision()


def test_tables_the_server_writes_sql_against() -> None:
    """Names and columns other layers rely on (the brief's table contract)."""
    assert [c.name for c in s.as_txn.columns] == [
        "seq",
        "txn_id",
        "received_at",
        "event_count",
        "done_at",
    ]
    assert [c.name for c in s.as_txn_items.columns] == ["seq", "body"]
    assert [c.name for c in s.inbox.columns] == [
        "seq",
        "txn_id",
        "kind",
        "room_id",
        "body",
        "state",
        "attempts",
        "last_error",
        "done_at",
    ]
    (index,) = s.inbox.indexes  # parked items only
    assert [c.name for c in index.columns] == ["seq"]
    assert str(index.dialect_options["sqlite"]["where"]) == "state = 2"
    (index,) = s.as_txn.indexes  # where a restart resumes; intake adds one entry per transaction
    assert index.name == "ix_as_txn_open"
    assert [c.name for c in index.columns] == ["seq"]
    assert str(index.dialect_options["postgresql"]["where"]) == "done_at IS NULL"
    (unique,) = [c for c in s.as_txn.constraints if c.name == "uq_as_txn_txn_id"]
    assert [c.name for c in unique.columns] == ["txn_id"]  # type: ignore[attr-defined]
    assert s.as_txn_items.indexes == set()
    assert (s.INBOX_PENDING, s.INBOX_DONE, s.INBOX_FAILED) == (0, 1, 2)


def _alembic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "APPSERVICE_DATABASE_URL"}
    return subprocess.run(
        [str(ALEMBIC), "-c", str(ALEMBIC_INI), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alembic_command_upgrade_and_check(tmp_path: Path) -> None:
    """The real ``alembic check``, run from outside the repository."""
    if not ALEMBIC.exists():
        pytest.skip(f"no alembic script next to {sys.executable}")
    db = f"-xdatabase=sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgraded = _alembic(db, "upgrade", "head", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Running upgrade  -> 0001" in upgraded.stderr
    checked = _alembic(db, "check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
    current = _alembic(db, "current", cwd=tmp_path)
    assert "0001 (head)" in current.stdout


async def test_alembic_command_refuses_another_programs_database(tmp_path: Path) -> None:
    if not ALEMBIC.exists():
        pytest.skip(f"no alembic script next to {sys.executable}")
    url = f"sqlite+aiosqlite:///{tmp_path / 'synapse.db'}"
    await execute(url, "CREATE TABLE users (name TEXT PRIMARY KEY)")
    done = _alembic(f"-xdatabase={url}", "upgrade", "head", cwd=tmp_path)
    assert done.returncode != 0
    assert "no appservice owner row" in done.stderr
    assert await table_names(url) == {"users"}
