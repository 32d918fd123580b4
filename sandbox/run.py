"""`python -m bot sandbox`: the real app wired to the local Bot API emulator.

No token, no Redis, no Telegram: the emulator plays Telegram on loopback and
serves a chat page where you fire sample alerts and press the card's buttons as
Alice or Bob (approvers) or Carol (not an approver).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.checks import StartupError
from bot.config import Settings
from sandbox.panel import ALICE, BOB, CAROL, SAMPLES, SamplePanel
from sandbox.server import start_emulator

__all__ = ["ALICE", "BOB", "CAROL", "SAMPLES", "SANDBOX_CHAT_ID", "run_sandbox"]

SANDBOX_CHAT_ID = -1001000000001
# Four-eyes out of the box: the payments sample needs two approvers.
DEFAULT_CRITICAL_NAMESPACES = ["payments"]

BANNER = """
opsgate sandbox is running (Ctrl-C to stop).

  Chat page (fire samples, press buttons as Alice, Bob or Carol):  {emulator}/
  Alert webhook:  http://127.0.0.1:{port}/alerts/alertmanager  (bearer token below)
  Database:       {db}

Fire a sample alert from the page, or:
  curl -sS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer {token}' \\
       --data @{samples}/crashloop.json http://127.0.0.1:{port}/alerts/alertmanager
Resolve it:
  curl -sS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer {token}' \\
       --data @{samples}/crashloop-resolved.json http://127.0.0.1:{port}/alerts/alertmanager
"""


def sandbox_settings(api_base: str, token: str, http_port: int, data_dir: Path,
                     webhook_token: str = "") -> Settings:
    overrides: dict[str, Any] = {}
    if not any(k.upper() == "CRITICAL_NAMESPACES" for k in os.environ):
        overrides["critical_namespaces"] = DEFAULT_CRITICAL_NAMESPACES
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=SecretStr(token),
        telegram_api_base=api_base,
        telegram_chat_id=SANDBOX_CHAT_ID,
        approver_ids=[ALICE["id"], BOB["id"]],
        approvers_from_chat_admins=False,
        alert_webhook_token=SecretStr(webhook_token),
        http_host="127.0.0.1",
        http_port=http_port,
        database_path=str(data_dir / "opsgate.db"),
        redis_url="",
        executor="dry-run",
        **overrides,
    )


async def run_sandbox(http_port: int, emulator_port: int, data_dir: Path) -> int:
    from bot.app import App, serve_until_signal
    from bot.checks import fail, require
    from bot.resource_checks import bind_problem, database_check

    require([database_check(str(data_dir / "opsgate.db"), name="--data-dir",
                            fix_path="pass --data-dir DIR with a directory this user can write")])
    panel = SamplePanel()
    try:
        emu = await start_emulator(port=emulator_port, panel=panel)
    except OSError as exc:
        raise StartupError(fail("--emulator-port", bind_problem("127.0.0.1", emulator_port, exc),
                                "stop what listens there or pass --emulator-port N")) from exc
    emu.emulator.add_chat(
        SANDBOX_CHAT_ID,
        type="supergroup",
        title="On-call (sandbox)",
        admins=[ALICE, BOB],
    )
    emu.emulator.set_member(SANDBOX_CHAT_ID, CAROL)
    # A fresh token each run: the webhook is guarded as in production, and the page's
    # sample panel posts with it.
    webhook_token = secrets.token_urlsafe(18)
    settings = sandbox_settings(emu.base_url, emu.emulator.token, http_port, data_dir,
                                webhook_token)

    def banner(app: App) -> None:
        panel.attach(f"http://127.0.0.1:{app.port}/alerts/alertmanager", webhook_token,
                     settings.approver_ids)
        print(BANNER.format(emulator=emu.base_url, port=app.port, db=settings.database_path,
                            samples=SAMPLES, token=webhook_token), flush=True)

    try:
        return await serve_until_signal(settings, label="opsgate sandbox", on_started=banner)
    finally:
        await emu.close()
