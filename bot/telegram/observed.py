"""Watching every Bot API call at one seam, the client session: counts by method and result,
whether Telegram answers at all (for /readyz), and how long a press waited for its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramType

from bot.leadership import NotLeader
from bot.metrics import Metrics

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod


@dataclass
class _Press:
    started: float  # time.monotonic() when the update reached the dispatcher
    answered: bool = False


# Set around the handling of one callback query; the session sees its answer in that context.
_PRESS: ContextVar[_Press | None] = ContextVar("opsgate_press", default=None)


async def time_press(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]], event: Any,
                     data: dict[str, Any]) -> Any:
    """Dispatcher outer middleware for callback queries: starts the press→answer clock."""
    token = _PRESS.set(_Press(time.monotonic()))
    try:
        return await handler(event, data)
    finally:
        _PRESS.reset(token)


class TelegramReach:
    """When the Bot API server last answered (any answer, even a refusal, means reached)
    and when a call last got no answer or a 5xx."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last_answer: float | None = None
        self.last_failure: float | None = None
        self.last_error = ""

    def answered(self) -> None:
        self.last_answer = time.monotonic()

    def failed(self, exc: Exception) -> None:
        self.last_failure = time.monotonic()
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]

    def unreachable_for(self) -> float | None:
        """Seconds since Telegram last answered, if the latest call after that failed;
        None while calls succeed (or none failed: an idle webhook bot is not unreachable)."""
        if self.last_failure is None:
            return None
        if self.last_answer is not None and self.last_answer >= self.last_failure:
            return None
        return time.monotonic() - (self.last_answer or self.started)


class ObservedSession(BaseRequestMiddleware):
    def __init__(self, metrics: Metrics, reach: TelegramReach) -> None:
        self.metrics = metrics
        self.reach = reach

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        name = method.__api_method__
        result = "ok"
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter:
            result = "rate_limited"
            self.metrics.telegram_rate_limited.inc()
            raise
        except (TelegramServerError, TelegramNetworkError) as exc:
            result = "server_error" if isinstance(exc, TelegramServerError) else "network_error"
            self.reach.failed(exc)
            raise
        except TelegramAPIError:
            result = "refused"
            raise
        except NotLeader:
            result = ""  # never sent: this process does not lead
            raise
        except asyncio.CancelledError:
            result = ""  # stopped (a long poll at shutdown): neither an answer nor a failure
            raise
        except Exception as exc:
            # An answer that is not the Bot API's (a proxy's HTML page, a broken body).
            result = "network_error"
            self.reach.failed(exc)
            raise
        finally:
            if result:
                self._count(name, result)

    def _count(self, name: str, result: str) -> None:
        self.metrics.telegram_calls.labels(name, result).inc()
        if result not in ("server_error", "network_error"):
            self.reach.answered()
            self.metrics.telegram_last_reached.set(time.time())
        if name == "answerCallbackQuery":
            self._answered_press()

    def _answered_press(self) -> None:
        press = _PRESS.get()
        if press is not None and not press.answered:
            press.answered = True
            self.metrics.press_to_answer.observe(time.monotonic() - press.started)
