"""Delivery's failure sorting: each Telegram error, as aiogram's real response check
raises it from the Bot API's answer, is sorted once and handled as DESIGN says."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter
from handler_session import RecordingSession

from bot.telegram.delivery import DeliveryWorker
from bot.telegram.failures import Failure, Permanent, sort_failure
from storage import outbox
from storage.db import Database

CHAT = -1001234567890
OK_MESSAGE = {
    "ok": True,
    "result": {"message_id": 77, "date": 1764000000, "chat": {"id": CHAT, "type": "supergroup"},
               "text": "hi"},
}


def error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession()


@pytest.fixture
async def bot(session: RecordingSession) -> AsyncGenerator[Bot, None]:
    bot = Bot("42:TEST", session=session)
    yield bot


async def raised_by(bot: Bot, session: RecordingSession, status: int, body: dict[str, Any]
                    ) -> BaseException:
    session.add(status, body)
    with pytest.raises(Exception) as info:
        await bot.send_message(chat_id=CHAT, text="hi")
    return info.value


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, error(429, "Too Many Requests: retry after 7", retry_after=7),
         Failure.RETRY_AFTER),
        (400, error(400, "Bad Request: message is not modified: specified new message content "
                         "and reply markup are exactly the same as a current content and reply "
                         "markup of the message"), Failure.NOT_MODIFIED),
        (400, error(400, "Bad Request: message to edit not found"), Failure.EDIT_TARGET_GONE),
        (400, error(400, "Bad Request: message can't be edited"), Failure.EDIT_TARGET_GONE),
        (400, error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                    migrate_to_chat_id=-1009876543210), Failure.MIGRATED),
        (403, error(403, "Forbidden: bot was kicked from the supergroup chat"),
         Failure.PERMANENT),
        (400, error(400, "Bad Request: chat not found"), Failure.PERMANENT),
        (400, error(400, "Bad Request: can't parse entities: Unsupported start tag \"x\""),
         Failure.PERMANENT),
        (400, error(400, "Bad Request: BUTTON_URL_INVALID"), Failure.BAD_URL),
        (500, error(500, "Internal Server Error"), Failure.TRANSIENT),
        (502, error(502, "Bad Gateway"), Failure.TRANSIENT),
    ],
)
async def test_bot_api_errors_are_sorted(bot: Bot, session: RecordingSession, status: int,
                                         body: dict[str, Any], expected: Failure) -> None:
    exc = await raised_by(bot, session, status, body)
    assert sort_failure(exc) is expected


async def test_retry_after_carries_the_wait(bot: Bot, session: RecordingSession) -> None:
    exc = await raised_by(bot, session, 429, error(429, "Too Many Requests: retry after 7",
                                                   retry_after=7))
    assert isinstance(exc, TelegramRetryAfter) and exc.retry_after == 7


@pytest.mark.parametrize("exc", [TimeoutError(), ConnectionResetError(), OSError("unreachable")])
def test_network_failures_are_transient(exc: BaseException) -> None:
    assert sort_failure(exc) is Failure.TRANSIENT


def test_bugs_are_not_delivery_failures() -> None:
    assert sort_failure(ValueError("a bug")) is None
    assert sort_failure(KeyError("text")) is None
    assert sort_failure(Permanent("unknown outbox kind")) is Failure.PERMANENT


# ---------------------------------------------------------------- what the worker does


@pytest.fixture
async def db(tmp_path: Path) -> AsyncGenerator[Database, None]:
    database = Database(tmp_path / "opsgate.db")
    await database.open()
    yield database
    await database.close()


async def no_card(incident_id: str, chat_id: int, *, url_buttons: bool = True) -> None:
    return None


async def queue_message(db: Database) -> int:
    async with db.write() as conn:
        row_id = await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=CHAT,
                                      now=datetime.now(UTC), payload={"text": "hi"})
    assert row_id is not None
    return row_id


async def row(db: Database, row_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        async with conn.execute("SELECT * FROM outbox WHERE id = ?", (row_id,)) as cur:
            found = await cur.fetchone()
    assert found is not None
    return dict(found)


async def test_worker_sends_then_marks_done(db: Database, bot: Bot,
                                           session: RecordingSession) -> None:
    row_id = await queue_message(db)
    session.add(200, OK_MESSAGE)
    worker = DeliveryWorker(db, bot, no_card)
    assert await worker.run_once()
    assert (await row(db, row_id))["state"] == "done"
    assert worker.metrics.sample("opsgate_delivery_total", result="messages") == 1


async def test_worker_waits_out_a_429_and_holds_the_chat(db: Database, bot: Bot,
                                                         session: RecordingSession) -> None:
    row_id = await queue_message(db)
    session.add(429, error(429, "Too Many Requests: retry after 30", retry_after=30))
    worker = DeliveryWorker(db, bot, no_card, max_attempts=1)
    before = datetime.now(UTC).timestamp()
    assert await worker.run_once()
    stored = await row(db, row_id)
    # Not counted as an attempt that gives up: max_attempts=1 would park it otherwise.
    assert stored["state"] == "pending"
    assert stored["next_attempt_at"] >= before + 30
    assert worker.metrics.sample("opsgate_delivery_total", result="retry_after") == 1
    later = await queue_message(db)
    assert not await worker.run_once()  # the chat is on hold: nothing is attempted
    assert (await row(db, later))["state"] == "pending"
    assert session.methods == ["sendMessage"]


async def test_worker_backs_off_on_network_errors(db: Database, bot: Bot,
                                                  session: RecordingSession) -> None:
    row_id = await queue_message(db)
    session.fail(TelegramNetworkError(method=None, message="connection reset"))  # type: ignore[arg-type]
    worker = DeliveryWorker(db, bot, no_card)
    before = datetime.now(UTC).timestamp()
    assert await worker.run_once()
    stored = await row(db, row_id)
    assert stored["state"] == "pending" and stored["attempts"] == 1
    assert stored["next_attempt_at"] > before
    assert "TelegramNetworkError" in stored["last_error"]
    assert worker.metrics.sample("opsgate_delivery_total", result="transient_errors") == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, error(403, "Forbidden: bot was kicked from the supergroup chat")),
        (400, error(400, "Bad Request: chat not found")),
    ],
)
async def test_worker_parks_permanent_refusals(db: Database, bot: Bot, session: RecordingSession,
                                               status: int, body: dict[str, Any]) -> None:
    row_id = await queue_message(db)
    session.add(status, body)
    worker = DeliveryWorker(db, bot, no_card)
    assert await worker.run_once()
    stored = await row(db, row_id)
    assert stored["state"] == "parked"
    assert body["description"] in stored["last_error"]
    assert worker.metrics.sample("opsgate_delivery_total", result="parked") == 1


async def test_worker_follows_a_chat_migration(db: Database, bot: Bot,
                                               session: RecordingSession) -> None:
    row_id = await queue_message(db)
    new_chat = -1009876543210
    session.add(400, error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           migrate_to_chat_id=new_chat))
    moved: list[tuple[int, int]] = []

    async def on_migrate(old: int, new: int) -> None:
        moved.append((old, new))

    worker = DeliveryWorker(db, bot, no_card, on_migrate=on_migrate)
    assert await worker.run_once()
    assert moved == [(CHAT, new_chat)]
    assert (await row(db, row_id))["state"] == "pending"
    assert worker.metrics.sample("opsgate_delivery_total", result="migrated") == 1


async def test_edit_that_changes_nothing_counts_as_done(db: Database, bot: Bot,
                                                        session: RecordingSession) -> None:
    async with db.write() as conn:
        row_id = await outbox.enqueue(conn, kind=outbox.EDIT, chat_id=CHAT,
                                      now=datetime.now(UTC),
                                      payload={"text": "hi", "message_id": 77})
    assert row_id is not None
    session.add(400, error(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same"))
    worker = DeliveryWorker(db, bot, no_card)
    assert await worker.run_once()
    assert (await row(db, row_id))["state"] == "done"
