"""One running opsgate per SQLite file: an exclusive flock on `<database>.lock`, held for
as long as the app runs.

SQLite would let a second process in (it serialises writers), but start-up takes over what
the last run left behind (writes still marked 'sending' go back to pending), which is only
right when that run is gone: a second process would resend, and race, the first one's
writes. Several processes need PostgreSQL (DATABASE_URL).

The kernel drops a flock when its holder dies, however it dies (SIGKILL, OOM), so a restart
after a crash takes it at once; the file left behind means nothing by itself. Apps in one
process (tests) share the lock. Commands that only read (backup) do not take it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path


class InUse(Exception):
    """Another process holds the database's lock."""

    def __init__(self, database: str, holder: str) -> None:
        by = f" ({holder})" if holder else ""
        super().__init__(f"{database} is in use by another opsgate process{by}")


@dataclass
class _Held:
    fd: int
    users: int


_HELD: dict[str, _Held] = {}  # by the lock file's resolved path
_GUARD = threading.Lock()


def lock_path(database: str | Path) -> Path:
    return Path(f"{database}.lock")


class SqliteLock:
    """The lock as one app holds it; `release` once, when that app stops."""

    def __init__(self, key: str) -> None:
        self._key: str | None = key

    def release(self) -> None:
        with _GUARD:
            key, self._key = self._key, None
            if key is None or key not in _HELD:
                return
            held = _HELD[key]
            held.users -= 1
            if held.users == 0:
                del _HELD[key]
                os.close(held.fd)  # closing the last descriptor drops the flock


def acquire(database: str | Path) -> SqliteLock:
    """Take the lock of the SQLite file `database` for this process. Raises InUse when
    another process holds it, OSError when the lock file cannot be created."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.users += 1
            return SqliteLock(key)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InUse(str(database), holder) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message a second process prints (a hint only).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        _HELD[key] = _Held(fd, 1)
        return SqliteLock(key)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
