"""The aiogram routers of one Dispatcher."""

from __future__ import annotations

from aiogram import Router

from handlers import card_buttons, commands, fallbacks, pages, setup


def make_routers() -> list[Router]:
    """Fresh routers for one Dispatcher (several apps may share one process in tests).
    Their filters are disjoint (set-up commands anywhere; commands, card buttons, page
    buttons and unknown buttons of served chats; presses in unserved chats), so the order
    they are included in does not change which handler an update reaches."""
    return [setup.make_router(), commands.make_router(), card_buttons.make_router(),
            pages.make_router(), fallbacks.make_router()]
