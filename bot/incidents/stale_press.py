"""Presses that reach the bot long after they were made are recorded, never carried out.

A callback query carries no time of its own, so a press's age is counted from the earliest
moment it may have been made: when it reached the bot (stored with it in the inbox), or, for
a press that queued at Telegram while the bot was down, when the bot went away (the last
heartbeat an earlier run stored). A press recorded before a crash and handled after the
restart is as old as the time since it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


def away_since(heartbeat: str | None, now: datetime) -> datetime:
    """When the bot went away before this start: the last heartbeat an earlier run stored
    (ISO time), or `now` on a first start (nothing can have queued for it)."""
    if not heartbeat:
        return now
    return min(now, datetime.fromisoformat(heartbeat))


@dataclass(frozen=True)
class StalePressRule:
    max_age: timedelta  # CALLBACK_MAX_AGE

    def is_stale(self, age: timedelta) -> bool:
        """age: from the earliest moment the press may have been made until it is handled."""
        return age > self.max_age
