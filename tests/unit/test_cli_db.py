"""``appservice db upgrade`` / ``appservice db current`` on real SQLite files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appservice.cli import DATABASE_ENV, build_parser, main


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_ENV, raising=False)


def test_current_on_a_missing_file_says_empty_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.db"
    assert main(["db", "current", "--database", url_of(path)]) == 0
    assert "empty database" in capsys.readouterr().out
    assert not path.exists()
    assert main(["db", "current", "--check", "--database", url_of(path)]) == 1


def test_upgrade_creates_then_reports_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bridge.db"
    assert main(["db", "upgrade", "--database", url_of(path)]) == 0
    assert "created the schema at 0001" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", url_of(path)]) == 0
    assert "already at 0001 (head)" in capsys.readouterr().out
    assert main(["db", "current", "--check", "--database", url_of(path)]) == 0
    assert "0001 (head), owner 'appservice'" in capsys.readouterr().out
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM appservice_meta WHERE key='owner'").fetchone() == (
            "appservice",
        )


def test_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env.db"
    monkeypatch.setenv(DATABASE_ENV, url_of(path))
    assert main(["db", "upgrade"]) == 0
    assert path.exists()
    assert str(path) in capsys.readouterr().out


def test_no_database_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["db", "upgrade"])
    assert info.value.code == 2
    assert f"pass --database URL or set {DATABASE_ENV}" in capsys.readouterr().err


def test_refusal_is_one_line_on_stderr_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "homeserver.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    assert main(["db", "upgrade", "--database", url_of(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("appservice: database ")
    assert "no appservice owner row" in err
    assert "Traceback" not in err
    assert path.read_bytes() == before
    assert main(["db", "current", "--check", "--database", url_of(path)]) == 1
    assert "not ours" in capsys.readouterr().out


def test_bad_url_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--database", "mysql://u:hunter2@127.0.0.1/x"]) == 1
    err = capsys.readouterr().err
    assert "unsupported database URL scheme 'mysql'" in err
    assert "hunter2" not in err


def test_other_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = url_of(tmp_path / "b.db")
    assert main(["db", "upgrade", "--owner", "irc-bridge", "--database", url]) == 0
    assert main(["db", "upgrade", "--database", url]) == 1
    assert "belongs to 'irc-bridge'" in capsys.readouterr().err


def test_a_command_group_is_required() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([])
    assert info.value.code == 2


def test_installed_entry_point(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("appservice")
    if not script.exists():
        pytest.skip(f"the appservice script is not installed next to {sys.executable}")
    done = subprocess.run(
        [str(script), "db", "upgrade", "--database", url_of(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "created the schema at 0001" in done.stdout
