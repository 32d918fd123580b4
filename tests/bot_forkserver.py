"""Forks `python -m bot run` processes from one that has already imported the libraries the
bot uses (aiogram's import alone costs seconds of CPU per process), for tests that start
many of them. The project's own modules are forgotten before the first fork, so each child
imports them again once its environment is set, and runs `bot` as `python -m bot run` does.

One JSON line each way on stdin and stdout: a request {"env": {...}, "cwd": ..., "log": ...}
is answered {"pid": N}; a child's end is reported {"exited": N, "returncode": C}, C < 0 for
a child killed by signal -C (as asyncio reports it). The server exits at the end of stdin.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def preload() -> None:
    import bot.app  # noqa: F401 - what `run` imports, the libraries with it

    own = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for name in [n for n in sys.modules if n.split(".")[0] in own]:
        del sys.modules[name]


def say(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def serve() -> dict[str, Any]:
    """Answer requests until the end of stdin (then exit); in a child, the request it is for."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                say({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
        if 0 not in ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            raise SystemExit(0)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                return dict(request)
            say({"pid": pid})


def run_child(request: dict[str, Any]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # where `python -m` puts it
    sys.argv = ["-m", "run"]
    runpy.run_module("bot", run_name="__main__", alter_sys=True)  # raises its SystemExit


if __name__ == "__main__":
    preload()
    run_child(serve())
