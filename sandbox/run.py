"""`python -m bot sandbox`: the real app wired to the local Bot API emulator.

No token, no Redis, no Telegram: the emulator plays Telegram on loopback and
serves a chat page where you can press the card's buttons as Alice or Bob.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.checks import StartupError
from bot.config import Settings
from sandbox.server import start_emulator

SANDBOX_CHAT_ID = -1001000000001
ALICE: dict[str, Any] = {"id": 111, "first_name": "Alice", "username": "alice"}
BOB: dict[str, Any] = {"id": 222, "first_name": "Bob", "username": "bob"}
SAMPLES = Path(__file__).resolve().parent / "samples"

BANNER = """
opsgate sandbox is running (Ctrl-C to stop).

  Chat page (press the buttons as Alice or Bob):  {emulator}/
  Alert webhook:                                  http://127.0.0.1:{port}/alerts/alertmanager
  Database:                                       {db}

Fire a sample alert:
  curl -sS -X POST -H 'Content-Type: application/json' \\
       --data @{samples}/crashloop.json http://127.0.0.1:{port}/alerts/alertmanager
Resolve it:
  curl -sS -X POST -H 'Content-Type: application/json' \\
       --data @{samples}/crashloop-resolved.json http://127.0.0.1:{port}/alerts/alertmanager
"""


def sandbox_settings(api_base: str, token: str, http_port: int, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=SecretStr(token),
        telegram_api_base=api_base,
        telegram_chat_id=SANDBOX_CHAT_ID,
        approver_ids=[ALICE["id"], BOB["id"]],
        http_host="127.0.0.1",
        http_port=http_port,
        database_path=str(data_dir / "opsgate.db"),
        redis_url="",
        executor="dry-run",
    )


async def run_sandbox(http_port: int, emulator_port: int, data_dir: Path) -> int:
    from bot.app import App, serve_until_signal
    from bot.checks import bind_problem, database_check, fail, require

    require([database_check(str(data_dir / "opsgate.db"), name="--data-dir",
                            fix_path="pass --data-dir DIR with a directory this user can write")])
    try:
        emu = await start_emulator(port=emulator_port)
    except OSError as exc:
        raise StartupError(fail("--emulator-port", bind_problem("127.0.0.1", emulator_port, exc),
                                "stop what listens there or pass --emulator-port N")) from exc
    emu.emulator.add_chat(
        SANDBOX_CHAT_ID,
        type="supergroup",
        title="On-call (sandbox)",
        admins=[ALICE, BOB],
    )
    settings = sandbox_settings(emu.base_url, emu.emulator.token, http_port, data_dir)

    def banner(app: App) -> None:
        print(BANNER.format(emulator=emu.base_url, port=app.port, db=settings.database_path,
                            samples=SAMPLES), flush=True)

    try:
        return await serve_until_signal(settings, label="opsgate sandbox", on_started=banner)
    finally:
        await emu.close()
