"""The ``appservice`` command: set up, run and diagnose a bridge from its config file.

    appservice generate-registration -c config.yaml -r registration.yaml
    appservice run -c config.yaml [-r registration.yaml]
    appservice db upgrade|current [-c config.yaml | --database URL]
    appservice ping -c config.yaml
    appservice doctor -c config.yaml [-r registration.yaml]

Each command returns an exit code (0 fine, 1 a problem the user can fix, 2 a usage error) and
explains problems in a line or a few, never with a traceback. Nothing here prints a token.

``doctor`` changes nothing: it reads the database's schema status without creating a missing
SQLite file (reported as new, for ``run`` or ``db upgrade`` to create), and only reads from the
homeserver (``/versions`` without a token, ``/account/whoami`` with the as_token).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import yaml

from appservice.bridge.config import BridgeConfig, ConfigError
from appservice.client import Client
from appservice.client.retry import ConnectionFailedError, RequestTimeoutError, RetryPolicy
from appservice.errors import HTTPError
from appservice.logs import configure_logging
from appservice.registration import TOKEN_LENGTH, Registration, RegistrationError
from appservice.store import SchemaState, SQLStore, StoreError
from appservice.store.schema import DEFAULT_OWNER

DATABASE_ENV = "APPSERVICE_DATABASE_URL"
DEFAULT_CONFIG = "config.yaml"
DEFAULT_REGISTRATION = "registration.yaml"
PING_TIMEOUT = 75.0
"""Seconds to wait for the homeserver's ping answer: longer than the homeserver's own wait for
the appservice (60 s in Synapse), so its 504 M_CONNECTION_TIMEOUT arrives rather than ours."""

Handler = Callable[[argparse.Namespace], int]
SubParsers = Any  # argparse's _SubParsersAction is private; typed loosely here


class CommandError(Exception):
    """A problem the user can fix: printed on stderr without a traceback, exit code 1."""


def _add_config_option(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    shown = f" (default: {default})" if default else ""
    parser.add_argument(
        "-c", "--config", metavar="PATH", default=default, help=f"the bridge config file{shown}"
    )


def _add_registration_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-r",
        "--registration",
        metavar="PATH",
        help=f"{what} (default: {DEFAULT_REGISTRATION} beside the config file)",
    )


def _registration_path(args: argparse.Namespace, config: BridgeConfig) -> Path:
    if args.registration:
        return Path(args.registration)
    base = config.path.parent if config.path is not None else Path()
    return base / DEFAULT_REGISTRATION


def _connection(config: BridgeConfig, *, timeout: float = 15.0, token: bool = True) -> Client:
    """A client for diagnostics: the as_token (unless ``token=False``), one attempt per
    request, a bounded wait."""
    return Client(
        config.homeserver.address,
        access_token=config.appservice.as_token if token else "",
        retry=RetryPolicy.no_retries(),
        timeout=timeout,
    )


# --- generate-registration ------------------------------------------------------------------


def add_registration_command(subparsers: SubParsers) -> None:
    """``generate-registration``."""
    cmd = subparsers.add_parser(
        "generate-registration",
        help="write the homeserver's registration file from the config (tokens generated into "
        "the config when it has none)",
    )
    _add_config_option(cmd, default=DEFAULT_CONFIG)
    _add_registration_option(cmd, "where to write the registration")
    cmd.set_defaults(handler=_generate_registration)


def _generate_registration(args: argparse.Namespace) -> int:
    config = BridgeConfig.load(args.config, require_tokens=False)
    assert config.path is not None
    generated = {
        name: secrets.token_hex(TOKEN_LENGTH // 2)
        for name in ("as_token", "hs_token")
        if not getattr(config.appservice, name)
    }
    comments_kept = True
    if generated:
        comments_kept = write_tokens_into_config(config.path, generated)
        config = BridgeConfig.load(config.path)
    registration = config.to_registration()
    target = _registration_path(args, config)
    before: Registration | None = None
    with suppress(RegistrationError):
        before = Registration.load(target)
    registration.save(target)

    users = ", ".join(ns.regex for ns in registration.namespaces.users)
    print(
        f"Wrote {target} for appservice {registration.id!r}: url {registration.url}, "
        f"bot {config.bot_user_id}, users {users}."
    )
    if generated:
        names = " and ".join(generated)
        kept = "" if comments_kept else " (its comments could not be kept)"
        print(f"Generated {names} into {config.path}{kept}.")
    if before is not None and before == registration:
        print("The registration is unchanged: nothing to do on the homeserver.")
        return 0
    print(
        "\nNext: list the registration in the homeserver's homeserver.yaml (its path as the "
        "homeserver sees it) and restart the homeserver:\n\n"
        f"    app_service_config_files:\n      - {target.resolve()}\n"
    )
    return 0


def write_tokens_into_config(path: Path, tokens: dict[str, str]) -> bool:
    """Set ``appservice.<name>: <token>`` in the config file atomically, keeping the rest.

    The lines are edited in place so comments survive; when the file's layout does not allow
    that (flow style, say) it is rewritten from its data instead. Returns whether comments were
    kept. The file is written with mode 0600, as it now holds secrets.
    """
    text = path.read_text(encoding="utf-8")
    expected = yaml.safe_load(text) or {}
    expected["appservice"] = dict(expected.get("appservice") or {}, **tokens)
    edited = _edit_section(text, "appservice", tokens)
    kept = edited is not None and _safe_load_or_none(edited) == expected
    new_text = edited if kept and edited is not None else yaml.safe_dump(expected, sort_keys=False)
    _atomic_write(path.resolve() if path.is_symlink() else path, new_text)
    return kept


def _safe_load_or_none(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _edit_section(text: str, section: str, values: dict[str, str]) -> str | None:
    """``text`` with ``key: value`` lines set inside the top-level block ``section:``."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    header = next(
        (i for i, line in enumerate(lines) if line.split("#")[0].rstrip() == f"{section}:"), None
    )
    if header is None:
        return None
    end = header + 1
    indent = ""
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if not line[0].isspace():
                break
            indent = indent or line[: len(line) - len(line.lstrip())]
        end += 1
    indent = indent or "  "
    for key, value in values.items():
        for i in range(header + 1, end):
            if lines[i].startswith(f"{indent}{key}:"):
                lines[i] = f"{indent}{key}: {value}\n"
                break
        else:
            lines.insert(header + 1, f"{indent}{key}: {value}\n")
            end += 1
    return "".join(lines)


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


