"""What the Bot API says before opsgate starts: the token is accepted (getMe), and in
every routed chat the bot is a member, enough people approve, and topics work where
THREAD_MODE=topic wants them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.alerts.routing import RouteTable
from bot.checks import Check, fail, ok, warn
from bot.config import Settings

if TYPE_CHECKING:
    from aiogram import Bot


@dataclass
class TelegramFacts:
    """What the Telegram checks learnt, for the wiring that follows them."""

    username: str = ""
    bot_id: int = 0
    topic_chats: frozenset[int] = field(default_factory=frozenset)


async def telegram_checks(s: Settings, bot: Bot, routes: RouteTable
                          ) -> tuple[list[Check], TelegramFacts]:
    """getMe, then getChat and the bot's membership and rights in every routed chat."""
    from aiogram.enums import ChatMemberStatus
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError

    facts = TelegramFacts()
    try:
        me = await bot.get_me()
    except TelegramNetworkError as exc:
        return [fail("getMe", f"cannot reach the Bot API at {s.telegram_api_base}: {exc}",
                     "check the network, a proxy, or TELEGRAM_API_BASE")], facts
    except TelegramAPIError as exc:
        return [fail("getMe", f"Telegram refused TELEGRAM_BOT_TOKEN: {exc.message}",
                     "get the current token from @BotFather (/token)")], facts
    facts.username, facts.bot_id = me.username or "", me.id
    checks = [ok("getMe", f"@{me.username} (id {me.id})")]
    topics = set()
    member_states = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.CREATOR,
                     ChatMemberStatus.MEMBER)
    for chat_id in sorted(routes.chats()):
        name = f"chat {chat_id}"
        try:
            chat = await bot.get_chat(chat_id)
            member = await bot.get_chat_member(chat_id, me.id)
        except TelegramAPIError as exc:
            checks.append(fail(name, f"the bot cannot reach it: {exc.message}",
                               "check TELEGRAM_CHAT_ID / ROUTES_PATH; add the bot to the chat, "
                               "then send /whoami there to see its id"))
            continue
        if member.status not in member_states:
            checks.append(fail(name, f"the bot is not a member (status: {member.status})",
                               "add the bot to the chat"))
            continue
        title = chat.title or chat.full_name or ""
        checks.append(ok(name, f"{title!r}: bot is {member.status}"))
        approvers = routes.approvers_for(chat_id)
        if len(approvers) < s.critical_approvals and not s.approvers_from_chat_admins:
            checks.append(warn(
                f"{name} approvers",
                f"{len(approvers)} approver(s); critical-risk proposals need "
                f"{s.critical_approvals} different people and could never be approved there",
                "add approvers (APPROVER_IDS or the route's approvers) or lower "
                "CRITICAL_APPROVALS",
            ))
        if s.thread_mode != "topic":
            continue
        if not chat.is_forum:
            checks.append(fail(f"{name} topics", "THREAD_MODE=topic but the chat has no topics "
                               "(run falls back to reply threads there)",
                               "turn on Topics in the group's settings, or THREAD_MODE=reply",
                               run_continues=True))
        elif not getattr(member, "can_manage_topics", False):
            checks.append(fail(f"{name} topics", "THREAD_MODE=topic but the bot lacks the "
                               "Manage topics right, can_manage_topics (run falls back to reply "
                               "threads there)",
                               "make the bot an admin with 'Manage topics', or "
                               "THREAD_MODE=reply", run_continues=True))
        else:
            checks.append(ok(f"{name} topics", "forum; the bot may manage topics"))
            topics.add(chat_id)
    facts.topic_chats = frozenset(topics)
    return checks, facts
