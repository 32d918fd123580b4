"""The command set and the answers every command shares: /help, the command menu, the
usage line of a refused command and the approvers-only refusal. Pure; fitted under
Telegram's limits by bot.cards.command_text.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from bot.cards.command_text import fit_one, plain
from bot.chat.history import HISTORY_USAGE
from bot.silences.arguments import SILENCE_USAGE, UNSILENCE_USAGE
from bot.texts import render

# The command set, in the order /help and the command menu show it.
COMMANDS = ("incidents", "history", "silence", "silences", "unsilence", "whoami", "help")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


def render_help(*, is_approver: bool, tz: ZoneInfo, locale: str = "en") -> str:
    """/help: one line per command, every button of the card and of the answers, and what
    approvers may do."""
    return fit_one(
        "help", locale, tz, is_approver=is_approver, silence_usage=SILENCE_USAGE,
        unsilence_usage=UNSILENCE_USAGE, history_usage=HISTORY_USAGE,
    )


def command_menu(locale: str = "en") -> list[dict]:
    """BotCommand dicts for setMyCommands, same command set as /help."""
    menu = []
    for command in COMMANDS:
        description = plain(render("commands/menu.html", locale=locale, command=command))
        if not _COMMAND_NAME.fullmatch(command) or not 1 <= len(description) <= 256:
            raise ValueError(f"bad menu entry for /{command}: {description!r}")
        menu.append({"command": command, "description": description})
    return menu


def render_usage(usage: str, *, error: str | None = None, tz: ZoneInfo, locale: str = "en") -> str:
    """A refused command: "⚠️ <error>" (when given) and the usage line."""
    return fit_one("usage", locale, tz, usage=usage, error=error or "")


def render_not_allowed(*, user_id: int, tz: ZoneInfo, locale: str = "en") -> str:
    """A command only approvers may use, sent by someone else."""
    return fit_one("not_allowed", locale, tz, user_id=user_id)
