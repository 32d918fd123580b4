"""Fixtures: a live emulator on a free loopback port and a real aiogram Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sandbox_test_data import FORUM, GROUP, TOKEN

from sandbox.emulator import Emulator
from sandbox.server import RunningEmulator, start_emulator


@pytest.fixture
async def running() -> AsyncIterator[RunningEmulator]:
    server = await start_emulator(token=TOKEN, callback_answer_window=15.0)
    server.emulator.add_chat(GROUP, title="On-call")
    server.emulator.add_chat(FORUM, title="Incidents", is_forum=True)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def emu(running: RunningEmulator) -> Emulator:
    return running.emulator


@pytest.fixture
async def bot(running: RunningEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(running.base_url))
    bot = Bot(TOKEN, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()
