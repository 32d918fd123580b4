"""POST /telegram/webhook: Telegram's push of one update, stored before it is answered.

Telegram sends an update again until it gets a 2xx, so the 200 comes only after the update
is committed to the inbox; a 503 (database unavailable) makes Telegram retry it later. The
secret header (TELEGRAM_WEBHOOK_SECRET) tells Telegram from forgeries.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime

from aiogram import Bot
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.telegram.inbox import Inbox
from storage import inbox
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
INBOX = web.AppKey("inbox", Inbox)
BOT = web.AppKey("bot", Bot)
SECRET = web.AppKey("telegram_secret", str)
CLOCK = web.AppKey[Callable[[], datetime]]("telegram_clock")
READ_TIMEOUT = web.AppKey("telegram_read_timeout", float)


def _refuse(status: int, message: str) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    response.force_close()
    return response


async def telegram_update(request: web.Request) -> web.Response:
    app = request.app
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), app[SECRET].encode()):
        return web.json_response({"error": "wrong secret token"}, status=401)
    if request.content_length is not None and request.content_length > inbox.MAX_BODY_BYTES:
        return _refuse(413, f"update larger than {inbox.MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(app[READ_TIMEOUT]):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > inbox.MAX_BODY_BYTES:
                    return _refuse(413, f"update larger than {inbox.MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except TimeoutError:
        return _refuse(408, "update not received in time")
    except ConnectionError as exc:
        log.debug("Telegram webhook connection dropped mid-body: %s", exc)
        return _refuse(400, "connection lost")
    raw = b"".join(chunks)
    try:
        body = json.loads(raw)
        # Refused here rather than stored: a body that is no update would fail every time.
        Update.model_validate(body, context={"bot": app[BOT]})
    except (ValueError, RecursionError, ValidationError):
        return _refuse(400, "not a Telegram update")
    update_id = inbox.valid_update_id(body.get("update_id")) if isinstance(body, dict) else None
    if update_id is None:
        return _refuse(400, "not a Telegram update")
    try:
        await app[INBOX].receive([inbox.Received(update_id, body, app[CLOCK]())])
    except StorageUnavailable as exc:
        log.error("cannot store a Telegram update (answering 503; Telegram retries): %s", exc)
        return web.json_response({"error": "storage unavailable"}, status=503)
    return web.json_response({})


def setup_routes(app: web.Application, *, path: str, box: Inbox, bot: Bot, secret: str,
                 clock: Callable[[], datetime], read_timeout: float) -> None:
    app[INBOX] = box
    app[BOT] = bot
    app[SECRET] = secret
    app[CLOCK] = clock
    app[READ_TIMEOUT] = read_timeout
    app.router.add_post(path, telegram_update)