# --- run -------------------------------------------------------------------------------------


def add_run_command(subparsers: SubParsers) -> None:
    """``run``."""
    cmd = subparsers.add_parser("run", help="run the bridge until SIGINT/SIGTERM")
    _add_config_option(cmd, default=DEFAULT_CONFIG)
    _add_registration_option(cmd, "the registration the homeserver uses, checked against config")
    cmd.add_argument(
        "--no-registration-check",
        action="store_true",
        help="start without comparing the registration file with the config",
    )
    cmd.set_defaults(handler=_run)


def check_registration_file(config: BridgeConfig, path: Path) -> Registration:
    """The registration at ``path``; ``CommandError`` listing every difference from the config."""
    if not path.exists():
        raise CommandError(
            f"no registration file at {path}: pass -r PATH (the file listed in the homeserver's "
            "app_service_config_files), or create it with `appservice generate-registration`"
        )
    registration = Registration.load(path, server_name=config.homeserver.domain)
    problems = config.check_registration(registration)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise CommandError(
            f"{path} does not match {config.path}:\n{listed}\n"
            f"Run `appservice generate-registration -c {config.path} -r {path}` and restart the "
            "homeserver so both sides agree."
        )
    return registration


def load_connector_factory(config: BridgeConfig) -> Callable[..., Any]:
    """Import ``network.connector`` (``"package.module:factory"``); ``CommandError`` if it fails."""
    spec = config.connector
    if spec is None:
        raise CommandError(
            f"{config.path}: network.connector: missing: name the network connector factory, "
            "e.g. `connector: mybridge.connector:make_connector`"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise CommandError(
            f"{config.path}: network.connector: cannot import module {module_name!r}: {e}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CommandError(
                f"{config.path}: network.connector: module {module_name!r} has no {attribute!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise CommandError(f"{config.path}: network.connector: {spec!r} is not callable")
    factory: Callable[..., Any] = target
    return factory


def _run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the bridge on uvloop when it is installed (uvicorn[standard] brings it on Linux):
    a faster event loop for a long-running server; asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _run(args: argparse.Namespace) -> int:
    config = BridgeConfig.load(args.config)
    configure_logging(config.logging, secrets=config.secrets())
    registration = None
    if not args.no_registration_check:
        registration = check_registration_file(config, _registration_path(args, config))
    factory = load_connector_factory(config)
    try:
        # Imported here: the other commands need neither the framework nor the server.
        from appservice.bridge.bridge import Bridge, BridgeError
    except ImportError as e:
        raise CommandError(f"the bridge framework is not available: {e}") from None
    connector = factory(config)
    try:
        bridge = Bridge(config, connector, registration=registration)
    except (BridgeError, TypeError) as e:
        raise CommandError(f"cannot start the bridge: {e}") from None
    try:
        _run_event_loop(bridge.run())
    except BridgeError as e:
        raise CommandError(f"the bridge stopped: {e}") from None
    return 0


# --- db --------------------------------------------------------------------------------------


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="database URL, e.g. sqlite+aiosqlite:///bridge.db (default: appservice.database "
        f"from -c, else ${DATABASE_ENV})",
    )
    _add_config_option(parser, default=None)
    parser.add_argument(
        "--owner",
        default=DEFAULT_OWNER,
        help=f"owner name the database must carry (default: {DEFAULT_OWNER})",
    )


def _database_url(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    url = args.database
    if not url and args.config:
        url = BridgeConfig.load(args.config, require_tokens=False).appservice.database
    url = url or os.environ.get(DATABASE_ENV, "")
    if not url:
        parser.error(
            f"no database: pass --database URL or set {DATABASE_ENV} (or pass -c CONFIG to use "
            "its appservice.database)"
        )
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
    from appservice.store.sql import database_status

    url = _database_url(args, parser)
    store = SQLStore(url)  # parses and validates the URL; never opened
    status = asyncio.run(database_status(store.url, owner=args.owner))
    print(f"{store.safe_url}: {status.describe()}")
    if args.check and status.state is not SchemaState.CURRENT:
        return 1
    return 0


# --- ping and doctor -------------------------------------------------------------------------


def add_ping_command(subparsers: SubParsers) -> None:
    """``ping``."""
    cmd = subparsers.add_parser(
        "ping", help="ask the homeserver to ping the running appservice (is the link working?)"
    )
    _add_config_option(cmd, default=DEFAULT_CONFIG)
    cmd.add_argument(
        "--timeout",
        type=float,
        default=PING_TIMEOUT,
        help=f"seconds to wait for the homeserver's answer (default: {PING_TIMEOUT:g})",
    )
    cmd.set_defaults(handler=_ping)


def _ping(args: argparse.Namespace) -> int:
    config = BridgeConfig.load(args.config)
    ok, bad = marks()

    async def ping() -> int:
        async with _connection(config, timeout=args.timeout) as client:
            resp = await client.ping(config.appservice.id, f"appservice-cli-{uuid.uuid4().hex}")
        return resp.duration_ms

    try:
        duration = asyncio.run(ping())
    except HTTPError as err:
        print(f"{bad} ping failed: {explain_ping_failure(err, config)}", file=sys.stderr)
        return 1
    print(
        f"{ok} the homeserver at {config.homeserver.address} reached the appservice at "
        f"{config.appservice.address} in {duration} ms"
    )
    return 0


def marks() -> tuple[str, str]:
    """The pass/fail marks: ✓ and ✗, or OK and FAIL where stdout cannot encode them."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "OK", "FAIL"
    return "✓", "✗"


def _errcode(err: HTTPError) -> str:
    return err.wrapped_error.errcode if err.wrapped_error is not None else ""


def _describe_answer(err: HTTPError) -> str:
    text = err.wrapped_error.error if err.wrapped_error is not None else ""
    parts = [f"HTTP {err.code}", _errcode(err), text]
    return " ".join(p for p in parts if p)


def _unreachable(config: BridgeConfig, err: HTTPError) -> str:
    why = "no answer in time" if isinstance(err, RequestTimeoutError) else "cannot connect"
    return (
        f"homeserver unreachable at {config.homeserver.address} ({why}): is it running, and is "
        "homeserver.address right (scheme, host and port of its client API)?"
    )


def _unknown_token(config: BridgeConfig) -> str:
    return (
        "the homeserver does not know appservice.as_token (M_UNKNOWN_TOKEN): list the "
        "registration file in its homeserver.yaml `app_service_config_files` and restart it; if "
        "it is listed, regenerate it with `appservice generate-registration` so its tokens match "
        f"{config.path or 'the config'}, and restart the homeserver"
    )


def explain_ping_failure(err: HTTPError, config: BridgeConfig) -> str:
    """What a failed ping means and what to do about it, by cause."""
    address = config.appservice.address
    code, errcode = err.code, _errcode(err)
    if isinstance(err, ConnectionFailedError) or code == 0:
        return _unreachable(config, err)
    if errcode == "M_UNKNOWN_TOKEN":
        return _unknown_token(config)
    if errcode in ("M_FORBIDDEN", "M_NOT_FOUND"):
        return (
            f"the homeserver refused the ping for appservice.id {config.appservice.id!r} "
            f"({_describe_answer(err)}): the as_token belongs to a registration with another id; "
            "make appservice.id match the `id` of the registration the homeserver loaded "
            "(regenerate it with `appservice generate-registration` and restart the homeserver)"
        )
    if errcode == "M_URL_NOT_SET":
        return (
            "the registration the homeserver loaded has `url: null`: regenerate it with "
            "`appservice generate-registration` (url comes from appservice.address) and restart "
            "the homeserver"
        )
    if errcode == "M_CONNECTION_FAILED":
        return (
            f"the homeserver could not connect to the appservice at {address} (HTTP {code} "
            "M_CONNECTION_FAILED): is `appservice run` running, and is appservice.address right "
            "from the homeserver's point of view (not 127.0.0.1 when the homeserver runs on "
            "another host or in a container)? The registration's url must be the same address."
        )
    if errcode == "M_CONNECTION_TIMEOUT" or code == 504:
        return (
            f"the appservice at {address} did not answer the homeserver in time (HTTP {code} "
            f"{errcode or 'timeout'}): is `appservice run` stuck or overloaded, or does a "
            "firewall drop the homeserver's connections to it?"
        )
    if errcode == "M_BAD_STATUS":
        return (
            f"the appservice at {address} answered the homeserver's ping with an error "
            f"({_describe_answer(err)}): check the bridge's log; a 401/403 there means the "
            "hs_token in the homeserver's registration differs from appservice.hs_token"
        )
    if code == 404 and errcode in ("M_UNRECOGNIZED", ""):
        return (
            f"the homeserver does not support the appservice ping endpoint "
            f"({_describe_answer(err)}; it needs Matrix v1.7): use `appservice doctor` instead"
        )
    return f"the homeserver answered {_describe_answer(err)}"


class _Doctor:
    """Runs checks in order and prints one ✓/✗ line each (with the fix under a ✗)."""

    def __init__(self) -> None:
        self.ok_mark, self.bad_mark = marks()
        self.failures = 0

    def ok(self, text: str) -> None:
        print(f"{self.ok_mark} {text}")

    def bad(self, text: str, fix: str = "") -> None:
        self.failures += 1
        print(f"{self.bad_mark} {text}")
        if fix:
            print(f"    {fix}")

    def skipped(self, text: str) -> None:
        print(f"- {text}")


def add_doctor_command(subparsers: SubParsers) -> None:
    """``doctor``."""
    cmd = subparsers.add_parser(
        "doctor",
        help="check config, connector, registration, database, homeserver and as_token; print "
        "fixes (changes nothing: a missing database is reported, not created)",
    )
    _add_config_option(cmd, default=DEFAULT_CONFIG)
    _add_registration_option(cmd, "the registration the homeserver uses")
    cmd.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    doc = _Doctor()
    try:
        config = BridgeConfig.load(args.config)
    except ConfigError as e:
        doc.bad(f"config: {e}", "fix the config file (see config.example.yaml)")
        return 1
    doc.ok(f"config {config.path} is valid")
    try:
        load_connector_factory(config)
        doc.ok(f"network.connector {config.connector!r} imports")
    except CommandError as e:
        doc.bad(str(e), "install the connector's package or fix network.connector")
    reg_path = _registration_path(args, config)
    try:
        check_registration_file(config, reg_path)
        doc.ok(f"registration {reg_path} matches the config")
    except (CommandError, RegistrationError) as e:
        lines = str(e).splitlines()
        doc.bad(f"registration: {lines[0]}", "\n    ".join(lines[1:]))
    asyncio.run(_doctor_online(doc, config))
    return 1 if doc.failures else 0


async def _doctor_online(doc: _Doctor, config: BridgeConfig) -> None:
    await _check_database(doc, config)
    # /versions without a token: Synapse checks any token given, even there.
    async with _connection(config, token=False) as anonymous:
        reachable = await _check_homeserver(doc, config, anonymous)
    async with _connection(config) as client:
        if reachable:
            await _check_token(doc, config, client)
        else:
            doc.skipped("as_token not checked (homeserver unreachable)")


async def _check_database(doc: _Doctor, config: BridgeConfig) -> None:
    from appservice.store.migrate import refuse_unusable
    from appservice.store.sql import database_status

    store = SQLStore(config.appservice.database)  # parses the URL only; never opened
    try:
        status = await database_status(store.url)
        refuse_unusable(status, store.url, DEFAULT_OWNER, upgrade=True)
    except StoreError as e:
        doc.bad(f"database: {e}", "fix appservice.database, or give the bridge its own database")
        return
    if status.state is SchemaState.EMPTY:
        doc.ok(f"database {store.safe_url} is new or empty: `appservice run` creates the schema")
    elif status.state is SchemaState.BEHIND:
        doc.ok(f"database {store.safe_url}: {status.describe()} (`appservice run` upgrades it)")
    else:
        doc.ok(f"database {store.safe_url}: {status.describe()}")


async def _check_homeserver(doc: _Doctor, config: BridgeConfig, client: Client) -> bool:
    try:
        versions = await client.versions()
    except HTTPError as e:
        if isinstance(e, ConnectionFailedError) or e.code == 0:
            doc.bad(_unreachable(config, e))
        else:
            doc.bad(
                f"homeserver: {config.homeserver.address} answered {_describe_answer(e)} to "
                "/_matrix/client/versions",
                "is homeserver.address the homeserver's client API (not a web page or proxy)?",
            )
        return False
    newest = versions.versions[-1] if versions.versions else "no versions listed"
    doc.ok(f"homeserver {config.homeserver.address} answers ({newest})")
    return True


async def _check_token(doc: _Doctor, config: BridgeConfig, client: Client) -> None:
    try:
        whoami = await client.whoami()
    except HTTPError as e:
        if _errcode(e) == "M_UNKNOWN_TOKEN":
            doc.bad("as_token: rejected by the homeserver", _unknown_token(config))
        else:
            doc.bad(f"as_token: whoami failed: {_describe_answer(e)}")
        return
    if whoami.user_id != config.bot_user_id:
        doc.bad(
            f"as_token: belongs to {whoami.user_id}, not to {config.bot_user_id}",
            "check homeserver.domain (the homeserver's server_name) and appservice.bot_username "
            "against the registration the homeserver loaded",
        )
        return
    doc.ok(f"as_token accepted: the homeserver knows the bot as {whoami.user_id}")


COMMAND_GROUPS: list[Callable[[SubParsers], None]] = [
    add_registration_command,
    add_run_command,
    add_db_commands,
    add_ping_command,
    add_doctor_command,
]


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
    except (CommandError, ConfigError, RegistrationError, StoreError) as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
