"""SQLStore on SQLite and PostgreSQL: restart, refusals, bad input, and the SQL it runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from appservice.events import Event
from appservice.room import Room
from appservice.store import (
    DatabaseURLError,
    ForeignDatabaseError,
    ReadOnlyStoreError,
    SchemaError,
    SchemaState,
    SchemaTooNewError,
    SQLStore,
    StoreError,
    StoreUnavailableError,
    UpgradeRequiredError,
)
from appservice.store import schema as s
from appservice.store.sql import database_status
from tests.store.conftest import NewDatabase
from tests.store.helpers import (
    EXTRA_TABLE_0002,
    FAILING_0002,
    execute,
    make_immutable,
    names_in,
    read_bytes,
    snapshot,
    sqlite_file,
    table_names,
    use_migrations_with,
)

ROOM = "!r:example.org"


def members_room(count: int) -> Room:
    room = Room(ROOM)
    for i in range(count):
        user = f"@u{i}:example.org"
        room.update_state(
            Event(type="m.room.member", state_key=user, content={"membership": "join"}, id=f"$m{i}")
        )
    return room


# --- restart -------------------------------------------------------------------------------------


async def test_restart_reads_back_what_was_written(store_url: str) -> None:
    room = members_room(3)
    room.update_state(Event(type="m.room.name", state_key="", content={"name": "N"}, id="$n"))
    async with SQLStore(store_url) as store:
        assert store.status_at_open is not None
        assert store.status_at_open.state is SchemaState.EMPTY
        await store.save_filter_id("@a:example.org", "filter-1")
        await store.save_next_batch("@a:example.org", "s1_2_3")
        await store.save_room(room)
        await store.save_room(Room("!empty:example.org"))
        async with store.transaction() as conn:
            await conn.execute(insert(s.as_txn).values(txn_id="t1", received_at=1, event_count=1))
            await conn.execute(insert(s.as_txn_items).values(seq=1, body=b"[]"))

    store = SQLStore(store_url)
    await store.open()
    try:
        assert store.status_at_open is not None
        assert store.status_at_open.state is SchemaState.CURRENT
        assert await store.load_filter_id("@a:example.org") == "filter-1"
        assert await store.load_next_batch("@a:example.org") == "s1_2_3"
        assert await store.load_room(ROOM) == room
        empty = await store.load_room("!empty:example.org")
        assert empty is not None
        assert empty.state == {}
        async with store.reading() as conn:
            assert await conn.scalar(select(s.as_txn.c.event_count)) == 1
            assert await conn.scalar(select(s.as_txn_items.c.body)) == b"[]"
    finally:
        await store.close()


async def test_engine_only_while_open(store_url: str) -> None:
    store = SQLStore(store_url)
    with pytest.raises(StoreError, match="not open"):
        _ = store.engine
    assert await store.open() is store
    assert await store.open() is store  # idempotent
    assert store.engine is not None
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        _ = store.engine
    await store.close()  # closing twice is harmless


# --- the SQL it runs -----------------------------------------------------------------------------


async def test_transaction_rolls_back_on_error(store_url: str) -> None:
    async with SQLStore(store_url) as store:

        async def fail_midway() -> None:
            async with store.transaction() as conn:
                await conn.execute(insert(s.as_txn).values(txn_id="t1", received_at=1))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_midway()
        async with store.reading() as conn:
            assert await conn.scalar(select(func.count()).select_from(s.as_txn)) == 0


async def test_as_txn_numbers_increase_and_defaults_apply(store_url: str) -> None:
    async with SQLStore(store_url) as store:
        async with store.transaction() as conn:
            await conn.execute(
                insert(s.as_txn), [{"txn_id": f"t{i}", "received_at": i} for i in range(50)]
            )
        async with store.transaction() as conn:
            await conn.execute(
                text("INSERT INTO as_txn (txn_id, received_at) VALUES ('late', 99)"),
            )
            await conn.execute(text("INSERT INTO inbox (seq) VALUES (7)"))
        async with store.reading() as conn:
            rows = (await conn.execute(select(s.as_txn).order_by(s.as_txn.c.seq))).all()
            item = (await conn.execute(select(s.inbox))).one()
        with pytest.raises(IntegrityError):  # a txnId is recorded once
            async with store.transaction() as conn:
                await conn.execute(insert(s.as_txn), {"txn_id": "t3", "received_at": 1})
    assert [r.txn_id for r in rows] == [*(f"t{i}" for i in range(50)), "late"]
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 51
    assert {(r.event_count, r.done_at) for r in rows} == {(0, None)}
    assert (item.seq, item.state, item.attempts) == (7, 0, 0)
    assert (item.body, item.last_error) == (None, None)


async def test_foreign_keys_are_enforced_and_cascade(store_url: str) -> None:
    message = {
        "remote_chat": "#chan",
        "receiver": "",
        "remote_id": "m1",
        "event_id": "$e1",
        "room_id": "!p:x",
        "sent_at": 1,
    }
    async with SQLStore(store_url) as store:
        with pytest.raises(IntegrityError):
            async with store.transaction() as conn:
                await conn.execute(insert(s.bridge_message).values(**message))
        async with store.transaction() as conn:
            await conn.execute(
                insert(s.bridge_portal).values(remote_id="#chan", room_id="!p:x", created_at=1)
            )
            await conn.execute(insert(s.bridge_message).values(**message))
        async with store.transaction() as conn:
            await conn.execute(s.bridge_portal.delete())
        async with store.reading() as conn:
            assert await conn.scalar(select(func.count()).select_from(s.bridge_message)) == 0


class StatementLog:
    """Counts the statements (and executemany parameter sets) an engine runs."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, int]] = []

    def __call__(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        self.statements.append((statement, len(params) if many else 1))

    def matching(self, word: str) -> list[tuple[str, int]]:
        return [(st, n) for st, n in self.statements if st.lstrip().upper().startswith(word)]


@pytest.fixture
def statement_log() -> StatementLog:
    return StatementLog()


async def test_save_room_writes_only_what_changed_and_load_is_one_query(
    store_url: str, statement_log: StatementLog
) -> None:
    room = members_room(300)
    async with SQLStore(store_url) as store:
        await store.save_room(room)
        event.listen(store.engine.sync_engine, "before_cursor_execute", statement_log)
        room.update_state(
            Event(type="m.room.member", state_key="@u5:example.org", content={"membership": "ban"})
        )
        del room.state["m.room.member"]["@u6:example.org"]
        await store.save_room(room)
        inserts = statement_log.matching("INSERT")
        deletes = statement_log.matching("DELETE")
        # the room row, then exactly one changed state row; one removed row
        assert [n for _, n in inserts] == [1, 1]
        assert [n for _, n in deletes] == [1]
        statement_log.statements.clear()
        loaded = await store.load_room(ROOM)
        assert len(statement_log.matching("SELECT")) == 1
        statement_log.statements.clear()
        rooms = await store.load_rooms([f"!r{i}:x" for i in range(700)] + [ROOM])
        assert len(statement_log.matching("SELECT")) == 2  # 701 IDs in chunks of 500
    assert loaded == room
    assert set(rooms) == {ROOM}


async def test_sqlite_is_set_up_for_a_server(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    async with SQLStore(url) as store:
        assert store.engine.pool.size() == 1  # type: ignore[attr-defined]
        async with store.reading() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 10_000
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL


async def test_concurrent_opens_of_an_empty_database_create_it_once(store_url: str) -> None:
    stores = [SQLStore(store_url) for _ in range(3)]
    await asyncio.gather(*(st.open() for st in stores))
    try:
        states = sorted(st.status_at_open.state.value for st in stores if st.status_at_open)
        assert states == ["current", "current", "empty"]
        async with stores[0].reading() as conn:
            owners = (await conn.execute(select(s.appservice_meta.c.value))).scalars().all()
        assert owners == ["appservice"]
    finally:
        for st in stores:
            await st.close()


# --- refusals: the database is not ours, or not at our version -----------------------------------


async def test_refuses_a_database_owned_by_another_program(store_url: str) -> None:
    async with SQLStore(store_url, owner="irc-bridge"):
        pass
    before = await snapshot(store_url)
    with pytest.raises(ForeignDatabaseError, match=r"belongs to 'irc-bridge'.*not to 'appservice'"):
        await SQLStore(store_url).open()
    assert await snapshot(store_url) == before
    async with SQLStore(store_url, owner="irc-bridge") as store:  # its owner still can
        assert store.status_at_open is not None
        assert store.status_at_open.state is SchemaState.CURRENT


async def test_refuses_tables_without_an_owner_row_and_changes_nothing(store_url: str) -> None:
    await execute(
        store_url,
        "CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT)",
        "CREATE TABLE events (stream_ordering INTEGER PRIMARY KEY, event_id TEXT)",
        "CREATE TABLE schema_version (version INTEGER)",
        "INSERT INTO users VALUES ('@admin:localhost', 'x')",
    )
    before = await snapshot(store_url)
    with pytest.raises(ForeignDatabaseError, match=r"3 tables \(events, schema_version, users\)"):
        await SQLStore(store_url).open()
    assert await snapshot(store_url) == before
    assert await table_names(store_url) == {"users", "events", "schema_version"}
    path = sqlite_file(store_url)
    if path is not None:  # WAL is a persistent change of the file: never made on a refusal
        assert path.read_bytes()[18:20] == b"\x01\x01"  # header: rollback journal, not WAL


async def test_refuses_a_schema_newer_than_the_code(store_url: str) -> None:
    async with SQLStore(store_url):
        pass
    await execute(store_url, "UPDATE alembic_version SET version_num = '0999'")
    before = await snapshot(store_url)
    with pytest.raises(SchemaTooNewError, match=r"revision '0999'.*does not know.*'0001'"):
        await SQLStore(store_url).open()
    assert await snapshot(store_url) == before


async def test_upgrades_an_older_schema_or_refuses_when_told_not_to(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLStore(store_url) as store:
        await store.save_filter_id("@a:x", "f")
    with monkeypatch.context() as patch:
        use_migrations_with(tmp_path, patch, EXTRA_TABLE_0002)
        before = await snapshot(store_url)
        with pytest.raises(UpgradeRequiredError, match=r"'0001'.*needs '0002'.*db upgrade"):
            await SQLStore(store_url, upgrade=False).open()
        assert await snapshot(store_url) == before
        async with SQLStore(store_url) as store:
            assert store.status_at_open is not None
            assert store.status_at_open.state is SchemaState.BEHIND
            assert store.status_at_open.revision == "0001"
            assert await store.load_filter_id("@a:x") == "f"
        assert "zz_extra" in await table_names(store_url)
        status = await database_status(store_url)
        assert (status.state, status.revision) == (SchemaState.CURRENT, "0002")
    # back on the real code, whose newest version is 0001: this database is now too new
    with pytest.raises(SchemaTooNewError, match="'0002'"):
        await SQLStore(store_url).open()


async def test_a_failing_migration_leaves_nothing_half_written(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLStore(store_url):
        pass
    use_migrations_with(tmp_path, monkeypatch, FAILING_0002)
    with pytest.raises(RuntimeError, match="on purpose"):
        await SQLStore(store_url).open()
    status = await database_status(store_url)
    assert (status.state, status.revision) == (SchemaState.BEHIND, "0001")
    assert "zz_half" not in await table_names(store_url)


async def test_a_failed_open_of_a_new_sqlite_file_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_migrations_with(tmp_path, monkeypatch, FAILING_0002)
    path = tmp_path / "new.db"
    with pytest.raises(RuntimeError, match="on purpose"):
        await SQLStore(f"sqlite+aiosqlite:///{path}").open()
    assert names_in(tmp_path) == ["migrations_copy"]


# --- bad input: each a clear StoreError at open, nothing created ---------------------------------


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("", "empty database URL"),
        ("not a url", "malformed database URL 'not a url'"),
        (
            "postgresql://bridge:s3cret@127.0.0.1:port/db",
            "malformed database URL 'postgresql://bridge:\\*\\*\\*@",
        ),
        ("postgresql+asyncpg://bridge:s3cret@127.0.0.1:99999/db", "bad port"),
        ("mysql://bridge:s3cret@127.0.0.1/bridge", "unsupported database URL scheme 'mysql'"),
        ("postgresql+asyncpg://bridge:s3cret@127.0.0.1:5432", "names no database"),
        ("sqlite+pysqlite:///x.db", "unsupported database URL scheme 'sqlite\\+pysqlite'"),
    ],
)
def test_malformed_url(url: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseURLError, match=pattern) as info:
        SQLStore(url)
    assert "s3cret" not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_url_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="database URL must be a str"):
        SQLStore(42)  # type: ignore[arg-type]


async def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    url = "postgresql+asyncpg://bridge:s3cret@127.0.0.1:1/bridge"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await SQLStore(url).open()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "s3cret" not in message
    assert "postgresql+asyncpg://bridge:***@127.0.0.1:1/bridge" in message
    assert "refused" in message.lower() or "connect" in message.lower()
    assert info.value.url == "postgresql+asyncpg://bridge:***@127.0.0.1:1/bridge"


@pytest.mark.postgres
async def test_missing_postgres_database(new_pg_database: NewDatabase) -> None:
    url = await new_pg_database()
    missing = url.rsplit("/", 1)[0] + "/appservice_store_no_such_db"
    with pytest.raises(StoreUnavailableError, match='"appservice_store_no_such_db" does not exist'):
        await SQLStore(missing).open()


async def test_sqlite_in_a_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nope' / 'x.db'}"
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        await SQLStore(url).open()
    assert names_in(tmp_path) == []


async def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 50)
    with pytest.raises(StoreUnavailableError, match="not a database"):
        await SQLStore(f"sqlite+aiosqlite:///{path}").open()
    assert path.read_bytes() == b"this is a text file, not SQLite\n" * 50


