"""Settings: names, defaults, one clear line per bad variable."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_validation_error
from bot.durations import parse_duration
from sandbox.server import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_env_example_with_its_default() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^([A-Z_]+)=(.*)$", example, re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields == set(listed), fields ^ set(listed)
    # The listed values parse to the defaults.
    parsed = Settings(_env_file=None, **{k.lower(): v for k, v in listed.items() if v})  # type: ignore[call-arg]
    assert parsed == Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("45", 45), ("200ms", 0.2)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_lists_and_durations_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVER_IDS", "111, 222")
    monkeypatch.setenv("APPROVAL_TIMEOUT", "15m")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.approver_ids == [111, 222]
    assert s.approval_timeout == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"APPROVER_IDS": "alice"}, "APPROVER_IDS"),
        ({"APPROVAL_TIMEOUT": "soon"}, "APPROVAL_TIMEOUT"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"EXECUTOR": "shell"}, "EXECUTOR"),
        ({"HTTP_PORT": "99999"}, "HTTP_PORT"),
        ({"ACK_BY": "everyone"}, "ACK_BY"),
        ({"REMIND_AFTER": "0s"}, "REMIND_AFTER: must be longer than zero"),
        ({"REMIND_MAX": "-1"}, "REMIND_MAX"),
        ({"ANALYSIS_CONCURRENCY": "0"}, "ANALYSIS_CONCURRENCY"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict, name: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert describe_validation_error(err.value).startswith(name)


def test_non_dry_run_executor_requires_webhook_token() -> None:
    s = Settings(_env_file=None, telegram_bot_token="1:x", telegram_chat_id=-1,  # type: ignore[call-arg]
                 executor="kubectl")
    assert any("ALERT_WEBHOOK_TOKEN" in p for p in s.problems_for_run())


def _run_bot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env={"PATH": "/usr/bin:/bin",
                                                   "PYTHONPATH": str(ROOT), **env},
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_startup_refuses_with_one_clear_line(tmp_path: Path) -> None:
    bad = _run_bot("run", env={"APPROVAL_TIMEOUT": "whenever"}, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "APPROVAL_TIMEOUT" in bad.stderr
    missing = _run_bot("check-config", env={}, cwd=tmp_path)
    assert missing.returncode == 2 and "TELEGRAM_BOT_TOKEN" in missing.stderr
    unsafe = _run_bot("check-config", env={"TELEGRAM_BOT_TOKEN": "1:x",
                                           "TELEGRAM_CHAT_ID": "-1", "EXECUTOR": "kubectl"},
                      cwd=tmp_path)
    assert unsafe.returncode == 2 and "ALERT_WEBHOOK_TOKEN" in unsafe.stderr


async def test_discover_prints_chat_and_user_ids(emu: RunningEmulator) -> None:
    import io

    from harness import ALICE, CHAT

    from bot.telegram.discover import discover

    settings = Settings(_env_file=None, telegram_bot_token=emu.emulator.token,  # type: ignore[call-arg]
                        telegram_api_base=emu.base_url)
    emu.emulator.user_sends(CHAT, ALICE, "/whoami@opsgate_sandbox_bot")
    out = io.StringIO()
    assert await discover(settings, out=out, limit=1, poll_timeout=1) == 0
    assert f"chat id {CHAT}" in out.getvalue() and "user id 111" in out.getvalue()
