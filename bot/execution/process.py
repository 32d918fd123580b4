"""Running a program without a shell and reading its output within bounds.

Shared by the executor (approved actions) and the investigation tools (read-only
kubectl): stdout and stderr as one stream (the order the user would see), at most
`limit` characters kept with a count of what was dropped, a timeout after which the
program is killed, and no program left running when the caller is cancelled.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Sequence
from dataclasses import dataclass

READ_CHUNK = 65536


def bounded(text: str, limit: int, more: int = 0) -> str:
    """`text` cut to `limit` characters with a marker saying how much was left out."""
    if len(text) > limit:
        more += len(text) - limit
        text = text[:limit]
    return f"{text}… ({more} more characters)" if more else text


class BoundedText:
    """Collects decoded text up to a limit while counting what it drops."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: list[str] = []
        self.kept_len = 0
        self.dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes, final: bool = False) -> None:
        text = self._decoder.decode(chunk, final)
        room = self.limit - self.kept_len
        if room > 0:
            self.kept.append(text[:room])
            self.kept_len += len(text[:room])
        self.dropped += max(0, len(text) - max(room, 0))

    def text(self) -> str:
        return bounded("".join(self.kept), self.limit, self.dropped)


@dataclass(frozen=True)
class ProcessOutput:
    """How a run ended. `start_error` is set when the program could not be started."""

    output: str = ""  # bounded stdout+stderr
    returncode: int | None = None
    timed_out: bool = False
    start_error: str = ""


async def run_bounded(argv: Sequence[str], *, limit: int, seconds: float) -> ProcessOutput:
    """Run `argv` (no shell, stdin closed); never raises for the program's behaviour."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        return ProcessOutput(start_error=f"cannot start {argv[0]}: {exc.strerror or exc}")
    output = BoundedText(limit)
    timed_out = False
    try:
        async with asyncio.timeout(seconds):  # kill on expiry, not just stop waiting
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(READ_CHUNK):
                output.feed(chunk)
            await proc.wait()
    except TimeoutError:
        timed_out = True
        proc.kill()
        await proc.wait()
    except asyncio.CancelledError:  # shutdown or a caller's deadline: leave nothing running
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    output.feed(b"", final=True)
    return ProcessOutput(output.text(), proc.returncode, timed_out)
