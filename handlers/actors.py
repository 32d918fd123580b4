"""Who sent an update, as bot/ sees people: an Actor with a display name."""

from __future__ import annotations

from aiogram.types import User

from bot.models import Actor


def display_name(user: User) -> str:
    if user.username:
        return f"@{user.username}"
    return user.full_name or str(user.id)


def actor_of(user: User, chat_id: int | None) -> Actor:
    return Actor(user_id=user.id, name=display_name(user), chat_id=chat_id)
