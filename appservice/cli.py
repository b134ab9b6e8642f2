"""The ``appservice`` command: ``appservice db upgrade``, ``appservice db current``, ...

Each command group is a function that adds its subparser and sets ``handler`` (a function of the
parsed arguments returning the exit code); later groups (``registration``, ``serve``, ...) join
``COMMAND_GROUPS``. Errors the user can fix are printed as one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from appservice.store import SchemaState, SQLStore, StoreError
from appservice.store.schema import DEFAULT_OWNER
from appservice.store.sql import database_status

DATABASE_ENV = "APPSERVICE_DATABASE_URL"

Handler = Callable[[argparse.Namespace], int]
SubParsers = Any  # argparse's _SubParsersAction is private; typed loosely here


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help=f"database URL, e.g. sqlite+aiosqlite:///bridge.db (default: ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--owner",
        default=DEFAULT_OWNER,
        help=f"owner name the database must carry (default: {DEFAULT_OWNER})",
    )


def _database_url(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    url = args.database or os.environ.get(DATABASE_ENV, "")
    if not url:
        parser.error(f"no database: pass --database URL or set {DATABASE_ENV}")
    return str(url)


def add_db_commands(subparsers: SubParsers) -> None:
    """``db upgrade`` and ``db current``."""
    db = subparsers.add_parser("db", help="the store's database schema (alembic migrations)")
    actions = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")

    upgrade = actions.add_parser(
        "upgrade", help="create the schema, or upgrade it to the version this code needs"
    )
    _add_database_option(upgrade)
    upgrade.set_defaults(handler=lambda args: _db_upgrade(args, upgrade))

    current = actions.add_parser(
        "current", help="show the database's schema revision and owner (changes nothing)"
    )
    _add_database_option(current)
    current.add_argument(
        "--check", action="store_true", help="exit 1 unless the schema is at this code's head"
    )
    current.set_defaults(handler=lambda args: _db_current(args, current))


def _db_upgrade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    url = _database_url(args, parser)

    async def run() -> str:
        async with SQLStore(url, owner=args.owner, upgrade=True) as store:
            before = store.status_at_open
            assert before is not None
            shown = store.safe_url
            if before.state is SchemaState.EMPTY:
                return f"{shown}: created the schema at {before.head}"
            if before.state is SchemaState.BEHIND:
                return f"{shown}: upgraded {before.revision} -> {before.head}"
            return f"{shown}: already at {before.head} (head)"

    print(asyncio.run(run()))
    return 0


def _db_current(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    url = _database_url(args, parser)
    store = SQLStore(url)  # parses and validates the URL; never opened
    status = asyncio.run(database_status(store.url, owner=args.owner))
    print(f"{store.safe_url}: {status.describe()}")
    if args.check and status.state is not SchemaState.CURRENT:
        return 1
    return 0


COMMAND_GROUPS: list[Callable[[SubParsers], None]] = [add_db_commands]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every command group added."""
    parser = argparse.ArgumentParser(
        prog="appservice", description="Tools for Matrix application services and bridges."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_group in COMMAND_GROUPS:
        add_group(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except StoreError as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
