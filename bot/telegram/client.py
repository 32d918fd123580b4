"""The one Bot API client: the bot, its HTTP session and the server it talks to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods import Response
from aiogram.methods.base import TelegramType

from bot.config import Settings
from bot.telegram.observed import ObservedSession

if TYPE_CHECKING:
    from aiogram.methods import TelegramMethod


class KeptAnswerTypes(BaseRequestMiddleware):
    """Holds the class each method's answer is read into. aiogram reads an answer as
    Response[T], a class pydantic builds (about 5 ms of CPU) and caches only weakly, so
    after any garbage collection the next call built it again: with a collection between
    most calls in a busy process, that was most of what a send cost."""

    def __init__(self) -> None:
        self._held: dict[type[Any], type[Any]] = {}

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._held:
            self._held[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def build_bot(settings: Settings, observe: ObservedSession | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    session.middleware(KeptAnswerTypes())
    if observe is not None:
        session.middleware(observe)
    return Bot(
        token=settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
