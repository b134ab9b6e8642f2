"""The command bot: ``help``, ``ping``, ``version`` and bridge-defined commands with levels.

Commands are read from a management room (a DM with the bot: every message is a command, the
prefix optional) or, in portal rooms, from messages that start with the command prefix
(``!bridge help``). Each command needs a permission level; a user below it gets a reply naming
the level needed, an unknown command gets a reply pointing at ``help``.

Register a command with ``@bridge.commands.command("login", level="user", help="...")`` on an
``async def handler(evt: CommandEvent) -> None`` (or ``commands.register(...)``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from appservice.bridge.user import User, level_rank

if TYPE_CHECKING:
    from appservice.bridge.portal import Portal

__all__ = ["Command", "CommandEvent", "CommandHandler", "CommandProcessor", "Replier"]

log = logging.getLogger("appservice.bridge.commands")


class Replier(Protocol):
    """How the command bot answers: a notice (``html`` optional) from the bot in ``room_id``."""

    async def __call__(self, room_id: str, text: str, html: str | None) -> None: ...


@dataclass(slots=True)
class CommandEvent:
    """One command invocation: who, where, and the words after the command name."""

    command: str
    args: list[str]
    raw_args: str
    room_id: str
    user: User
    portal: Portal | None
    management: bool
    _replier: Replier = field(repr=False)

    async def reply(self, text: str, *, html: str | None = None) -> None:
        """Answer in the room the command came from (as an ``m.notice`` from the bot)."""
        await self._replier(self.room_id, text, html)


CommandHandler = Callable[[CommandEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its handler, the level it needs, and its help line."""

    name: str
    handler: CommandHandler
    level: str = "user"
    help: str = ""
    usage: str = ""


class CommandProcessor:
    """Parses messages into commands, checks levels and runs handlers.

    ``version_text`` is what the built-in ``version`` command answers.
    """

    def __init__(self, replier: Replier, *, prefix: str, version_text: str = "") -> None:
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"CommandProcessor: prefix must be one word, got {prefix!r}")
        self.prefix = prefix
        self.version_text = version_text
        self._replier = replier
        self._commands: dict[str, Command] = {}
        self.register("help", self._help, level="relay", help="list the commands you can use")
        self.register("ping", self._ping, level="relay", help="check that the bridge answers")
        self.register("version", self._version, level="relay", help="show the bridge's version")

    # --- registration -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        handler: CommandHandler,
        *,
        level: str = "user",
        help: str = "",
        usage: str = "",
        aliases: Sequence[str] = (),
    ) -> Command:
        """Add a command (names are case-insensitive); ValueError on a bad name or level."""
        level_rank(level)  # ValueError for an unknown level
        if not callable(handler):
            raise TypeError(f"command {name!r}: handler must be callable")
        command = Command(self._name(name), handler, level, help, usage)
        for key in (command.name, *(self._name(a) for a in aliases)):
            if key in self._commands and self._commands[key].handler is not handler:
                log.info("command %r is redefined", key)
            self._commands[key] = command
        return command

    def command(
        self, name: str, *, level: str = "user", help: str = "", usage: str = ""
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator form of ``register``."""

        def add(handler: CommandHandler) -> CommandHandler:
            self.register(name, handler, level=level, help=help, usage=usage)
            return handler

        return add

    def get(self, name: str) -> Command | None:
        """The command called ``name`` (or an alias of it), if any."""
        return self._commands.get(name.lower())

    @staticmethod
    def _name(name: str) -> str:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"command name must be one non-empty word, got {name!r}")
        return name.lower()

    # --- parsing and running ------------------------------------------------------------------

    def is_prefixed(self, text: str) -> bool:
        """Whether ``text`` starts with the command prefix as a word (``!bridge help``)."""
        head = text.lstrip()
        return head == self.prefix or head.startswith(self.prefix + " ")

    def parse(self, text: str, *, management: bool) -> tuple[str, list[str], str] | None:
        """``(command, args, raw_args)``, or None when ``text`` is not a command here."""
        text = text.strip()
        if self.is_prefixed(text):
            text = text[len(self.prefix) :].strip()
        elif not management:
            return None
        if not text:
            return ("help", [], "") if not management else None
        name, _, raw = text.partition(" ")
        raw = raw.strip()
        return name.lower(), raw.split(), raw

    async def handle(
        self,
        room_id: str,
        user: User,
        text: str,
        *,
        portal: Portal | None = None,
        management: bool = False,
    ) -> bool:
        """Run the command in ``text``, if it is one; whether it was (replies included)."""
        parsed = self.parse(text, management=management)
        if parsed is None:
            return False
        name, args, raw = parsed
        evt = CommandEvent(name, args, raw, room_id, user, portal, management, self._replier)
        command = self._commands.get(name)
        if command is None:
            await evt.reply(
                f"Unknown command `{name}`. Send `{self._usage('help', management)}` "
                "for the commands you can use."
            )
            return True
        if not user.has_level(command.level):
            log.info("room %s: %s (level %s) may not run %s (needs %s)", room_id, user.user_id,
                     user.level, command.name, command.level)  # fmt: skip
            await evt.reply(
                f"The `{command.name}` command needs the `{command.level}` permission level; "
                f"you have `{user.level}`."
            )
            return True
        log.info("room %s: %s runs %s", room_id, user.user_id, command.name)
        try:
            await command.handler(evt)
        except Exception as err:
            log.exception("room %s: command %s of %s failed", room_id, command.name, user.user_id)
            await evt.reply(f"The `{command.name}` command failed: {type(err).__name__}.")
        return True

    def _usage(self, name: str, management: bool) -> str:
        return name if management else f"{self.prefix} {name}"

    # --- built-ins ----------------------------------------------------------------------------

    def available(self, user: User) -> list[Command]:
        """The commands ``user`` may run, by name."""
        unique = {c.name: c for c in self._commands.values()}
        return [unique[n] for n in sorted(unique) if user.has_level(unique[n].level)]

    async def _help(self, evt: CommandEvent) -> None:
        lines = []
        for c in self.available(evt.user):
            usage = f"{self._usage(c.name, evt.management)}{' ' + c.usage if c.usage else ''}"
            lines.append(f"- `{usage}`{' — ' + c.help if c.help else ''}")
        where = (
            "In this management room send a command on its own."
            if evt.management
            else f"In portal rooms start a command with `{self.prefix}`."
        )
        await evt.reply("Commands you can use:\n" + "\n".join(lines) + "\n" + where)

    async def _ping(self, evt: CommandEvent) -> None:
        await evt.reply("Pong: the bridge is running.")

    async def _version(self, evt: CommandEvent) -> None:
        await evt.reply(self.version_text or "version unknown")
