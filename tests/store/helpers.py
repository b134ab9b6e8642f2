"""Store test helpers: extra migration versions, and snapshots that prove "nothing changed"."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from appservice.store import migrate

EXTRA_TABLE_0002 = '''
"""Test-only version 0002: add a table."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("zz_extra", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("cache_registered", sa.Column("zz_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cache_registered") as batch:
        batch.drop_column("zz_note")
    op.drop_table("zz_extra")
'''

FAILING_0002 = '''
"""Test-only version 0002: create a table, write a row, then fail."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("zz_half", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO appservice_meta (key, value) VALUES ('zz', 'half-written')")
    raise RuntimeError("migration 0002 failed on purpose")


def downgrade() -> None:
    op.drop_table("zz_half")
'''


def use_migrations_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_source: str
) -> Path:
    """Point the store at a copy of the packaged migrations plus ``version_source`` as 0002."""
    target = tmp_path / "migrations_copy"
    shutil.copytree(migrate.MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / "0002_test.py").write_text(textwrap.dedent(version_source))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", target)
    return target


def sqlite_file(url: str) -> Path | None:
    prefix = "sqlite+aiosqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


def _file_digest(path: Path) -> str:
    parts = [hashlib.sha256(path.read_bytes()).hexdigest()]
    parts += [str(Path(f"{path}{suffix}").exists()) for suffix in ("-wal", "-shm", "-journal")]
    return " ".join(parts)


def names_in(directory: Path) -> list[str]:
    """The sorted names of the entries of ``directory``."""
    return sorted(p.name for p in directory.iterdir())


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def make_immutable(path: Path) -> str | None:
    """chmod 0444, and as root (who ignores modes) also ``chattr +i``; why not, or ``None``."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        return None
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"chattr +i failed: {done.stderr.strip()}"


async def snapshot(url: str) -> str:
    """A digest of everything a refusal must leave alone: the file bytes (SQLite), or every
    table, column, index and every row of the small bookkeeping tables (PostgreSQL)."""
    path = sqlite_file(url)
    if path is not None:
        return _file_digest(path)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def describe(sync_conn) -> str:  # type: ignore[no-untyped-def]
                insp = inspect(sync_conn)
                lines = []
                for table in sorted(insp.get_table_names()):
                    cols = [c["name"] for c in insp.get_columns(table)]
                    idx = sorted(i["name"] or "" for i in insp.get_indexes(table))
                    lines.append(f"{table}: {cols} {idx}")
                    if table in ("alembic_version", "appservice_meta", "users"):
                        rows = sync_conn.execute(text(f'SELECT * FROM "{table}"')).all()
                        lines.append(f"  rows {sorted(map(tuple, rows))}")
                return "\n".join(lines)

            return await conn.run_sync(describe)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    """Run raw SQL statements in one transaction (to build a database by hand)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()
