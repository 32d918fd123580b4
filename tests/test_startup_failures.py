"""Fatal start-up problems: one line naming what is wrong and what to do, then a non-zero exit
in seconds, for every subcommand (a supervisor must see the exit to restart or alert)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent
# Long enough for a busy machine (a start-up imports aiogram: seconds of CPU, and CI shares
# its cores), short enough that a start-up that hangs or retries forever fails the test.
DEADLINE = 60.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": "123456:TEST-token_0123456789",
        "TELEGRAM_CHAT_ID": "-1001000000001",
        # Nobody listens there: a check that needs Telegram fails fast, and nothing leaves
        # the machine.
        "TELEGRAM_API_BASE": f"http://127.0.0.1:{closed_port()}",
        "DATABASE_PATH": str(tmp_path / "data" / "opsgate.db"),
        "HTTP_PORT": "0",
    }


def run_bot(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, float]:
    """Run `python -m bot ARGS`; fail the test if it is still running after DEADLINE."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env={**base_env(tmp_path), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"`python -m bot {' '.join(args)}` still running after {DEADLINE:.0f}s")
    return proc.returncode, stderr, time.monotonic() - started


def assert_one_line(stderr: str, *words: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    (line,) = lines
    assert line.startswith("opsgate"), line
    assert "—" in line, f"no 'what to do' in {line!r}"
    for word in words:
        assert word in line, (word, line)
    return line


def file_in_the_way(tmp_path: Path) -> Path:
    """A regular file where a directory should be (root ignores permission bits)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    return blocker / "sub" / "opsgate.db"


def test_missing_rules_file(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", RULES_PATH=str(tmp_path / "rules.toml"))
    assert code != 0
    assert_one_line(err, "RULES_PATH", "rules.toml", "No such file")


def test_malformed_rules_file(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text('[[rule]]\nname = "x"\nrisk = "enormous"\n')
    code, err, _ = run_bot(tmp_path, "run", RULES_PATH=str(tmp_path / "rules.toml"))
    assert code != 0
    assert_one_line(err, "RULES_PATH", "risk")


def test_bad_redaction_pattern(tmp_path: Path) -> None:
    (tmp_path / "redact.txt").write_text("# ours\nTENANT-(\n")
    code, err, _ = run_bot(tmp_path, "run", LLM_REDACT_PATH=str(tmp_path / "redact.txt"))
    assert code != 0
    assert_one_line(err, "LLM_REDACT_PATH", "redact.txt:2", "missing )")


def test_bad_consensus_file(tmp_path: Path) -> None:
    (tmp_path / "engines.toml").write_text('[[engine]]\nname = "a"\nbase_url = "ftp://x"\n')
    code, err, _ = run_bot(tmp_path, "run", CONSENSUS_PATH=str(tmp_path / "engines.toml"))
    assert code != 0
    assert_one_line(err, "CONSENSUS_PATH", "engines.toml", "base_url")


def test_missing_routes_file(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", ROUTES_PATH=str(tmp_path / "routes.toml"))
    assert code != 0
    assert_one_line(err, "ROUTES_PATH", "no such file")


def test_malformed_routes_file(tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text("[[route]\nchat_id = 1\n")
    code, err, _ = run_bot(tmp_path, "run", ROUTES_PATH=str(tmp_path / "routes.toml"))
    assert code != 0
    assert_one_line(err, "ROUTES_PATH", "not valid TOML")


def test_database_under_a_regular_file(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", DATABASE_PATH=str(file_in_the_way(tmp_path)))
    assert code != 0
    assert_one_line(err, "DATABASE_PATH", "not a directory")


def test_database_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=999")
    conn.close()
    code, err, _ = run_bot(tmp_path, "run", DATABASE_PATH=str(path))
    assert code != 0
    assert_one_line(err, "DATABASE_PATH", "schema 999", "backup")


def test_http_port_taken(tmp_path: Path, busy_port: int) -> None:
    code, err, elapsed = run_bot(tmp_path, "run", HTTP_PORT=str(busy_port))
    assert code != 0
    assert_one_line(err, "HTTP_PORT", f"127.0.0.1:{busy_port}", "already in use")
    assert elapsed < DEADLINE


@pytest.mark.parametrize("token", ["not-a-token", "bot123456:abc", "123456", "'123:abc'"])
def test_token_that_is_not_a_token(tmp_path: Path, token: str) -> None:
    code, err, _ = run_bot(tmp_path, "run", TELEGRAM_BOT_TOKEN=token)
    assert code != 0
    line = assert_one_line(err, "TELEGRAM_BOT_TOKEN", "@BotFather")
    assert token not in line  # a secret is never echoed


def test_bot_api_unreachable(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run")
    assert code != 0
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "cannot reach the Bot API" in last and "TELEGRAM_API_BASE" in last


def test_malformed_redis_url(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", REDIS_URL="localhost:6379")
    assert code != 0
    assert_one_line(err, "REDIS_URL", "redis://")


def test_bad_setting(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", APPROVAL_TIMEOUT="whenever")
    assert code != 0
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert "APPROVAL_TIMEOUT" in err


def test_sandbox_port_taken(tmp_path: Path, busy_port: int) -> None:
    code, err, _ = run_bot(tmp_path, "sandbox", "--port", str(busy_port),
                           "--emulator-port", "0", "--data-dir", str(tmp_path / "d"))
    assert code != 0
    assert_one_line(err, f"127.0.0.1:{busy_port}", "already in use", "--port")


def test_sandbox_emulator_port_taken(tmp_path: Path, busy_port: int) -> None:
    code, err, _ = run_bot(tmp_path, "sandbox", "--port", "0", "--emulator-port",
                           str(busy_port), "--data-dir", str(tmp_path / "d"))
    assert code != 0
    assert_one_line(err, "--emulator-port", "already in use")


def test_sandbox_data_dir_under_a_file(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "sandbox", "--port", "0", "--emulator-port", "0",
                           "--data-dir", str(file_in_the_way(tmp_path).parent))
    assert code != 0
    assert_one_line(err, "--data-dir", "not a directory")


def test_playbooks_with_unusable_database(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "playbooks", "list",
                           DATABASE_PATH=str(file_in_the_way(tmp_path)))
    assert code != 0
    assert_one_line(err, "DATABASE_PATH", "not a directory")


def test_discover_with_bad_token(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "discover", TELEGRAM_BOT_TOKEN="nope")
    assert code != 0
    assert_one_line(err, "TELEGRAM_BOT_TOKEN")


def test_check_config_reports_every_problem_offline(tmp_path: Path, busy_port: int) -> None:
    (tmp_path / "routes.toml").write_text("[[route]\n")
    code, err, _ = run_bot(
        tmp_path, "check-config", "--offline",
        TELEGRAM_BOT_TOKEN="hello", ROUTES_PATH=str(tmp_path / "routes.toml"),
        RULES_PATH=str(tmp_path / "missing.toml"), DATABASE_PATH=str(file_in_the_way(tmp_path)),
        HTTP_PORT=str(busy_port), REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )
    assert code != 0
    assert "Traceback" not in err
    for name in ("TELEGRAM_BOT_TOKEN", "ROUTES_PATH", "RULES_PATH", "DATABASE_PATH",
                 "HTTP_PORT", "REDIS_URL"):
        assert any(line.startswith(f"opsgate: {name}:") for line in err.splitlines()), name


# --- check-config against the emulator (the online part) ---------------------------------

async def _check_config(tmp_path: Path, emu_url: str, **env: str) -> tuple[int, str, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "check-config", cwd=tmp_path,
        env={**base_env(tmp_path), "TELEGRAM_BOT_TOKEN": "123456:SANDBOX",
             "TELEGRAM_API_BASE": emu_url, "APPROVER_IDS": "111,222", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"check-config still running after {DEADLINE:.0f}s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _row(table: str, name: str) -> list[str]:
    """[check, result, detail] of the row named `name` (columns are 2+ spaces apart)."""
    rows = [re.split(r"\s{2,}", line, maxsplit=2) for line in table.splitlines()]
    found = [row for row in rows if row[0] == name]
    assert len(found) == 1, (name, table)
    return found[0]


async def test_check_config_online_all_good(emu: RunningEmulator, tmp_path: Path) -> None:
    code, out, err = await _check_config(tmp_path, emu.base_url)
    assert code == 0, out + err
    assert _row(out, "getMe")[1] == "ok" and "@opsgate_sandbox_bot" in _row(out, "getMe")[2]
    assert _row(out, "chat -1001000000001")[1] == "ok"
    assert "configuration OK" in out
    # Nothing was created or served: check-config only looks.
    assert not (tmp_path / "data").exists()
    assert not emu.emulator.calls("sendMessage") and not emu.emulator.calls("getUpdates")


async def test_check_config_online_finds_unreachable_chat_and_topic_rights(
    emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.emulator.add_chat(-1007, is_forum=True, bot_rights={"can_manage_topics": False})
    emu.emulator.add_chat(-1008, is_forum=True)
    (tmp_path / "routes.toml").write_text(
        '[[route]]\nmatch = { namespace = "pay" }\nchat_id = -1009999\ncontinue = true\n'
        '[[route]]\nmatch = { namespace = "pay" }\nchat_id = -1007\ncontinue = true\n'
        '[[route]]\nchat_id = -1008\n'
    )
    code, out, err = await _check_config(tmp_path, emu.base_url, THREAD_MODE="topic",
                                         ROUTES_PATH=str(tmp_path / "routes.toml"))
    assert code != 0
    assert _row(out, "chat -1009999")[1] == "FAIL"
    assert "opsgate: chat -1009999:" in err
    no_forum = _row(out, "chat -1001000000001 topics")
    assert no_forum[1] == "FAIL" and "no topics" in no_forum[2]
    no_right = _row(out, "chat -1007 topics")
    assert no_right[1] == "FAIL" and "Manage topics" in no_right[2]
    assert _row(out, "chat -1008 topics")[1] == "ok"


async def test_check_config_online_refused_token(emu: RunningEmulator, tmp_path: Path) -> None:
    code, out, _err = await _check_config(tmp_path, emu.base_url,
                                         TELEGRAM_BOT_TOKEN="654321:WRONG")
    assert code != 0
    assert _row(out, "getMe")[1] == "FAIL" and "refused" in _row(out, "getMe")[2]


def test_postgresql_that_does_not_answer(tmp_path: Path) -> None:
    url = f"postgresql://opsgate:secret-pw@127.0.0.1:{closed_port()}/opsgate"
    code, err, _ = run_bot(tmp_path, "run", DATABASE_URL=url, LOG_LEVEL="ERROR",
                           APPROVER_IDS="1")
    assert code != 0
    line = assert_one_line(err, "DATABASE_URL", "cannot open", "127.0.0.1")
    assert "secret-pw" not in line  # never the password
    # With DATABASE_PATH set too, the log says which one is used.
    _, err, _ = run_bot(tmp_path, "run", DATABASE_URL=url, APPROVER_IDS="1")
    assert "DATABASE_URL is set" in err and "is not used" in err
    assert "secret-pw" not in err


def test_database_url_that_is_not_postgresql(tmp_path: Path) -> None:
    code, err, _ = run_bot(tmp_path, "run", DATABASE_URL="mysql://db/opsgate")
    assert code != 0
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("opsgate: bad configuration: DATABASE_URL")
    assert "postgresql://" in line