async def test_sqlite_opened_read_only_by_uri(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with SQLStore(f"sqlite+aiosqlite:///{path}"):
        pass
    before = path.read_bytes()
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        await SQLStore(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true").open()
    assert path.read_bytes() == before


@pytest.fixture
def read_only_file(tmp_path: Path) -> Iterator[Path]:
    """A SQLite store file made read-only: chmod 0444, plus ``chattr +i`` when running as root
    (root ignores file modes)."""
    path = tmp_path / "ro.db"
    yield path
    if path.exists():
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
        os.chmod(path, 0o644)


async def test_sqlite_read_only_file(read_only_file: Path) -> None:
    url = f"sqlite+aiosqlite:///{read_only_file}"
    async with SQLStore(url) as store:
        await store.save_filter_id("@a:x", "f")
    problem = make_immutable(read_only_file)
    if problem is not None:
        pytest.skip(f"cannot make a file read-only for root here: {problem}")
    before = read_bytes(read_only_file)
    with pytest.raises(ReadOnlyStoreError, match=r"ro\.db.*read-only") as info:
        await SQLStore(url).open()
    assert isinstance(info.value, StoreUnavailableError)
    assert read_bytes(read_only_file) == before


async def test_status_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    status = await database_status(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert status.state is SchemaState.EMPTY
    assert names_in(tmp_path) == []


def test_schema_errors_are_store_errors() -> None:
    for cls in (ForeignDatabaseError, SchemaTooNewError, UpgradeRequiredError):
        assert issubclass(cls, SchemaError)
        assert issubclass(cls, StoreError)


async def test_missing_postgres_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.store import conftest

    monkeypatch.setattr(conftest, "_pg_problem", ["ConnectionRefusedError: refused"])
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="refused; start it"):
        await conftest.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"required in CI \(CI=true\)"):
        await conftest.require_postgres()


async def test_private_in_memory_sqlite() -> None:
    async with SQLStore("sqlite+aiosqlite://") as store:
        assert store.status_at_open is not None
        assert store.status_at_open.state is SchemaState.EMPTY
        await store.save_room(members_room(2))
        assert await store.load_room(ROOM) == members_room(2)
