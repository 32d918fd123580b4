"""The emulator driven through a real aiogram Bot, as the opsgate bot will use it.

Expectations come from the Bot API documentation and the official server's
error texts (shared/reference), not from the bot's code.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChatAdministrators,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
)
from sandbox_test_data import ALICE, BOB, FORUM, GROUP

from sandbox.emulator import Emulator, FloodLimits, wait_for
from sandbox.server import RunningEmulator

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def keyboard(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(buttons)])


def approve_keyboard() -> InlineKeyboardMarkup:
    return keyboard(
        InlineKeyboardButton(text="✅ Approve", callback_data="a:INC-1"),
        InlineKeyboardButton(text="❌ Reject", callback_data="r:INC-1"),
    )


# ------------------------------------------------------------------ basics


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot
    assert me.username == "opsgate_sandbox_bot"
    assert me.can_read_all_group_messages is False
    assert me.supports_inline_queries is False
    assert me.can_join_groups is True


async def test_unknown_method_is_404(bot: Bot) -> None:
    class Nope(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "definitelyNotAMethod"

    with pytest.raises(TelegramNotFound, match="Not Found: method not found"):
        await bot(Nope())


async def test_unknown_chat(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(-100999, "hi")
    assert info.value.message == "Bad Request: chat not found"


# ------------------------------------------------------------- send / edit


async def test_send_html_message_is_stored(bot: Bot, emu: Emulator) -> None:
    sent = await bot.send_message(
        GROUP,
        "🔴 <b>CRITICAL</b> &lt;cart&gt;",
        parse_mode="HTML",
        reply_markup=approve_keyboard(),
    )
    assert sent.message_id == 1
    assert sent.text == "🔴 CRITICAL <cart>"
    assert sent.entities and sent.entities[0].type == "bold"
    assert (sent.entities[0].offset, sent.entities[0].length) == (3, 8)
    assert sent.from_user and sent.from_user.id == 123456
    stored = emu.message(GROUP, 1)
    assert stored["html"] == "🔴 <b>CRITICAL</b> &lt;cart&gt;"
    assert stored["edit_count"] == 0
    assert stored["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a:INC-1"
    second = await bot.send_message(GROUP, "next")
    assert second.message_id == 2


async def test_bad_html_is_refused_with_telegram_text(bot: Bot, emu: Emulator) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(GROUP, "load < 5 <b>", parse_mode="HTML")
    assert info.value.message.startswith("Bad Request: can't parse entities: ")
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(GROUP, "<blink>x</blink>", parse_mode="HTML")
    assert info.value.message == (
        'Bad Request: can\'t parse entities: Unsupported start tag "blink" at byte offset 0'
    )
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(GROUP, "x" * 4097)
    assert emu.messages(GROUP) == []


async def test_edit_text_and_not_modified(bot: Bot, emu: Emulator) -> None:
    sent = await bot.send_message(
        GROUP, "<b>pending</b>", parse_mode="HTML", reply_markup=approve_keyboard()
    )
    edited = await bot.edit_message_text(
        "<b>approved</b> by alice",
        chat_id=GROUP,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=approve_keyboard(),
    )
    assert not isinstance(edited, bool)
    assert edited.text == "approved by alice"
    assert edited.edit_date is not None
    assert emu.message(GROUP, sent.message_id)["edit_count"] == 1
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_text(
            "<b>approved</b> by alice",
            chat_id=GROUP,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=approve_keyboard(),
        )
    assert info.value.message == NOT_MODIFIED
    # the same plain text with different entities is a change
    await bot.edit_message_text(
        "approved by alice",
        chat_id=GROUP,
        message_id=sent.message_id,
        reply_markup=approve_keyboard(),
    )
    assert emu.message(GROUP, sent.message_id)["edit_count"] == 2


async def test_edit_without_markup_removes_keyboard(bot: Bot, emu: Emulator) -> None:
    sent = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    await bot.edit_message_text("card v2", chat_id=GROUP, message_id=sent.message_id)
    assert "reply_markup" not in emu.message(GROUP, sent.message_id)


async def test_edit_reply_markup(bot: Bot, emu: Emulator) -> None:
    sent = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    info_only = keyboard(InlineKeyboardButton(text="📜 History", callback_data="h:INC-1"))
    await bot.edit_message_reply_markup(
        chat_id=GROUP, message_id=sent.message_id, reply_markup=info_only
    )
    stored = emu.message(GROUP, sent.message_id)
    assert stored["reply_markup"]["inline_keyboard"] == [
        [{"text": "📜 History", "callback_data": "h:INC-1"}]
    ]
    assert stored["text"] == "card"
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_reply_markup(
            chat_id=GROUP, message_id=sent.message_id, reply_markup=info_only
        )
    assert info.value.message == NOT_MODIFIED


async def test_edit_unknown_message(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_text("x", chat_id=GROUP, message_id=42)
    assert info.value.message == "Bad Request: message to edit not found"
    with pytest.raises(TelegramBadRequest) as info:
        await bot.edit_message_reply_markup(chat_id=GROUP, message_id=42)
    assert info.value.message == "Bad Request: message to edit not found"


async def test_delete_message(bot: Bot, emu: Emulator) -> None:
    sent = await bot.send_message(GROUP, "temp")
    assert await bot.delete_message(GROUP, sent.message_id) is True
    assert emu.messages(GROUP) == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(GROUP, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=GROUP, message_id=sent.message_id)


async def test_delete_needs_rights_for_other_peoples_messages(bot: Bot, emu: Emulator) -> None:
    emu.add_chat(-1007, bot_status="member")
    mine = await bot.send_message(-1007, "mine")
    theirs = emu.user_sends(-1007, BOB, "theirs")
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(-1007, theirs["message_id"])
    assert await bot.delete_message(-1007, mine.message_id)
    assert [m["text"] for m in emu.messages(-1007)] == ["theirs"]


async def test_unsupported_parse_mode(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="unsupported parse_mode"):
        await bot.send_message(GROUP, "x", parse_mode="BBCode")
    sent = await bot.send_message(GROUP, "*x*", parse_mode="MarkdownV2")
    assert sent.text == "*x*"  # Markdown is not parsed by the sandbox


# ------------------------------------------------------------------ replies


async def test_reply_parameters(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card")
    reply = await bot.send_message(
        GROUP, "approved", reply_parameters=ReplyParameters(message_id=card.message_id)
    )
    assert reply.reply_to_message and reply.reply_to_message.message_id == card.message_id
    assert emu.message(GROUP, reply.message_id)["reply_to_message"]["text"] == "card"


async def test_reply_to_missing_message(bot: Bot, emu: Emulator) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(GROUP, "x", reply_parameters=ReplyParameters(message_id=77))
    assert info.value.message == "Bad Request: message to be replied not found"
    sent = await bot.send_message(
        GROUP,
        "x",
        reply_parameters=ReplyParameters(message_id=77, allow_sending_without_reply=True),
    )
    assert sent.reply_to_message is None
    assert [m["text"] for m in emu.messages(GROUP)] == ["x"]


async def test_legacy_reply_to_message_id(running: RunningEmulator, emu: Emulator) -> None:
    # the server still reads the pre-7.0 top-level parameters
    url = f"{running.base_url}/bot{emu.token}/sendMessage"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, data={"chat_id": str(GROUP), "text": "x", "reply_to_message_id": "5"}
        ) as resp:
            body = await resp.json()
            assert resp.status == 400
            assert body == {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message to be replied not found",
            }
        async with http.post(
            url,
            data={
                "chat_id": str(GROUP),
                "text": "x",
                "reply_to_message_id": "5",
                "allow_sending_without_reply": "true",
            },
        ) as resp:
            assert resp.status == 200


# ------------------------------------------------------------------ buttons


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus-0:9090/graph",
        "http://localhost/",
        "ftp://files.example.com/x",
        "http://10.0.0.1/x",
        "javascript:alert(1)",
    ],
)
async def test_bad_url_button(bot: Bot, emu: Emulator, url: str) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(
            GROUP, "card", reply_markup=keyboard(InlineKeyboardButton(text="Source", url=url))
        )
    assert info.value.message == "Bad Request: BUTTON_URL_INVALID"
    assert emu.messages(GROUP) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://grafana.example.com/d/abc?x=1",
        "http://prometheus.example.org:9090/g",
        "tg://user?id=111",
    ],
)
async def test_good_url_button(bot: Bot, url: str) -> None:
    sent = await bot.send_message(
        GROUP, "card", reply_markup=keyboard(InlineKeyboardButton(text="Source", url=url))
    )
    assert sent.reply_markup and sent.reply_markup.inline_keyboard[0][0].url == url


async def test_callback_data_limit_is_64_bytes(bot: Bot) -> None:
    ok = "x" * 64
    await bot.send_message(
        GROUP, "ok", reply_markup=keyboard(InlineKeyboardButton(text="a", callback_data=ok))
    )
    for data in ("x" * 65, "é" * 33):  # 33 × 2 bytes = 66 bytes, only 33 characters
        with pytest.raises(TelegramBadRequest) as info:
            await bot.send_message(
                GROUP,
                "no",
                reply_markup=keyboard(InlineKeyboardButton(text="a", callback_data=data)),
            )
        assert info.value.message == "Bad Request: BUTTON_DATA_INVALID"


# ---------------------------------------------------------------- callbacks


async def test_press_is_delivered_by_long_poll_with_offset(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    poll = asyncio.create_task(bot.get_updates(offset=0, timeout=10))
    # the long poll is parked until something arrives
    await wait_for(lambda: emu.calls("getUpdates"))
    assert not poll.done()
    started = time.monotonic()
    query_id = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE)
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 5
    assert len(updates) == 1
    query = updates[0].callback_query
    assert query is not None
    assert query.id == query_id
    assert query.data == "a:INC-1"
    assert query.from_user.id == ALICE["id"] and query.from_user.is_bot is False
    assert query.chat_instance
    assert query.message and query.message.message_id == card.message_id
    assert query.message.chat.id == GROUP
    assert query.message.reply_markup is not None  # the message as currently stored
    # the same update comes again until an offset confirms it
    again = await bot.get_updates(offset=0, timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    after = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert after == []
    assert emu.pending_updates() == []


async def test_user_message_update_with_command_entity(bot: Bot, emu: Emulator) -> None:
    emu.user_sends(GROUP, BOB, "/silence@opsgate_sandbox_bot 1h")
    updates = await bot.get_updates(timeout=1)
    message = updates[0].message
    assert message and message.text == "/silence@opsgate_sandbox_bot 1h"
    assert message.entities and message.entities[0].type == "bot_command"
    assert (message.entities[0].offset, message.entities[0].length) == (0, 28)
    assert message.from_user and message.from_user.id == BOB["id"]


async def test_allowed_updates_filter(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    emu.user_sends(GROUP, BOB, "hello")
    emu.press_button(GROUP, card.message_id, "r:INC-1", ALICE)
    updates = await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    assert [u.callback_query is not None for u in updates] == [True]


async def test_answer_callback_once(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    query_id = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE)
    assert emu.callback_stats()["unanswered"] == [query_id]
    assert await bot.answer_callback_query(query_id, text="Approved") is True
    with pytest.raises(TelegramBadRequest) as info:
        await bot.answer_callback_query(query_id, text="again")
    assert info.value.message == TOO_OLD
    assert emu.callback_stats() == {
        "presses": 1,
        "answered": 1,
        "unanswered": [],
        "refused_answers": 1,
    }
    assert emu.callback_answer(query_id) == {"text": "Approved"}


async def test_answer_too_late_and_unknown_id(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    # pressed while the bot was down: older than the answer window
    late = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE, age=60)
    with pytest.raises(TelegramBadRequest) as info:
        await bot.answer_callback_query(late)
    assert info.value.message == TOO_OLD
    with pytest.raises(TelegramBadRequest) as info:
        await bot.answer_callback_query("12345")
    assert info.value.message == TOO_OLD
    stats = emu.callback_stats()
    assert stats["refused_answers"] == 2
    assert stats["unanswered"] == [late]


async def test_press_requires_existing_button(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    with pytest.raises(ValueError, match="no button"):
        emu.press_button(GROUP, card.message_id, "x:nope", ALICE)
    await bot.edit_message_reply_markup(chat_id=GROUP, message_id=card.message_id)
    with pytest.raises(ValueError, match="no button"):
        emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE)


async def test_forced_press_of_a_button_no_longer_shown(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    await bot.edit_message_reply_markup(chat_id=GROUP, message_id=card.message_id)
    query_id = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE, force=True)
    updates = await bot.get_updates(timeout=0)
    query = updates[-1].callback_query
    assert query and query.id == query_id and query.data == "a:INC-1"
    assert query.message and query.message.reply_markup is None  # the message as stored now


async def test_answer_text_limit(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    query_id = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE)
    with pytest.raises(TelegramBadRequest):
        await bot.answer_callback_query(query_id, text="x" * 201)
    assert await bot.answer_callback_query(query_id, text="x" * 200)


# ------------------------------------------------------------------- topics


async def test_topic_lifecycle(bot: Bot, emu: Emulator) -> None:
    topic = await bot.create_forum_topic(FORUM, "INC-7K3F9Q cart", icon_color=0xFB6F5F)
    assert topic.name == "INC-7K3F9Q cart" and topic.icon_color == 0xFB6F5F
    thread = topic.message_thread_id
    sent = await bot.send_message(FORUM, "card", message_thread_id=thread)
    assert sent.message_thread_id == thread and sent.is_topic_message is True
    # like Telegram: a topic message "replies" to the topic-created service message
    assert sent.reply_to_message and sent.reply_to_message.forum_topic_created
    texts = [m.get("text") for m in emu.messages(FORUM, thread_id=thread)]
    assert "card" in texts
    assert await bot.edit_forum_topic(FORUM, thread, name="INC-7K3F9Q cart ✅")
    assert await bot.close_forum_topic(FORUM, thread)
    assert emu.topics(FORUM) == [
        {"id": thread, "name": "INC-7K3F9Q cart ✅", "closed": True, "icon_color": 0xFB6F5F}
    ]
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(FORUM, "late", message_thread_id=thread)
    assert info.value.message == "Bad Request: TOPIC_CLOSED"
    # a reply to a message in the closed topic lands in the topic too
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(
            FORUM, "late", reply_parameters=ReplyParameters(message_id=sent.message_id)
        )
    assert await bot.reopen_forum_topic(FORUM, thread)
    again = await bot.send_message(FORUM, "reopened", message_thread_id=thread)
    assert again.message_thread_id == thread


async def test_topic_errors(bot: Bot, emu: Emulator) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.create_forum_topic(GROUP, "x")
    assert info.value.message == "Bad Request: the chat is not a forum"
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(FORUM, "x", message_thread_id=999)
    assert info.value.message == "Bad Request: message thread not found"
    with pytest.raises(TelegramBadRequest):
        await bot.create_forum_topic(FORUM, "x" * 129)
    emu.add_chat(-1001000000003, is_forum=True, bot_rights={"can_manage_topics": False})
    with pytest.raises(TelegramBadRequest) as info:
        await bot.create_forum_topic(-1001000000003, "x")
    assert info.value.message == "Bad Request: not enough rights to create a topic"
    assert emu.topics(-1001000000003) == []


# --------------------------------------------------------- updates/webhook


async def test_get_updates_conflicts_with_webhook(bot: Bot, emu: Emulator) -> None:
    assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cr3t_-")
    info = await bot.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook"
    with pytest.raises(TelegramConflictError) as exc:
        await bot.get_updates()
    assert exc.value.message.startswith(
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )
    with pytest.raises(TelegramBadRequest):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="bad token!")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == []


async def test_second_poller_terminates_the_first(bot: Bot, emu: Emulator) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await wait_for(lambda: emu.calls("getUpdates"))
    second = asyncio.create_task(bot.get_updates(timeout=10))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    emu.user_sends(GROUP, BOB, "hi")
    assert len(await asyncio.wait_for(second, 5)) == 1


# ------------------------------------------------------------------- faults


async def test_429_fault(bot: Bot, emu: Emulator) -> None:
    emu.inject_fault("sendMessage", 429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "x")
    assert info.value.retry_after == 7
    assert "Original description: Too Many Requests: retry after 7" in info.value.message
    assert emu.messages(GROUP) == []  # a faulted call changes nothing
    emu.inject_fault("sendMessage", 500, count=5)
    assert emu.clear_faults("sendMessage") == 5
    await bot.send_message(GROUP, "x")  # count=1: the next call works
    assert len(emu.messages(GROUP)) == 1
    log = emu.calls("sendMessage")
    assert [(c["ok"], c["error_code"]) for c in log] == [(False, 429), (True, None)]


async def test_500_fault(bot: Bot, emu: Emulator) -> None:
    emu.inject_fault("editMessageText", 500, count=2)
    sent = await bot.send_message(GROUP, "x")
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.edit_message_text("y", chat_id=GROUP, message_id=sent.message_id)
    assert emu.message(GROUP, sent.message_id)["text"] == "x"
    await bot.edit_message_text("y", chat_id=GROUP, message_id=sent.message_id)


async def test_flood_control_is_off_by_default(bot: Bot, emu: Emulator) -> None:
    for i in range(25):
        await bot.send_message(GROUP, f"m{i}")
    assert len(emu.messages(GROUP)) == 25


async def test_a_group_takes_a_burst_of_three_then_one_a_second(bot: Bot, emu: Emulator) -> None:
    emu.set_rate_limits(True)
    for i in range(3):
        await bot.send_message(GROUP, f"m{i}")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "one too many")
    assert info.value.retry_after == 1
    assert info.value.message.endswith("Original description: Too Many Requests: retry after 1")
    # Another chat has its own bucket.
    await bot.send_message(FORUM, "elsewhere")


async def test_a_group_takes_twenty_a_minute(bot: Bot, emu: Emulator) -> None:
    emu.set_rate_limits(True, FloodLimits(chat_burst=100))  # only the group window binds
    sent = await bot.send_message(GROUP, "m0")
    for i in range(1, 19):
        await bot.send_message(GROUP, f"m{i}")
    await bot.edit_message_text("edited", chat_id=GROUP, message_id=sent.message_id)  # 20th
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "one too many")
    assert 55 <= info.value.retry_after <= 60
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_text("again", chat_id=GROUP, message_id=sent.message_id)
    assert len(emu.messages(GROUP)) == 19  # refused writes change nothing and do not count


async def test_the_overall_limit_spans_chats(bot: Bot, emu: Emulator) -> None:
    emu.set_rate_limits(True, FloodLimits(chat_burst=100, global_count=4))
    for chat in (GROUP, FORUM, GROUP, FORUM):
        await bot.send_message(chat, "x")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(FORUM, "x")
    assert info.value.retry_after == 1


async def test_topic_writes_count_and_callback_answers_do_not(bot: Bot, emu: Emulator) -> None:
    card = await bot.send_message(FORUM, "card", reply_markup=approve_keyboard())
    emu.set_rate_limits(True, FloodLimits(chat_burst=2))
    query_id = emu.press_button(FORUM, card.message_id, "a:INC-1", ALICE)
    assert await bot.answer_callback_query(query_id, text="Approved") is True
    topic = await bot.create_forum_topic(FORUM, "INC-1")
    await bot.close_forum_topic(FORUM, topic.message_thread_id)
    with pytest.raises(TelegramRetryAfter):
        await bot.reopen_forum_topic(FORUM, topic.message_thread_id)


async def test_flood_limits_scale_in_time(bot: Bot, emu: Emulator) -> None:
    limits = FloodLimits().scaled(20)
    assert (limits.chat_burst, limits.group_count, limits.global_count) == (3, 20, 30)
    assert (limits.chat_interval, limits.group_window, limits.global_window) == (
        pytest.approx(0.05), pytest.approx(3.0), pytest.approx(0.05))
    emu.set_rate_limits(True, limits)
    for _ in range(3):
        await bot.send_message(GROUP, "x")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "x")
    assert info.value.retry_after == 1  # whole seconds, as Telegram says it


async def test_rate_limit_in_private_chats(bot: Bot, emu: Emulator) -> None:
    emu.add_chat(ALICE["id"], type="private", title="Alice")
    emu.set_rate_limits(True)
    for _ in range(3):  # burst of 3 is tolerated
        await bot.send_message(ALICE["id"], "x")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(ALICE["id"], "x")
    assert info.value.retry_after == 1
    # A private chat has no twenty-a-minute window: a minute at one a second goes through.
    emu.set_rate_limits(True, FloodLimits(chat_interval=0.0001))
    for _ in range(30):
        await bot.send_message(ALICE["id"], "x")


# ---------------------------------------------------------------- migration


async def test_migrated_group(bot: Bot, emu: Emulator) -> None:
    old, new = -4001, -1004001
    emu.add_chat(old, type="group", title="Ops")
    emu.migrate_chat(old, new)
    with pytest.raises(TelegramMigrateToChat) as info:
        await bot.send_message(old, "card")
    assert info.value.migrate_to_chat_id == new
    assert info.value.message.endswith(
        "Original description: Bad Request: group chat was upgraded to a supergroup chat"
    )
    updates = await bot.get_updates(timeout=0)
    service = [u.message for u in updates if u.message]
    assert [(m.chat.id, m.migrate_to_chat_id, m.migrate_from_chat_id) for m in service] == [
        (old, new, None),
        (new, None, old),
    ]
    sent = await bot.send_message(new, "card")
    assert sent.chat.type == "supergroup"
    assert [m.get("text") for m in emu.messages(new)] == [None, "card"]


# ----------------------------------------------------------- commands/chat


async def test_set_my_commands(bot: Bot, emu: Emulator) -> None:
    commands = [BotCommand(command="silence", description="Silence an alert for a while")]
    scope = BotCommandScopeChatAdministrators(chat_id=GROUP)
    assert await bot.set_my_commands(commands, scope=scope)
    stored = await bot.get_my_commands(scope=scope)
    assert [(c.command, c.description) for c in stored] == [
        ("silence", "Silence an alert for a while")
    ]
    assert await bot.get_my_commands() == []  # other scopes are separate
    assert await bot.get_my_commands(scope=BotCommandScopeAllGroupChats()) == []


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ("Silence", "upper case"),
        ("", "empty"),
        ("x" * 33, "too long"),
        ("a-b", "dash"),
        ("ok", ""),
        ("ok", "d" * 257),
    ],
)
async def test_set_my_commands_validation(
    bot: Bot, emu: Emulator, command: str, description: str
) -> None:
    with pytest.raises(TelegramBadRequest):
        await bot.set_my_commands([BotCommand(command=command, description=description)])
    assert emu.commands() == []


async def test_too_many_commands(bot: Bot) -> None:
    commands = [BotCommand(command=f"c{i}", description="d") for i in range(101)]
    with pytest.raises(TelegramBadRequest):
        await bot.set_my_commands(commands)
    assert await bot.set_my_commands(commands[:100])


async def test_chat_and_members(bot: Bot, emu: Emulator) -> None:
    emu.add_chat(-1009, title="Ops", admins=[ALICE], bot_status="administrator")
    chat = await bot.get_chat(-1009)
    assert chat.title == "Ops" and chat.type == "supergroup"
    me = await bot.get_chat_member(-1009, 123456)
    assert me.status == "administrator"
    alice = await bot.get_chat_member(-1009, ALICE["id"])
    assert alice.status == "administrator" and alice.user.id == ALICE["id"]
    emu.user_sends(-1009, BOB, "hi")
    bob = await bot.get_chat_member(-1009, BOB["id"])
    assert bob.status == "member"
    admins = await bot.get_chat_administrators(-1009)
    assert [a.user.id for a in admins] == [ALICE["id"]]


async def test_real_dispatcher_polling_round_trip(bot: Bot, emu: Emulator) -> None:
    from aiogram import Dispatcher
    from aiogram.types import CallbackQuery, Message

    dp = Dispatcher()

    @dp.callback_query()
    async def on_press(query: CallbackQuery) -> None:
        await query.answer("Approved")
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"approved by {query.from_user.first_name}")

    card = await bot.send_message(GROUP, "card", reply_markup=approve_keyboard())
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=2, close_bot_session=False)
    )
    try:
        query_id = emu.press_button(GROUP, card.message_id, "a:INC-1", ALICE)
        await wait_for(lambda: emu.message(GROUP, card.message_id)["edit_count"] == 1)
        assert emu.message(GROUP, card.message_id)["text"] == "approved by Alice"
        assert "reply_markup" not in emu.message(GROUP, card.message_id)
        assert emu.callback_answer(query_id) == {"text": "Approved"}
        assert emu.callback_stats()["unanswered"] == []
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 10)
