"""End-to-end harness: the real app against the emulator, SQLite in tmp_path."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from pg import query

from bot.app import App
from bot.config import Settings
from bot.incidents.approvals import ApprovalService
from bot.models import Decision
from bot.pipeline import Pipeline
from bot.telegram.delivery import DeliveryWorker
from sandbox.emulator import Emulator, wait_for
from sandbox.server import RunningEmulator
from storage import repo
from storage.db import Database
from storage.state import StateStore

CHAT = -1001000000001
ALICE = {"id": 111, "first_name": "Alice", "username": "alice"}
BOB = {"id": 222, "first_name": "Bob", "username": "bob"}
MALLORY = {"id": 666, "first_name": "Mallory", "username": "mallory"}
CAROL = {"id": 333, "first_name": "Carol", "username": "carol"}  # a member, not an approver
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# OPSGATE_TEST_REDIS_DB lets several checkouts run their suites side by side; the workers
# of one parallel run (pytest-xdist: gw0, gw1, ...) each take the next number.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_TEST_URL = (
    f"redis://127.0.0.1:6379/{int(os.environ.get('OPSGATE_TEST_REDIS_DB', '13')) + _WORKER}")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def numbered_alert(n: int, fingerprint: str, label: str) -> bytes:
    """The crash-loop alert as the n-th of a storm: its own fingerprint, deployment and group
    (`label` names the storm, e.g. chaos)."""
    body = copy.deepcopy(fixture("crashloop-firing.json"))
    alert = body["alerts"][0]
    alert["labels"]["deployment"] = alert["labels"]["service"] = f"{label}-{n}"
    alert["fingerprint"] = fingerprint
    body["groupKey"] = f'{{}}:{{{label}="{n}"}}'
    body["commonLabels"]["deployment"] = f"{label}-{n}"
    return json.dumps(body).encode()


def routes_into_two_chats(namespace: str, chat_a: int, chat_b: int) -> str:
    """ROUTES_PATH text posting every incident of `namespace` into chat A (Alice approves)
    and into chat B (Bob approves): one incident, a card in each chat."""
    return f"""
[[route]]
name = "{namespace}"
match = {{ namespace = "{namespace}" }}
chat_id = {chat_a}
approvers = [{ALICE["id"]}]
continue = true

[[route]]
name = "{namespace}-watch"
match = {{ namespace = "{namespace}" }}
chat_id = {chat_b}
approvers = [{BOB["id"]}]
"""


def settings_for(emu: RunningEmulator, db_path: Path | str, **overrides: Any) -> Settings:
    """Settings for an app against the emulator; `db_path` a SQLite file or a PostgreSQL
    URL (pg.Databases gives either)."""
    values: dict[str, Any] = dict(
        telegram_bot_token=emu.emulator.token,
        telegram_api_base=emu.base_url,
        approver_ids=[ALICE["id"], BOB["id"]],
        http_host="127.0.0.1",
        http_port=0,
        **({"database_url": str(db_path)} if str(db_path).startswith("postgresql://")
           else {"database_path": str(db_path)}),
        redis_url="",
        # Pacing has its own tests; elsewhere it would only slow busy tests down.
        telegram_pacing=False,
    )
    values.update(overrides)
    values.setdefault("telegram_chat_id", CHAT)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def redis_available() -> bool:
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        await client.ping()
        return True
    except (OSError, aioredis.ConnectionError):
        return False
    finally:
        await client.aclose()


def is_card(message: dict[str, Any]) -> bool:
    """A card always has a Details button; a reminder has card buttons (Ack) but no Details."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return message["from"]["is_bot"] and any(
        str(b.get("callback_data", "")).startswith("c1:d:") for row in rows for b in row
    )


