"""The one Bot API client: the bot, its HTTP session and the server it talks to."""

from __future__ import annotations

from collections.abc import Callable
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
from aiogram.methods import AnswerCallbackQuery, Response
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

    def __init__(self, ahead: tuple[type[TelegramMethod[Any]], ...] = ()) -> None:
        # `ahead`: built now, not on the first call (a press's answer would wait for it).
        self._held: dict[type[Any], type[Any]] = {
            kind: Response[kind.__returning__]  # type: ignore[name-defined]
            for kind in ahead}

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._held:
            self._held[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


# Called with the method's name right before a call goes out; raises to refuse it.
Gate = Callable[[str], None]


class GatedSession(AiohttpSession):
    """The HTTP session, with one check just before every request goes on the wire (after
    every middleware, so a wait for pacing cannot carry a call past it): the leader's lease
    (bot.leadership), so a process that no longer leads sends nothing, polls nothing and
    answers no press."""

    def __init__(self, gate: Gate | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:  # noqa: ASYNC109
        if self.gate is not None:
            self.gate(method.__api_method__)
        return await super().make_request(bot, method, timeout)


def build_bot(settings: Settings, observe: ObservedSession | None = None,
              gate: Gate | None = None) -> Bot:
    session = GatedSession(gate, api=TelegramAPIServer.from_base(settings.telegram_api_base))
    session.middleware(KeptAnswerTypes(ahead=(AnswerCallbackQuery,)))
    if observe is not None:
        session.middleware(observe)
    return Bot(
        token=settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
