"""What a start-up check says, and how `run` (which refuses to start on a failure) and
`check-config` (which prints them all as a table) use it. The checks themselves live with
what they look at: bot/config_checks.py (settings and the files they name, and the whole
check-config list), bot/resource_checks.py (database, port, Redis), bot/telegram/checks.py
(the Bot API and the routed chats).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # shown, logged by `run`, but not a failure
    # A failure `run` works around (logged as a warning); check-config still fails on it.
    run_continues: bool = False

    @property
    def result(self) -> str:
        return "ok" if self.ok and not self.warning else ("warn" if self.ok else "FAIL")

    def line(self) -> str:
        return f"{self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")


def ok(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def fail(name: str, detail: str, fix: str, *, run_continues: bool = False) -> Check:
    return Check(name, False, one_line(detail), fix, run_continues=run_continues)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, True, one_line(detail), fix, warning=True)


class StartupError(Exception):
    """A problem that stops start-up, said in one line: what is wrong and what to do."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.line())
        self.check = check


def require(checks: Iterable[Check]) -> None:
    """Raise for the first failure `run` cannot work around; log the rest."""
    for check in checks:
        if not check.ok and not check.run_continues:
            raise StartupError(check)
    for check in checks:
        if check.warning or not check.ok:
            log.warning("%s", check.line())


def one_line(text: str) -> str:
    return " ".join(text.split())



def table(checks: list[Check]) -> str:
    rows = [("check", "result", "detail / what to do")]
    for c in checks:
        show_fix = c.fix and (not c.ok or c.warning)
        rows.append((c.name, c.result, c.detail + (f" — {c.fix}" if show_fix else "")))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows)
