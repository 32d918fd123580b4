"""The app's role: it leads on its own database, and while another process holds the lease
it stores alerts and Telegram updates but polls, sends, analyses and executes nothing,
until the lease lapses and it takes over."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import aiohttp
from harness import ALICE, CHAT, AppFactory, Harness
from pg import Databases, change

from bot.leadership import Role
from sandbox.emulator import wait_for
from storage import inbox, repo
from storage.backends import database_for

OTHER = "elsewhere:1:0000"


async def get(h: Harness, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(h.url + path) as resp:
            return resp.status, await resp.text()


def role_series(metrics_text: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in
            re.findall(r'^opsgate_role\{role="(\w+)"\} (\S+)$', metrics_text, re.M)}


async def held_elsewhere(target: str, token: int = 7) -> None:
    """The database as another replica left it: migrated, its lease running for an hour."""
    db = database_for(target)
    await db.open()
    await db.close()
    change(target, "INSERT INTO leader_lease (name, holder, token, expires_at) VALUES (?,?,?,?)",
           ("leader", OTHER, token, time.time() + 3600))


def lapse(target: str) -> None:
    change(target, "UPDATE leader_lease SET expires_at = 0")


async def test_one_process_leads_and_says_so(app: Harness) -> None:
    status, body = await get(app, "/readyz")
    assert status == 200 and '"role": "leader"' in body and "standby" not in body
    _, text = await get(app, "/metrics")
    assert role_series(text) == {"leader": 1.0, "standby": 0.0}
    assert app.app.leadership is not None and app.app.leadership.token == 1


async def test_a_standby_stores_but_sends_nothing_until_it_takes_over(
        start_app: AppFactory, databases: Databases) -> None:
    await held_elsewhere(await databases.target())
    h = await start_app(leader_lease="3s")
    leadership = h.app.leadership
    assert leadership is not None and leadership.role is Role.STANDBY
    status, body = await get(h, "/readyz")
    assert status == 200 and '"role": "standby"' in body and '"standby": "this process' in body
    _, text = await get(h, "/metrics")
    assert role_series(text) == {"leader": 0.0, "standby": 1.0}

    body_ = await h.alert("crashloop-firing.json")
    incident = body_["opened"][0]
    sent = h.em.user_sends(CHAT, ALICE, "/whoami")  # Telegram keeps it: nobody polls
    # Two more looks at the lease later, still nothing went to Telegram.
    looks = leadership.looks
    await wait_for(lambda: leadership.looks >= looks + 2, 10, message="no look at the lease")
    called = {c["method"] for c in h.em.calls()}
    assert called <= {"getMe", "getChat", "getChatMember", "getChatAdministrators"}, called
    assert h.bot_messages() == []
    async with h.db.read() as conn:
        decision = await repo.current_decision(conn, incident)
        assert decision is not None and decision.state.value == "analyzing"
        assert await repo.get_meta(conn, "heartbeat") is None  # no timers ran

    lapse(await databases.target())
    await wait_for(lambda: leadership.role is Role.LEADER, 10, message="did not take over")
    assert leadership.token == 8
    await h.wait_card(lambda m: incident in m["text"])
    await wait_for(lambda: any((m.get("reply_to_message") or {}).get("message_id")
                               == sent["message_id"] for m in h.bot_messages()), 10,
                   message="/whoami not answered")
    status, body = await get(h, "/readyz")
    assert '"role": "leader"' in body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_standby_in_webhook_mode_stores_updates_for_the_leader(
        start_app: AppFactory, databases: Databases) -> None:
    await held_elsewhere(await databases.target())
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    h = await start_app(http_port=port, telegram_webhook_url=url,
                        telegram_webhook_secret="s3cret-token", leader_lease="3s")
    assert h.em.webhook() is None  # only the leader sets it
    update: dict[str, Any] = {
        "update_id": 900001,
        "message": {"message_id": 5, "date": int(time.time()), "text": "/whoami",
                    "chat": {"id": CHAT, "type": "supergroup", "title": "ops"},
                    "from": {**ALICE, "is_bot": False},
                    "entities": [{"type": "bot_command", "offset": 0, "length": 7}]},
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update,
                             headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
                             ) as resp:
            assert resp.status == 200
    async with h.db.read() as conn:
        assert await inbox.pending_count(conn) == 1
    lapse(await databases.target())
    assert h.app.leadership is not None
    await wait_for(lambda: h.app.leadership is not None
                   and h.app.leadership.role is Role.LEADER, 10, message="did not take over")

    async def handled() -> bool:
        async with h.db.read() as conn:
            return await inbox.pending_count(conn) == 0

    await wait_for(handled, 10, message="the leader did not handle the stored update")
    hook = h.em.webhook()
    assert hook is not None and hook["url"] == url
