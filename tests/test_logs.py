"""LOG_FORMAT and LOG_LEVEL: JSON lines with the incident and decision a line is about,
from the real app and from a real `python -m bot` process; bad values stop start-up."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ALICE, Harness

from bot import logs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger also writes JSON lines into a buffer, as LOG_FORMAT=json would."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_context_and_extra(json_lines: io.StringIO) -> None:
    log = logging.getLogger("opsgate.test")
    with logs.about(incident_id="INC-AAAAAA"):
        with logs.about(decision_id=7):
            log.warning("inside %s", "both")
        log.info("explicit", extra={"incident_id": "INC-BBBBBB"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("outside")
    first, second, third = parsed(json_lines)
    assert first["message"] == "inside both" and first["level"] == "WARNING"
    assert (first["incident_id"], first["decision_id"]) == ("INC-AAAAAA", 7)
    assert second["incident_id"] == "INC-BBBBBB" and "decision_id" not in second
    assert "incident_id" not in third and "RuntimeError: boom" in third["exception"]
    assert third["logger"] == "opsgate.test" and third["time"].endswith("+00:00")


async def test_the_execution_line_names_its_incident_and_decision(
    app: Harness, json_lines: io.StringIO
) -> None:
    body = await app.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await app.settled()
    card = await app.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    decision = await app.decision(inc)
    executed = [line for line in parsed(json_lines) if line["message"].startswith("executed ")]
    assert len(executed) == 1, executed
    assert executed[0]["incident_id"] == inc
    assert executed[0]["decision_id"] == decision.id


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
            "DATABASE_PATH": str(tmp_path / "opsgate.db"), **extra}


@pytest.mark.parametrize(("name", "value"), [("LOG_FORMAT", "yaml"), ("LOG_LEVEL", "loud")])
def test_a_bad_value_is_one_line_and_exit_2(tmp_path: Path, name: str, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--offline"], cwd=tmp_path,
        env=bot_env(tmp_path, **{name: value}), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("opsgate: bad configuration: ") and name in lines[0]
    assert repr(value) in lines[0]


def test_the_sandbox_logs_json_lines(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--emulator-port", "0",
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, env=bot_env(tmp_path, LOG_FORMAT="json", LOG_LEVEL="info"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        seen: list[dict[str, Any]] = []
        for raw in proc.stderr:  # ends when the process closes stderr
            seen.append(json.loads(raw))
            if seen[-1]["message"].startswith("opsgate is up"):
                break
        assert seen and seen[-1]["message"].startswith("opsgate is up"), seen
        assert seen[-1]["level"] == "INFO" and seen[-1]["logger"] == "bot.app"
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0
        tail = [json.loads(line) for line in (rest or "").splitlines()]
        assert any(line["message"] == "stopping" for line in tail), tail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
