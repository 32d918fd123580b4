"""Presses that reach the bot long after they were made are recorded, never carried out.

A callback query carries no time of its own, so the bot's downtime before this start (read
from the workers' heartbeat) stands in for the age of a press that queued while it was away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class StalePressRule:
    downtime: timedelta  # how long the bot was away before this start
    max_age: timedelta  # CALLBACK_MAX_AGE

    @classmethod
    def since_heartbeat(cls, heartbeat: str | None, now: datetime,
                        max_age: timedelta) -> StalePressRule:
        """The last heartbeat an earlier run stored (ISO time), or None on a first start."""
        away = now - datetime.fromisoformat(heartbeat) if heartbeat else timedelta(0)
        return cls(downtime=max(timedelta(0), away), max_age=max_age)

    def is_stale(self, backlog: bool) -> bool:
        """backlog: the press queued while the bot was down (drained at start-up)."""
        return backlog and self.downtime > self.max_age