class Harness:
    """One running app plus helpers to drive it and read what it did."""

    def __init__(self, app: App, emu: RunningEmulator, chat: int = CHAT) -> None:
        self.app = app
        self.emu = emu
        self.chat = chat

    @property
    def em(self) -> Emulator:
        return self.emu.emulator

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    @property
    def db_target(self) -> str:
        """The app's database: a SQLite path or a PostgreSQL URL (for pg.query/pg.change)."""
        return self.app.settings.database

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A query on the app's database from outside it, as an operator would."""
        return query(self.db_target, sql, args)

    # The parts of the running app that tests look into.
    @property
    def db(self) -> Database:
        assert self.app.db is not None
        return self.app.db

    @property
    def state(self) -> StateStore:
        assert self.app.state is not None
        return self.app.state

    @property
    def approvals(self) -> ApprovalService:
        assert self.app.approvals is not None
        return self.app.approvals

    @property
    def pipeline(self) -> Pipeline:
        assert self.app.pipeline is not None
        return self.app.pipeline

    @property
    def delivery(self) -> DeliveryWorker:
        assert self.app.delivery is not None
        return self.app.delivery

    async def post(self, path: str, body: bytes | dict[str, Any], *,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + path, data=data, headers=hdrs) as resp:
                text = await resp.text()
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError:
                    parsed = {"raw": text}
                return resp.status, parsed

    async def alert(self, name: str, **kw: Any) -> dict[str, Any]:
        status, body = await self.post("/alerts/alertmanager", fixture_bytes(name), **kw)
        assert status == 200, body
        return body

    async def settled(self, timeout: float = 15.0, interval: float = 0.05) -> None:
        """Ingest finished, every received update handled, nothing analyzing or executing,
        outbox drained (looked at every `interval` seconds, and at every change in the
        emulator)."""

        def quiet() -> bool:
            # A connection of its own each time: the app's shared reader can hold a snapshot
            # older than the last commit (a read still open on it), which could show the
            # state from before a press and pass for quiet.
            ((busy,),) = self.rows(
                """SELECT (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending'))
                        + (SELECT COUNT(*) FROM inbox WHERE state = 'pending')
                        + (SELECT COUNT(*) FROM decisions
                           WHERE state IN ('analyzing', 'approved', 'executing'))""")
            return busy == 0

        await wait_for(quiet, timeout, interval=interval, message="app did not settle")

    def cards(self, chat: int | None = None) -> list[dict[str, Any]]:
        """The bot's messages with card buttons (callback data "c1:..."): the cards."""
        return [m for m in self.em.messages(chat or self.chat) if is_card(m)]

    def bot_messages(self, chat: int | None = None) -> list[dict[str, Any]]:
        return [m for m in self.em.messages(chat or self.chat) if m["from"]["is_bot"]]

    def replies_to(self, message_id: int, chat: int | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.em.messages(chat or self.chat)
            if (m.get("reply_to_message") or {}).get("message_id") == message_id
        ]

    def button(self, message: dict[str, Any], label_word: str) -> str:
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for b in row:
                if label_word in b["text"] and "callback_data" in b:
                    return b["callback_data"]
        raise KeyError(f"no {label_word!r} button on message {message['message_id']}")

    def press_nowait(self, message_id: int, label_word: str, user: dict[str, Any],
                     age: float = 0.0) -> str:
        msg = self.em.message(self.chat, message_id)
        return self.em.press_button(self.chat, message_id, self.button(msg, label_word), user,
                                    age=age)

    async def press(self, message_id: int, label_word: str, user: dict[str, Any]) -> str:
        """Press and wait until the bot answered the query."""
        qid = self.press_nowait(message_id, label_word, user)
        await wait_for(lambda: self.em.callback_answer(qid), 15, message="press not answered")
        return qid

    async def wait_card(self, predicate: Callable[[dict[str, Any]], bool] = lambda m: True,
                        timeout: float = 15.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for m in self.cards():
                if predicate(m):
                    return m
            return None

        return await wait_for(find, timeout, message="card not found")

    async def audit(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            return await repo.audit_rows(conn, incident_id)

    async def wait_audit(self, *wanted: tuple[str, str], timeout: float = 15.0
                         ) -> list[dict[str, Any]]:
        """Wait, bounded, until the audit has a row for every (action, result) wanted, and
        return the rows. An answered press says nothing about the rows of other writers in
        flight, so reading the audit once right after the answer can race them."""

        async def found() -> list[dict[str, Any]] | None:
            rows = await self.audit()
            have = {(r["action"], r["result"]) for r in rows}
            return rows if set(wanted) <= have else None

        return await wait_for(found, timeout, message=f"no audit rows {wanted}")

    async def decision(self, incident_id: str) -> Decision:
        """The incident's current decision, as stored (it must have one)."""
        async with self.db.read() as conn:
            decision = await repo.current_decision(conn, incident_id)
        assert decision is not None, f"{incident_id} has no decision"
        return decision


async def say(h: Harness, user: dict[str, Any], text: str,
              chat: int | None = None) -> dict[str, Any]:
    """A person sends a command; returns the bot's reply to it."""
    where = chat or h.chat
    sent = h.em.user_sends(where, user, text)
    return await wait_for(
        lambda: next((m for m in h.em.messages(where)
                      if (m.get("reply_to_message") or {}).get("message_id")
                      == sent["message_id"]), None),
        15, message=f"no answer to {text!r}",
    )


class AppFactory(Protocol):
    """The start_app fixture: start one more real app (same emulator, same tmp_path)."""

    async def __call__(self, db_name: str = "opsgate.db", poll: bool = True, chat: int = CHAT,
                       clock: Callable[[], datetime] = ..., **overrides: Any) -> Harness: ...


def now() -> datetime:
    return datetime.now(UTC)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
