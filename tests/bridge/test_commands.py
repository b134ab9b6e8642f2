"""Permission levels and the command processor: parsing, level checks, replies."""

from __future__ import annotations

import pytest

from appservice.bridge import CommandEvent, CommandProcessor, User, has_level, level_rank


class Replies:
    """Collects what the command bot would send, as (room, text)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def __call__(self, room_id: str, text: str, html: str | None) -> None:
        self.sent.append((room_id, text))

    def last(self) -> str:
        return self.sent[-1][1]


def user(level: str) -> User:
    return User(f"@{level}:example.org", level)


@pytest.fixture
def replies() -> Replies:
    return Replies()


@pytest.fixture
def processor(replies: Replies) -> CommandProcessor:
    return CommandProcessor(replies, prefix="!br", version_text="appservice 9.9")


def test_levels_are_ordered() -> None:
    assert [level_rank(x) for x in ("none", "relay", "user", "admin")] == [0, 1, 2, 3]
    assert has_level("admin", "user")
    assert has_level("user", "user")
    assert not has_level("relay", "user")
    assert not has_level("none", "relay")
    with pytest.raises(ValueError, match="unknown permission level 'root'; known: none, relay"):
        has_level("root", "user")


def test_parse_management_and_portal(processor: CommandProcessor) -> None:
    assert processor.parse("help", management=True) == ("help", [], "")
    assert processor.parse("!br Login  bob secret", management=True) == (
        "login",
        ["bob", "secret"],
        "bob secret",
    )
    assert processor.parse("help", management=False) is None  # portals need the prefix
    assert processor.parse("!brhelp", management=False) is None
    assert processor.parse("  !br ping", management=False) == ("ping", [], "")
    assert processor.parse("!br", management=False) == ("help", [], "")
    assert processor.parse("   ", management=True) is None


async def test_a_command_runs_when_the_level_is_enough(
    processor: CommandProcessor, replies: Replies
) -> None:
    seen: list[CommandEvent] = []

    @processor.command("kick", level="admin", help="kick someone", usage="<user>")
    async def kick(evt: CommandEvent) -> None:
        seen.append(evt)
        await evt.reply(f"kicked {evt.args[0]}")

    assert await processor.handle("!r", user("admin"), "kick @bob:x", management=True)
    assert replies.last() == "kicked @bob:x"
    assert seen[0].user.level == "admin"
    assert seen[0].raw_args == "@bob:x"

    assert await processor.handle("!r", user("user"), "!br kick @bob:x")
    assert replies.last() == (
        "The `kick` command needs the `admin` permission level; you have `user`."
    )
    assert len(seen) == 1


async def test_builtins_and_unknown_commands(processor: CommandProcessor, replies: Replies) -> None:
    processor.register("login", _noop, level="user", help="log in")
    processor.register("nuke", _noop, level="admin", help="admins only")

    await processor.handle("!dm", user("user"), "help", management=True)
    text = replies.last()
    assert "`help`" in text
    assert "`ping`" in text
    assert "`login` — log in" in text
    assert "nuke" not in text
    await processor.handle("!portal", user("relay"), "!br help")
    text = replies.last()
    assert "`!br ping`" in text
    assert "login" not in text

    await processor.handle("!dm", user("relay"), "ping", management=True)
    assert replies.last().startswith("Pong")
    await processor.handle("!dm", user("relay"), "version", management=True)
    assert replies.last() == "appservice 9.9"

    await processor.handle("!dm", user("user"), "frob", management=True)
    assert replies.last() == "Unknown command `frob`. Send `help` for the commands you can use."
    await processor.handle("!portal", user("user"), "!br frob")
    assert "Send `!br help`" in replies.last()
    assert [room for room, _ in replies.sent] == ["!dm", "!portal", "!dm", "!dm", "!dm", "!portal"]


async def test_none_level_may_not_even_ask_for_help(
    processor: CommandProcessor, replies: Replies
) -> None:
    await processor.handle("!portal", user("none"), "!br help")
    assert "needs the `relay` permission level; you have `none`" in replies.last()


async def test_not_a_command_is_left_alone(processor: CommandProcessor, replies: Replies) -> None:
    assert not await processor.handle("!portal", user("admin"), "just chatting")
    assert replies.sent == []


async def test_a_failing_command_says_so(processor: CommandProcessor, replies: Replies) -> None:
    async def broken(evt: CommandEvent) -> None:
        raise KeyError("boom")

    processor.register("broken", broken, level="relay")
    assert await processor.handle("!dm", user("user"), "BROKEN", management=True)
    assert replies.last() == "The `broken` command failed: KeyError."


def test_registration_is_checked(processor: CommandProcessor) -> None:
    with pytest.raises(ValueError, match="unknown permission level 'boss'"):
        processor.register("x", _noop, level="boss")
    with pytest.raises(ValueError, match="one non-empty word"):
        processor.register("two words", _noop)
    with pytest.raises(ValueError, match="prefix must be one word"):
        CommandProcessor(Replies(), prefix="! br")
    processor.register("ls", _noop, level="relay", aliases=("list",))
    assert processor.get("LIST") is processor.get("ls")


async def _noop(evt: CommandEvent) -> None:
    return None
