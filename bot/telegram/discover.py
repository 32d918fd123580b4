"""`python -m bot discover`: print the chat and user ids of messages the bot receives.

For set-up, before TELEGRAM_CHAT_ID is known (the bot itself refuses to start
without a chat it can reach). It reads updates by polling, so it must not run
next to a polling bot with the same token.
"""

from __future__ import annotations

import sys
from typing import TextIO

from aiogram.exceptions import TelegramAPIError

from bot.config import Settings
from bot.telegram.client import build_bot


async def discover(settings: Settings, *, out: TextIO = sys.stdout, limit: int | None = None,
                   poll_timeout: int = 30) -> int:
    bot = build_bot(settings)
    try:
        try:
            me = await bot.get_me()
        except TelegramAPIError as exc:
            print(f"opsgate: Telegram refused TELEGRAM_BOT_TOKEN: {exc.message}", file=sys.stderr)
            return 1
        print(f"Listening as @{me.username}. Add the bot to your group and send "
              f"/whoami@{me.username} there (Ctrl-C to stop).", file=out, flush=True)
        offset: int | None = None
        seen = 0
        while limit is None or seen < limit:
            updates = await bot.get_updates(offset=offset, timeout=poll_timeout,
                                            allowed_updates=["message"])
            for update in updates:
                offset = update.update_id + 1
                message = update.message
                if message is None:
                    continue
                user = message.from_user
                who = f"{user.full_name} (user id {user.id})" if user else "someone"
                title = message.chat.title or message.chat.full_name or ""
                print(f"chat id {message.chat.id} ({message.chat.type}: {title}) — {who}",
                      file=out, flush=True)
                seen += 1
        return 0
    finally:
        await bot.session.close()
