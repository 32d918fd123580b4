"""Fault points for crash tests: `OPSGATE_FAULT=NAME` makes the process kill itself with
SIGKILL when it reaches the point NAME, so a test can restart it from exactly there;
`OPSGATE_FAULT=NAME:stop` makes it stop itself (SIGSTOP) there, the first time only, so a
test can leave it paused (a long GC pause, a frozen VM) and resume it with SIGCONT.

Unset (always, outside tests) a point costs one comparison. The points:
  inbox.recorded   an update is in the inbox, not yet handed to its handler
  inbox.handled    an update's handler returned (its changes are committed, and with them
                   the update's done mark; a handler that changed nothing is not yet marked)
  intake.batch     a webhook batch has stored its second payload (or a later one), before
                   its COMMIT
  delivery.waiting the delivery worker goes idle until a row's not-before time (a new
                   incident's first card waiting for its proposal)
  delivery.claimed an outbox row is claimed ('sending' committed), its call not yet made
"""

from __future__ import annotations

import os
import signal

_ARMED, _, _HOW = os.environ.get("OPSGATE_FAULT", "").partition(":")
_stopped = False


def point(name: str) -> None:
    global _stopped
    if not _ARMED or _ARMED != name:
        return
    if _HOW != "stop":
        os.kill(os.getpid(), signal.SIGKILL)
    elif not _stopped:
        _stopped = True
        os.kill(os.getpid(), signal.SIGSTOP)
