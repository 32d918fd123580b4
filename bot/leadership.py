"""Which process leads: a lease in the database, renewed in a loop, checked locally before
every Telegram call and in the transaction of every outbox claim and execution start.

Every replica serves HTTP and stores alerts; only the leader polls Telegram, delivers,
analyses, executes and runs the timers. The lease row (storage.repo.lease) has an expiry and
a fencing token that grows at every takeover. Locally the leader keeps a monotonic deadline:
the lease's length counted from the moment its last renewal was sent, minus a margin, so it
ends before the lease can have expired in the database (whatever the database took to
answer). Past the deadline this process makes no Telegram call (`gate`, in the Bot API
session) and fails every fenced transaction (`holds`), even before the renewal loop has
noticed; once the loop notices, it steps down, and taking the lease again gets a new token
(and the recovery that comes with becoming leader).

On SQLite there is one process, which simply always wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from enum import StrEnum

from storage.db import Database
from storage.repo import lease
from storage.repo.sql import Conn

log = logging.getLogger(__name__)

# Calls that change nothing at Telegram and cannot conflict with the leader's: a standby
# checks its settings at start-up with them, like any replica.
READ_ONLY_CALLS = frozenset({"getMe", "getChat", "getChatMember", "getChatAdministrators"})


class Role(StrEnum):
    LEADER = "leader"
    STANDBY = "standby"


class NotLeader(Exception):
    """A Telegram call or a fenced write refused because this process does not lead now."""


def holder_id() -> str:
    """host:pid:random, so a restarted process (same pid in a new container) is another."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def gone(holder: str) -> bool:
    """Whether `holder` was a process of this host that no longer exists (a pid that exists
    may be another process's now: that says nothing, and the lease is left to expire)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, someone else's
    return False


class Leadership:
    def __init__(
        self,
        db: Database,
        *,
        lease_for: float,
        renew_every: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        local: bool = False,
    ) -> None:
        if not 0 < renew_every < lease_for:
            raise ValueError("the renewal interval must be shorter than the lease")
        self.db = db
        self.lease_for = lease_for
        self.renew_every = renew_every
        # What the deadline keeps back: a call in flight, clocks a little apart.
        self.margin = lease_for / 5
        self.holder = holder or holder_id()
        # A database only processes of this host can open (SQLite): a lease left by a process
        # of this host that is gone (killed) is taken at once, not after its expiry.
        self.local = local
        self.clock = clock
        self.monotonic = monotonic
        self.token: int | None = None
        self._deadline = 0.0  # monotonic; calls and fenced writes stop here
        self.changed = asyncio.Event()  # set at every change of role (or of term)
        self._quiet_about: str | None = None  # the last thing logged while nothing changed
        self._failure: str | None = None  # why the last renewal failed, while it stays so
        self._task: asyncio.Task[None] | None = None
        self.looks = 0  # steps taken (tests wait for a look instead of for time)

    # ------------------------------------------------------------ what callers ask

    @property
    def role(self) -> Role:
        return Role.LEADER if self.token is not None else Role.STANDBY

    def leads(self) -> bool:
        """True while this process holds the lease and its local deadline has not passed."""
        return self.token is not None and self.monotonic() < self._deadline

    def remaining(self) -> float:
        """Seconds left before the local deadline (0 when not leading)."""
        if self.token is None:
            return 0.0
        return max(0.0, self._deadline - self.monotonic())

    def gate(self, method: str) -> None:
        """Before each Telegram call (the Bot API session calls it): refused unless leading."""
        if method not in READ_ONLY_CALLS and not self.leads():
            raise NotLeader(f"{method} not sent: this process does not lead")

    async def holds(self, conn: Conn) -> bool:
        """The fence: in the caller's write transaction, whether this process leads under its
        current token (locally, and in the database)."""
        token = self.token
        if token is None or not self.leads():
            return False
        return await lease.holds(conn, token, self.clock())

    # ------------------------------------------------------------ the lease

    async def step(self) -> None:
        """One look at the lease: take it when free, renew it when ours."""
        self.looks += 1
        if self.token is None:
            await self._acquire()
        else:
            await self._renew()

    async def _acquire(self) -> None:
        sent = self.monotonic()
        try:
            async with self.db.write(urgent=True) as conn:
                seen = await lease.current(conn) if self.local else None
                dead = seen.holder if seen is not None and gone(seen.holder) else None
                token = await lease.acquire(conn, self.holder, self.clock(), self.lease_for,
                                            from_holder=dead)
                seen = None if token is not None else await lease.current(conn)
        except Exception as exc:
            self._say(f"cannot take the lease: {type(exc).__name__}: {exc}", logging.ERROR)
            return
        if token is None:
            holder = seen.holder if seen is not None else "?"
            self._say(f"standby: {holder} leads (token {seen.token if seen else '?'})")
            return
        self.token = token
        self._deadline = sent + self.lease_for - self.margin
        self._quiet_about = None
        if dead is not None and dead != self.holder:
            log.info("became leader (token %d): %s, which held the lease, is gone", token, dead)
        else:
            log.info("became leader (token %d)", token)
        self.changed.set()

    async def _renew(self) -> None:
        token = self.token
        assert token is not None
        sent = self.monotonic()
        left = self._deadline - sent
        if left <= 0:
            self.step_down(f"renewal failed: {self._failure}" if self._failure else
                           "lease expired: no renewal within LEADER_LEASE")
            return
        try:
            async with asyncio.timeout(left):
                async with self.db.write(urgent=True) as conn:
                    renewed = await lease.renew(conn, self.holder, token, self.clock(),
                                                self.lease_for)
                    seen = None if renewed else await lease.current(conn)
        except TimeoutError:
            self.step_down("renewal failed: no answer from the database within the lease")
            return
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            if self.monotonic() >= self._deadline:
                self.step_down(f"renewal failed: {self._failure}")
            else:
                self._say(f"renewal failed (still leading until the lease's deadline): "
                          f"{self._failure}", logging.WARNING)
            return
        if not renewed:
            if seen is not None and seen.token != token:
                self.step_down(f"lease lost: {seen.holder} took it (token {seen.token})")
            else:
                self.step_down("lease expired")
            return
        if self.token != token:
            return  # stepped down while the renewal was on its way
        self._quiet_about = self._failure = None
        self._deadline = sent + self.lease_for - self.margin

    def step_down(self, why: str) -> None:
        if self.token is None:
            return
        self.token = None
        self._deadline = 0.0
        self._failure = None
        log.warning("stepped down: %s", why)
        self.changed.set()

    async def release(self) -> None:
        """At a clean stop: give the lease up so a standby takes over without waiting."""
        token = self.token
        if token is None:
            return
        self.token = None
        self._deadline = 0.0
        try:
            async with self.db.write(urgent=True) as conn:
                await lease.release(conn, self.holder, token)
        except Exception as exc:
            log.warning("stepped down: stopping (the lease could not be released, it "
                        "expires by itself: %s)", exc)
            return
        log.info("stepped down: stopping (the lease is given up)")
        self.changed.set()

    def _say(self, what: str, level: int = logging.INFO) -> None:
        """Log a standing state once, not at every look."""
        if what != self._quiet_about:
            self._quiet_about = what
            log.log(level, "%s", what)

    # ------------------------------------------------------------ the loop

    def _wait(self) -> float:
        if self.token is None:
            return self.renew_every
        # A renewal that failed is tried again, and the deadline noticed when it comes.
        return max(0.0, min(self.renew_every, self._deadline - self.monotonic()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._wait())
            try:
                await self.step()
            except Exception:
                log.exception("leadership: unexpected error; continuing")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
