"""An aiogram session with no network: it records every request, first in first out,
and answers each with a queued Bot API answer (or the method's usual success), passed
through aiogram's own check_response — so a queued error raises the real exception
(TelegramRetryAfter, TelegramBadRequest, ...) exactly as over HTTP."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod


@dataclass(frozen=True)
class Request:
    method: str  # the Bot API name, e.g. "answerCallbackQuery"
    params: dict[str, Any]


# What Telegram answers when nothing else was queued (the methods handlers call).
USUAL_RESULTS: dict[str, Any] = {"answerCallbackQuery": True}


class RecordingSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.answers: deque[tuple[int, dict[str, Any]] | BaseException] = deque()
        self.requests: list[Request] = []

    def add(self, status: int, body: dict[str, Any]) -> None:
        """Queue the next answer (status and JSON body, as the Bot API sends them)."""
        self.answers.append((status, body))

    def fail(self, exc: BaseException) -> None:
        """Queue an exception, as the network layer raises it."""
        self.answers.append(exc)

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def take(self) -> list[Request]:
        """The requests so far, oldest first, and forget them."""
        taken, self.requests = self.requests, []
        return taken

    async def make_request(self, bot: Bot, method: TelegramMethod[Any],
                           timeout: int | None = None) -> Any:
        name = method.__api_method__
        self.requests.append(Request(name, method.model_dump(exclude_none=True)))
        if self.answers:
            answer = self.answers.popleft()
        elif name in USUAL_RESULTS:
            answer = (200, {"ok": True, "result": USUAL_RESULTS[name]})
        else:
            raise AssertionError(f"no answer queued for {name}")
        if isinstance(answer, BaseException):
            raise answer
        status, body = answer
        return self.check_response(bot, method, status, json.dumps(body)).result

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError
        yield b""  # pragma: no cover

    async def close(self) -> None:
        pass
