"""Fault points for crash tests: `OPSGATE_FAULT=NAME` makes the process kill itself with
SIGKILL when it reaches the point NAME, so a test can restart it from exactly there.

Unset (always, outside tests) a point costs one comparison. The points:
  inbox.recorded   an update is in the inbox, not yet handed to its handler
  inbox.handled    an update's handler returned (its changes are committed, and with them
                   the update's done mark; a handler that changed nothing is not yet marked)
  intake.batch     a webhook batch has stored its second payload (or a later one), before
                   its COMMIT
  delivery.waiting the delivery worker goes idle until a row's not-before time (a new
                   incident's first card waiting for its proposal)
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("OPSGATE_FAULT", "")


def point(name: str) -> None:
    if _ARMED and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
