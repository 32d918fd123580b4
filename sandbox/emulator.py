"""In-memory Telegram Bot API emulator (one bot, many chats).

Bot API methods are ``async def`` taking the decoded params dict and returning
the ``result`` or raising :class:`ApiError`. Control helpers (``user_sends``,
``press_button`` ...) are synchronous so tests can call them directly.

Known differences from Telegram (deliberate simplifications):
- only text messages, inline keyboards and forum topics are emulated; other
  parse modes (Markdown) are stored as plain text; no files, no inline mode;
- button URLs: IP literals and single-label hosts are refused (Telegram may
  accept some IPs); TLDs are not checked against a real list;
- closed topics refuse every send (Telegram lets topic managers post);
- setWebhook accepts only loopback http(s) URLs on any port (Telegram wants
  public HTTPS on 443/80/88/8443); a failing webhook is retried 3 times;
- all group messages reach the bot (privacy mode is not emulated);
- flood control (off by default; ``rate_limits=True``, ``FloodLimits`` for its numbers)
  counts every write to a chat when it arrives, as a token bucket per chat and sliding
  windows per group and overall; Telegram does not publish its exact algorithm;
- error texts marked approximate in the tests (setMyCommands, topic names,
  answer text length) are best guesses; message texts are judged by TDLib's own
  parser (sandbox/judge.py), so their errors are Telegram's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import ipaddress
import itertools
import json
import math
import re
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sandbox.judge import check_message_text, check_plain_text
from sandbox.telegram_html import HtmlParseError

# --- change notification (shared by all emulators, so module-level wait_for works)


class _Changes:
    """A broadcast 'something changed' signal usable from sync code.

    One asyncio.Event per event loop, replaced after each notify, so tests
    running in fresh loops never touch an Event bound to a closed loop.
    """

    def __init__(self) -> None:
        self.version = 0
        self._events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    def notify(self) -> None:
        self.version += 1
        events = list(self._events.values())
        self._events.clear()
        for event in events:
            event.set()

    async def wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        event = self._events.get(loop)
        if event is None:
            event = self._events[loop] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


_CHANGES = _Changes()


async def wait_for(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,  # noqa: ASYNC109 - the API tests expect
    *,
    interval: float = 0.05,
    message: str = "",
    on_change: bool = True,
) -> Any:
    """Wait until ``predicate()`` is truthy and return its value.

    Wakes on every emulator state change (unless ``on_change`` is false: a costly
    predicate, checked while thousands of calls arrive, would slow the emulator it
    watches); ``interval`` bounds the wait between checks so predicates on other
    state (the bot's DB) are also seen. A predicate raising LookupError
    (KeyError/IndexError) counts as "not yet".
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
        except LookupError:
            value = None
        if value:
            return value
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(message or f"condition not met within {timeout}s")
        if on_change:
            await _CHANGES.wait(min(interval, remaining))
        else:
            await asyncio.sleep(min(interval, remaining))


# --- errors and constants


class ApiError(Exception):
    def __init__(self, error_code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters


def bad_request(text: str, parameters: dict | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {text}", parameters)


QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
_DEFAULT_FAULT_TEXT = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was kicked from the supergroup chat",
    404: "Not Found",
    409: "Conflict: injected fault",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
# types delivered when allowed_updates is empty/unset (Bot API default)
_NOT_DEFAULT_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
_BUTTON_KINDS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "web_app",
    "callback_game",
    "pay",
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND_IN_TEXT = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DEFAULT_ICON_COLOR = 0x6FB9F0
# Methods that put something in a chat, and so count against its flood limits
# (answerCallbackQuery and reads do not).
_CHAT_WRITES = {
    "sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
    "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic",
}


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's flood control: in one chat about a message a second with a burst of at
    most three, in a group at most twenty in any sixty seconds, about thirty a second over
    all chats. `scaled(speed)` keeps the shape and divides every period (for tests)."""

    chat_burst: int = 3
    chat_interval: float = 1.0  # a chat earns one more message per interval, up to the burst
    group_count: int = 20
    group_window: float = 60.0
    global_count: int = 30
    global_window: float = 1.0

    def scaled(self, speed: float) -> FloodLimits:
        return replace(self, chat_interval=self.chat_interval / speed,
                       group_window=self.group_window / speed,
                       global_window=self.global_window / speed)


class _FloodControl:
    """Answers a write over the limits with 429 and a whole-second retry_after, as Telegram
    does; only accepted writes count."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self.tokens: dict[int, tuple[float, float]] = {}  # chat -> (tokens, when)
        self.group: dict[int, deque[float]] = {}  # group chat -> accepted writes
        self.all: deque[float] = deque()

    def _tokens(self, chat_id: int, now: float) -> float:
        tokens, at = self.tokens.get(chat_id, (float(self.limits.chat_burst), now))
        return min(float(self.limits.chat_burst), tokens + (now - at) / self.limits.chat_interval)

    @staticmethod
    def _window_wait(times: deque[float], count: int, window: float, now: float) -> float:
        while times and now - times[0] >= window:
            times.popleft()
        return window - (now - times[0]) if len(times) >= count else 0.0

    def check(self, chat_id: int, private: bool, now: float) -> None:
        lim = self.limits
        waits = [self._window_wait(self.all, lim.global_count, lim.global_window, now)]
        tokens = self._tokens(chat_id, now)
        if tokens < 1.0:
            waits.append((1.0 - tokens) * lim.chat_interval)
        if not private:
            times = self.group.setdefault(chat_id, deque())
            waits.append(self._window_wait(times, lim.group_count, lim.group_window, now))
        wait = max(waits)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}",
                           {"retry_after": retry_after})

    def count(self, chat_id: int, private: bool, now: float) -> None:
        self.tokens[chat_id] = (self._tokens(chat_id, now) - 1.0, now)
        if not private:
            self.group.setdefault(chat_id, deque()).append(now)
        self.all.append(now)

_DEFAULT_ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": False,
    "can_restrict_members": False,
    "can_promote_members": False,
    "can_change_info": False,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_send_welcome_messages": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
}


def _user(user: dict) -> dict:
    return {"is_bot": False, **user}


def _drop_none(value: Any) -> Any:
    """Normalize JSON for comparisons: None-valued keys mean 'absent'."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def button_url_ok(url: str) -> bool:
    """Telegram accepts http(s) links to a dotted host name, and tg:// links."""
    if url.startswith("tg://"):
        return len(url) > len("tg://")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises on a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    try:
        ipaddress.ip_address(host)
        return False  # the sandbox refuses IP literals (stricter than Telegram)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        return False
    return labels[-1].isalpha() and len(labels[-1]) >= 2


class _Chat:
    def __init__(self, chat: dict, bot_member: dict, admins: list[dict]) -> None:
        self.chat = chat
        self.bot_member = bot_member
        self.members: dict[int, dict] = {a["user"]["id"]: a for a in admins}
        self.messages: dict[int, dict] = {}
        self.next_message_id = 1
        self.topics: dict[int, dict] = {}
        self.migrated_to: int | None = None

    @property
    def is_private(self) -> bool:
        return self.chat["type"] == "private"


class Emulator:
    def __init__(
        self,
        token: str = "123456:SANDBOX",
        bot_id: int = 123456,
        bot_username: str = "opsgate_sandbox_bot",
        callback_answer_window: float = 15.0,
        rate_limits: bool = False,
        flood_limits: FloodLimits | None = None,
    ) -> None:
        self.token = token
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "OpsGate Sandbox",
            "username": bot_username,
        }
        self.callback_answer_window = callback_answer_window
        self.rate_limits = rate_limits  # flood control, off unless asked for
        self.flood_limits = flood_limits or FloodLimits()
        self._tasks: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closed = False
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything except the constructor settings."""
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, dict] = {}
        self._updates: list[dict] = []
        self._next_update_id = 1
        self._allowed_updates: list[str] = []
        # kept across resets so a pending long poll is not told it was replaced
        self._poll_generation = getattr(self, "_poll_generation", 0)
        self._webhook: dict | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._queries: dict[str, dict] = {}
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self._refused_answers = 0
        self._refused_url_hosts: set[str] = set()
        self._commands: dict[str, list[dict]] = {}
        self._calls: list[dict] = []
        self._faults: dict[str, list[dict]] = {}
        self._flood = _FloodControl(self.flood_limits)
        self._holds: dict[str, asyncio.Event] = {}
        self._held: dict[str, int] = {}
        self._changed()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        """Same as the module-level :func:`wait_for`."""
        return await wait_for(predicate, timeout)

    def _changed(self) -> None:
        _CHANGES.notify()

    def add_chat(
        self,
        chat_id: int,
        type: str = "supergroup",
        title: str = "On-call",
        is_forum: bool = False,
        bot_status: str = "administrator",
        bot_rights: dict | None = None,
        admins: list[dict] | None = None,
    ) -> dict:
        if type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": title}
        else:
            chat = {"id": chat_id, "type": type, "title": title}
            if is_forum:
                chat["is_forum"] = True
        if type == "private":
            bot_status = "member"  # a private chat has no admins
        bot_member: dict = {"status": bot_status, "user": self.bot_user}
        if bot_status == "administrator":
            bot_member.update(_DEFAULT_ADMIN_RIGHTS, **(bot_rights or {}))
            if not is_forum:
                bot_member.pop("can_manage_topics", None)
        members = [self._admin_member(a) for a in admins or []]
        self._chats[chat_id] = _Chat(chat, bot_member, members)
        self._changed()
        return dict(chat)

    def _admin_member(self, admin: dict) -> dict:
        if "user" in admin:  # a full ChatMember dict
            member = {"status": "administrator", **admin, "user": _user(admin["user"])}
        else:  # a plain user dict
            member = {"status": "administrator", "user": _user(admin)}
        if member["status"] == "administrator":
            defaults = {k: v for k, v in _DEFAULT_ADMIN_RIGHTS.items() if k != "can_manage_topics"}
            member = {**defaults, **member}
        elif member["status"] == "creator":
            member.setdefault("is_anonymous", False)
        self._users[member["user"]["id"]] = member["user"]
        return member

    def set_member(self, chat_id: int, user: dict, status: str = "member", **fields: Any) -> None:
        """Set one user's ChatMember record (e.g. 'left', 'kicked', 'administrator')."""
        member = {"status": status, **fields, "user": _user(user)}
        if status == "administrator":
            member = self._admin_member(member)
        self._chat_state(chat_id).members[user["id"]] = member
        self._users[user["id"]] = member["user"]
        self._changed()

    def chats(self) -> list[dict]:
        return [dict(c.chat) for c in self._chats.values()]

    def messages(self, chat_id: int, thread_id: int | None = None) -> list[dict]:
        """Current messages of a chat (oldest first), with ``html`` and ``edit_count``."""
        chat = self._chat_state(chat_id)
        return [
            copy.deepcopy(m)
            for m in chat.messages.values()
            if thread_id is None or m.get("message_thread_id") == thread_id
        ]

    def message(self, chat_id: int, message_id: int) -> dict:
        """One stored message; KeyError if it does not exist (or was deleted)."""
        return copy.deepcopy(self._chat_state(chat_id).messages[message_id])

    def topics(self, chat_id: int) -> list[dict]:
        return [
            {k: t[k] for k in ("id", "name", "closed", "icon_color")}
            for t in self._chat_state(chat_id).topics.values()
        ]

    def calls(self, method: str | None = None, *, start: int = 0) -> list[dict]:
        """Copies of the calls made (of `method`), from the `start`-th call made on (a
        reader polling thousands of calls copies only the new ones)."""
        return [copy.deepcopy(c) for c in itertools.islice(self._calls, start, None)
                if method is None or c["method"] == method]

    def call_count(self) -> int:
        """How many calls were made (the `start` of a later `calls`)."""
        return len(self._calls)

    def callback_stats(self) -> dict:
        answered = [q for q in self._queries.values() if q["answer"] is not None]
        return {
            "presses": len(self._queries),
            "answered": len(answered),
            "unanswered": [qid for qid, q in self._queries.items() if q["answer"] is None],
            "refused_answers": self._refused_answers,
        }

    def callback_answer(self, query_id: str) -> dict | None:
        """The accepted answerCallbackQuery params for a press, or None."""
        return copy.deepcopy(self._queries[query_id]["answer"])

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    def pending_updates(self) -> list[dict]:
        return copy.deepcopy(self._updates)

    def webhook(self) -> dict | None:
        return copy.deepcopy(self._webhook)

    def inject_fault(
        self,
        method: str,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail without changing state."""
        parameters = None
        if error_code == 429:
            retry_after = retry_after if retry_after is not None else 1
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after}
        description = description or _DEFAULT_FAULT_TEXT.get(error_code, "Injected fault")
        fault = {"error_code": error_code, "description": description, "parameters": parameters}
        self._faults.setdefault(method, []).extend(dict(fault) for _ in range(count))

    def clear_faults(self, method: str | None = None) -> int:
        """Drop pending injected faults (all, or one method's); returns how many."""
        if method is None:
            dropped = sum(len(f) for f in self._faults.values())
            self._faults.clear()
        else:
            dropped = len(self._faults.pop(method, []))
        return dropped

    def hold(self, method: str) -> None:
        """Calls of ``method`` wait, as on a slow network, until :meth:`release`; then
        they are carried out (even when the caller has given up on the answer meanwhile)."""
        self._holds.setdefault(method, asyncio.Event())

    def release(self, method: str) -> None:
        event = self._holds.pop(method, None)
        if event is not None:
            event.set()

    def held(self, method: str) -> int:
        """How many calls of ``method`` are waiting for :meth:`release`."""
        return self._held.get(method, 0)

    def set_rate_limits(self, enabled: bool, limits: FloodLimits | None = None) -> None:
        """Flood control on or off; `limits` replaces the limits (and forgets past writes)."""
        self.rate_limits = enabled
        if limits is not None:
            self.flood_limits = limits
            self._flood = _FloodControl(limits)

    def refuse_button_urls(self, *hosts: str) -> None:
        """Refuse URL buttons to these hosts with BUTTON_URL_INVALID, as Telegram does for
        links it will not open (hosts it cannot resolve, blocked sites) even when they look
        valid; no hosts: accept again. Forgotten at reset()."""
        self._refused_url_hosts = {h.lower() for h in hosts}

    # ------------------------------------------------------------ user actions

    def user_sends(
        self,
        chat_id: int,
        user: dict,
        text: str,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
    ) -> dict:
        """A person writes in a chat; queues a ``message`` update for the bot."""
        chat = self._chat_state(chat_id)
        if chat.migrated_to is not None:
            raise ValueError(f"chat {chat_id} was migrated to {chat.migrated_to}")
        if not text:
            raise ValueError("empty text")
        sender = _user(user)
        self._users[sender["id"]] = sender
        chat.members.setdefault(sender["id"], {"status": "member", "user": sender})
        reply_to = None
        if reply_to_message_id is not None:
            reply_to = chat.messages.get(reply_to_message_id)
            if reply_to is None:
                raise ValueError(f"message {reply_to_message_id} not found in {chat_id}")
            if message_thread_id is None:
                message_thread_id = reply_to.get("message_thread_id")
        if message_thread_id is not None:
            topic = chat.topics.get(message_thread_id)
            if topic is None:
                raise ValueError(f"topic {message_thread_id} not found in {chat_id}")
            if topic["closed"]:
                raise ValueError(f"topic {message_thread_id} is closed")
        entities = [
            {
                "type": "bot_command",
                "offset": len(text[: m.start()].encode("utf-16-le")) // 2,
                "length": len(m.group().encode("utf-16-le")) // 2,
            }
            for m in _BOT_COMMAND_IN_TEXT.finditer(text)
        ]
        message = self._new_message(chat, sender, thread_id=message_thread_id)
        message["text"] = text
        if entities:
            message["entities"] = entities
        self._set_reply(chat, message, reply_to)
        message["html"] = None
        self._store(chat, message)
        self._queue_update("message", self._public(message))
        return self._public(message)

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        callback_data: str,
        user: dict,
        age: float = 0.0,
        force: bool = False,
    ) -> str:
        """A person presses an inline button; ``age`` backdates the press (seconds).

        ``force`` skips the "button exists" check: a press on a keyboard the
        person still sees from before an edit, or data forged by a client.
        """
        chat = self._chat_state(chat_id)
        message = chat.messages.get(message_id)
        if message is None:
            raise ValueError(f"message {message_id} not found in chat {chat_id}")
        buttons = [
            b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
        ]
        if not force and not any(b.get("callback_data") == callback_data for b in buttons):
            raise ValueError(f"message {message_id} has no button with data {callback_data!r}")
        sender = _user(user)
        self._users[sender["id"]] = sender
        query_id = str(next(self._query_ids))
        query = {
            "id": query_id,
            "from": sender,
            "message": self._public(message),
            "chat_instance": str(abs(hash(("chat_instance", chat_id))) % 10**18),
            "data": callback_data,
        }
        self._queries[query_id] = {
            "pressed_at": time.monotonic() - age,
            "answer": None,
            "query": query,
        }
        self._queue_update("callback_query", query)
        return query_id

    def migrate_chat(self, old_id: int, new_id: int) -> dict:
        """Upgrade a group to a supergroup; only the service messages are created."""
        old = self._chat_state(old_id)
        if old.migrated_to is not None:
            raise ValueError(f"chat {old_id} already migrated")
        if new_id in self._chats:
            raise ValueError(f"chat {new_id} already exists")
        title = old.chat.get("title", "")
        admins = [m for m in old.members.values() if m["status"] in ("administrator", "creator")]
        rights = {k: v for k, v in old.bot_member.items() if k not in ("status", "user")}
        self.add_chat(
            new_id,
            "supergroup",
            title,
            bot_status=old.bot_member["status"],
            bot_rights=rights,
            admins=admins,
        )
        new = self._chats[new_id]
        actor = (
            admins[0]["user"]
            if admins
            else {
                "id": 1087968824,
                "is_bot": True,
                "first_name": "Group",
                "username": "GroupAnonymousBot",
            }
        )
        old.migrated_to = new_id
        to_msg = self._new_message(old, actor)
        to_msg["migrate_to_chat_id"] = new_id
        self._store(old, to_msg)
        from_msg = self._new_message(new, actor)
        from_msg["migrate_from_chat_id"] = old_id
        self._store(new, from_msg)
        self._queue_update("message", self._public(to_msg))
        self._queue_update("message", self._public(from_msg))
        return dict(new.chat)

    # --------------------------------------------------------------- dispatch

    async def call(self, method: str, params: dict) -> Any:
        """Run one Bot API method by name, logging it; raises ApiError."""
        handler = self._methods().get(method.lower())
        name = handler.__name__ if handler else method
        entry = {
            "method": name,
            "params": copy.deepcopy(params),
            "ok": False,
            "error_code": None,
            "description": None,
            "at": time.time(),
        }
        self._calls.append(entry)
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            hold = self._holds.get(name)
            if hold is not None:
                self._held[name] = self._held.get(name, 0) + 1
                self._changed()
                try:
                    await hold.wait()
                finally:
                    self._held[name] -= 1
            faults = self._faults.get(name)
            if faults:
                fault = faults.pop(0)
                raise ApiError(fault["error_code"], fault["description"], fault["parameters"])
            flood = self._flood_subject(name, params)
            if flood is not None:
                self._flood.check(*flood, time.monotonic())
            try:
                result = await handler(params)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # malformed parameters: Telegram answers 400, never 500
                raise bad_request(f"invalid parameters: {exc!r}") from exc
            if flood is not None:
                self._flood.count(*flood, time.monotonic())
            entry["ok"] = True
            return result
        except ApiError as exc:
            entry.update(error_code=exc.error_code, description=exc.description)
            raise
        finally:
            self._changed()

    def _methods(self) -> dict[str, Callable[[dict], Awaitable[Any]]]:
        names = [
            "getMe",
            "getUpdates",
            "setWebhook",
            "deleteWebhook",
            "getWebhookInfo",
            "sendMessage",
            "editMessageText",
            "editMessageReplyMarkup",
            "deleteMessage",
            "answerCallbackQuery",
            "getChat",
            "getChatMember",
            "getChatAdministrators",
            "setMyCommands",
            "getMyCommands",
            "deleteMyCommands",
            "createForumTopic",
            "editForumTopic",
            "closeForumTopic",
            "reopenForumTopic",
            "close",
            "logOut",
        ]
        return {n.lower(): getattr(self, n) for n in names}

    # ---------------------------------------------------------------- helpers

    def _chat_state(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"chat {chat_id} not found")
        return chat

    def _resolve_chat(self, params: dict, *, writing: bool = True) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad_request("chat_id is empty")
        if isinstance(chat_id, str):
            found = next(
                (
                    c
                    for c in self._chats.values()
                    if chat_id.lstrip("-").isdigit() and c.chat["id"] == int(chat_id)
                ),
                None,
            )
        else:
            found = self._chats.get(chat_id)
        if found is None:
            raise bad_request("chat not found")
        if found.migrated_to is not None:
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": found.migrated_to},
            )
        status = found.bot_member["status"]
        if writing and status in ("left", "kicked"):
            kind = found.chat["type"]
            if status == "kicked":
                raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        return found

    def _int_param(self, params: dict, key: str, required: bool = True) -> int | None:
        value = params.get(key)
        if value is None or value == "":
            if required:
                raise bad_request(
                    f"{key} is empty"
                    if key != "message_id"
                    else "message identifier is not specified"
                )
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {key} specified") from None

    def _new_message(self, chat: _Chat, sender: dict, thread_id: int | None = None) -> dict:
        message: dict = {
            "message_id": chat.next_message_id,
            "date": int(time.time()),
            "chat": dict(chat.chat),
            "from": dict(sender),
        }
        chat.next_message_id += 1
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        message["edit_count"] = 0
        return message

    def _store(self, chat: _Chat, message: dict) -> None:
        message.setdefault("html", None)
        message.setdefault("edit_count", 0)
        chat.messages[message["message_id"]] = message
        self._changed()

    def _set_reply(self, chat: _Chat, message: dict, reply_to: dict | None) -> None:
        thread_id = message.get("message_thread_id")
        if reply_to is None and thread_id is not None:
            # Bot API quirk: a topic message without a reply "replies" to the
            # topic's creation service message
            reply_to = chat.messages.get(thread_id)
        if reply_to is not None:
            message["reply_to_message"] = self._public(reply_to, shallow=True)

    @staticmethod
    def _public(message: dict, shallow: bool = False) -> dict:
        """The Bot API view of a stored message (no sandbox-only keys)."""
        public = {
            k: copy.deepcopy(v) for k, v in message.items() if k not in ("html", "edit_count")
        }
        if shallow:
            public.pop("reply_to_message", None)
        if not public.get("reply_markup"):
            public.pop("reply_markup", None)
        return public

    def _queue_update(self, kind: str, payload: dict) -> None:
        self._updates.append({"update_id": self._next_update_id, kind: payload})
        self._next_update_id += 1
        self._changed()

    def _wants(self, update: dict) -> bool:
        kind = next(k for k in update if k != "update_id")
        allowed = self._allowed_updates
        return kind in allowed if allowed else kind not in _NOT_DEFAULT_UPDATES

    def _parse_text(self, params: dict) -> tuple[str, list[dict]]:
        text = params.get("text")
        if text is None or text == "":
            raise bad_request("message text is empty")
        text = str(text)
        mode = str(params.get("parse_mode") or "").lower()
        if mode not in ("", "html", "markdown", "markdownv2"):
            raise bad_request("unsupported parse_mode")
        try:
            if mode == "html":
                parsed = check_message_text(text)
            else:
                # other parse modes are accepted as plain text (see module docstring)
                parsed = check_plain_text(text)
        except HtmlParseError as exc:
            raise ApiError(400, exc.description) from None
        entities = parsed.entities
        if params.get("entities") and not params.get("parse_mode"):
            entities = list(params["entities"])
        return parsed.text, entities

    def _parse_markup(self, params: dict) -> dict | None:
        markup = params.get("reply_markup")
        if markup is None or markup == "":
            return None
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError:
                raise bad_request("can't parse reply keyboard markup JSON object") from None
        if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
            # reply/remove/force-reply keyboards are not emulated
            raise bad_request("can't parse reply keyboard markup JSON object")
        rows = markup["inline_keyboard"]
        for row in rows:
            if not isinstance(row, list):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            for button in row:
                self._check_button(button)
        markup = _drop_none({"inline_keyboard": [r for r in rows if r]})
        return markup if markup["inline_keyboard"] else None

    def _check_button(self, button: Any) -> None:
        if not isinstance(button, dict):
            raise bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
            )
        if not isinstance(button.get("text"), str) or not button["text"]:
            raise bad_request(
                'can\'t parse inline keyboard button: Field "text" must be of type String'
            )
        kinds = [k for k in _BUTTON_KINDS if button.get(k) is not None]
        if not kinds:
            raise bad_request("text buttons are unallowed in the inline keyboard")
        if len(kinds) > 1:
            raise bad_request("BUTTON_TYPE_INVALID")
        if "callback_data" in kinds:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
        if "url" in kinds and (
            not button_url_ok(str(button["url"]))
            or (urlsplit(str(button["url"])).hostname or "") in self._refused_url_hosts
        ):
            raise bad_request("BUTTON_URL_INVALID")

    def _flood_subject(self, method: str, params: dict) -> tuple[int, bool] | None:
        """(chat id, is private) of a write flood control applies to, else None."""
        if not self.rate_limits or method not in _CHAT_WRITES:
            return None
        try:
            chat = self._chats.get(int(params.get("chat_id")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if chat is None or chat.migrated_to is not None:
            return None  # refused by the method itself
        return chat.chat["id"], chat.is_private

    def _topic(self, chat: _Chat, params: dict, for_send: bool = False) -> dict | None:
        thread_id = self._int_param(params, "message_thread_id", required=not for_send)
        if thread_id is None:
            return None
        if not chat.chat.get("is_forum"):
            if for_send:
                raise bad_request("message thread not found")
            raise bad_request("the chat is not a forum")
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise bad_request("message thread not found")
        return topic

    def _need_topic_rights(self, chat: _Chat, creating: bool, topic: dict | None = None) -> None:
        if not chat.chat.get("is_forum"):
            raise bad_request("the chat is not a forum")
        if topic is not None and topic["created_by_bot"]:
            return
        member = chat.bot_member
        allowed = member["status"] == "creator" or (
            member["status"] == "administrator" and member.get("can_manage_topics")
        )
        if not allowed:
            raise bad_request(
                "not enough rights to create a topic"
                if creating
                else "not enough rights to manage topics"
            )

    def _edit_target(self, params: dict) -> tuple[_Chat, dict]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # inline messages are not emulated
        chat = self._resolve_chat(params)
        message_id = self._int_param(params, "message_id")
        message = chat.messages.get(message_id)  # type: ignore[arg-type]
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"] or "text" not in message:
            raise bad_request("message can't be edited")
        return chat, message

    @staticmethod
    def _scope_key(scope: Any, language_code: Any) -> str:
        if isinstance(scope, str):
            scope = json.loads(scope) if scope else None
        scope = _drop_none(scope or {"type": "default"})
        return json.dumps([scope, language_code or ""], sort_keys=True)

    # ------------------------------------------------------- Bot API: basics

    async def getMe(self, params: dict) -> dict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def close(self, params: dict) -> bool:
        return True

    async def logOut(self, params: dict) -> bool:
        return True

    # ------------------------------------------------------ Bot API: updates

    async def getUpdates(self, params: dict) -> list[dict]:
        if self._webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = self._int_param(params, "offset", required=False) or 0
        limit = max(1, min(100, self._int_param(params, "limit", required=False) or 100))
        timeout = max(0, self._int_param(params, "timeout", required=False) or 0)
        if "allowed_updates" in params and params["allowed_updates"] is not None:
            allowed = params["allowed_updates"]
            self._allowed_updates = list(
                json.loads(allowed) if isinstance(allowed, str) else allowed
            )
        if offset > 0:
            # an offset confirms every update below it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, POLL_CONFLICT)
            if self._webhook is not None:
                raise ApiError(409, WEBHOOK_CONFLICT)
            ready = [u for u in self._updates if self._wants(u)][:limit]
            remaining = deadline - loop.time()
            if ready or remaining <= 0 or self._closed:
                return copy.deepcopy(ready)
            await _CHANGES.wait(remaining)

    async def setWebhook(self, params: dict) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self.deleteWebhook(params)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname not in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            raise bad_request("bad webhook: the sandbox delivers only to loopback http(s) URLs")
        secret = params.get("secret_token")
        if secret is not None and secret != "" and not _SECRET_RE.match(str(secret)):
            raise bad_request("secret token contains unallowed characters")
        max_connections = self._int_param(params, "max_connections", required=False) or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("invalid max_connections specified")
        if params.get("allowed_updates") is not None:
            allowed = params["allowed_updates"]
            self._allowed_updates = list(
                json.loads(allowed) if isinstance(allowed, str) else allowed
            )
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {
            "url": url,
            "secret_token": str(secret) if secret else None,
            "max_connections": max_connections,
        }
        self._webhook_error = None
        self._ensure_webhook_worker()
        return True

    async def deleteWebhook(self, params: dict) -> bool:
        self._webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def getWebhookInfo(self, params: dict) -> dict:
        info: dict = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_error:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    def _ensure_webhook_worker(self) -> None:
        if any(t.get_name() == "sandbox-webhook" and not t.done() for t in self._tasks):
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver_webhook(), name="sandbox-webhook"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_webhook(self) -> None:
        attempts = 0
        while self._webhook is not None and not self._closed:
            ready = [u for u in self._updates if self._wants(u)]
            if not ready:
                self._updates.clear()  # unwanted types are never delivered
                await _CHANGES.wait(1.0)
                continue
            update = ready[0]
            hook = self._webhook
            headers = {"Content-Type": "application/json"}
            if hook["secret_token"]:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            if self._http is None or self._http.closed:
                self._http = aiohttp.ClientSession()
            error = None
            try:
                async with self._http.post(
                    hook["url"],
                    data=json.dumps(update),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if not 200 <= resp.status < 300:
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"Connection failed: {exc.__class__.__name__}"
            attempts += 1
            if error is None or attempts >= 3:
                # delivered, or retried and then dropped like Telegram does
                if error is not None:
                    self._webhook_error = (int(time.time()), error)
                self._updates = [u for u in self._updates if u["update_id"] > update["update_id"]]
                attempts = 0
                self._changed()
            else:
                self._webhook_error = (int(time.time()), error)
                await asyncio.sleep(0.2 * attempts)  # backoff between retries

    async def aclose(self) -> None:
        """Stop background work and release long polls."""
        self._closed = True
        self._changed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.close()

    # ----------------------------------------------------- Bot API: messages

    async def sendMessage(self, params: dict) -> dict:
        chat = self._resolve_chat(params)
        topic = self._topic(chat, params, for_send=True)
        text, entities = self._parse_text(params)
        markup = self._parse_markup(params)
        thread_id = topic["id"] if topic else None
        reply_to = self._reply_target(chat, params, thread_id)
        if reply_to is not None and thread_id is None:
            thread_id = reply_to.get("message_thread_id")  # replies stay in their topic
            topic = chat.topics.get(thread_id) if thread_id else None
        if topic is not None and topic["closed"]:
            raise bad_request("TOPIC_CLOSED")
        message = self._new_message(chat, self.bot_user, thread_id=thread_id)
        message["text"] = text
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        self._set_reply(chat, message, reply_to)
        message["html"] = str(params["text"])
        self._store(chat, message)
        return self._public(message)

    def _reply_target(self, chat: _Chat, params: dict, thread_id: int | None) -> dict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, str) and reply:
            reply = json.loads(reply)
        if reply:
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply"))
            if reply.get("chat_id") not in (None, chat.chat["id"]):
                raise bad_request("message to be replied not found")  # cross-chat: not emulated
        else:
            message_id = params.get("reply_to_message_id")
            allow = bool(params.get("allow_sending_without_reply"))
        if message_id is None or message_id == "":
            return None
        target = chat.messages.get(int(message_id))
        wrong_thread = (
            target is not None
            and thread_id is not None
            and target.get("message_thread_id") != thread_id
        )
        if target is None or wrong_thread:
            if allow and not wrong_thread:
                return None
            raise bad_request("message to be replied not found")
        return target

    async def editMessageText(self, params: dict) -> dict:
        _, message = self._edit_target(params)
        text, entities = self._parse_text(params)
        markup = self._parse_markup(params)  # omitted markup removes the keyboard
        same = (
            text == message["text"]
            and entities == message.get("entities", [])
            and markup == message.get("reply_markup")
        )
        if same:
            raise bad_request(NOT_MODIFIED)
        message["text"] = text
        message["html"] = str(params["text"])
        self._set_entities_and_markup(message, entities, markup)
        return self._public(message)

    async def editMessageReplyMarkup(self, params: dict) -> dict:
        _, message = self._edit_target(params)
        markup = self._parse_markup(params)
        if markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        self._set_entities_and_markup(message, message.get("entities", []), markup)
        return self._public(message)

    def _set_entities_and_markup(self, message: dict, entities: list, markup: dict | None) -> None:
        message.pop("entities", None)
        message.pop("reply_markup", None)
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        message["edit_count"] += 1
        self._changed()

    async def deleteMessage(self, params: dict) -> bool:
        chat = self._resolve_chat(params)
        message_id = self._int_param(params, "message_id")
        message = chat.messages.get(message_id)  # type: ignore[arg-type]
        if message is None:
            raise bad_request("message to delete not found")
        others = message["from"]["id"] != self.bot_user["id"]
        can_delete = chat.bot_member["status"] == "creator" or chat.bot_member.get(
            "can_delete_messages"
        )
        if others and not chat.is_private and not can_delete:
            raise bad_request("message can't be deleted")
        del chat.messages[message_id]  # type: ignore[arg-type]
        return True

    async def answerCallbackQuery(self, params: dict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query = self._queries.get(query_id)
        now = time.monotonic()
        if (
            query is None
            or query["answer"] is not None
            or now - query["pressed_at"] > self.callback_answer_window
        ):
            self._refused_answers += 1
            raise bad_request(QUERY_TOO_OLD)
        query["answer"] = {
            k: params[k]
            for k in ("text", "show_alert", "url", "cache_time")
            if params.get(k) is not None
        }
        return True

    # -------------------------------------------------------- Bot API: chats

    async def getChat(self, params: dict) -> dict:
        chat = self._resolve_chat(params, writing=False)
        info = {
            **chat.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        return info

    async def getChatMember(self, params: dict) -> dict:
        chat = self._resolve_chat(params, writing=False)
        user_id = self._int_param(params, "user_id")
        if user_id == self.bot_user["id"]:
            return copy.deepcopy(chat.bot_member)
        member = chat.members.get(user_id)  # type: ignore[arg-type]
        if member is not None:
            return copy.deepcopy(member)
        user = self._users.get(user_id)  # type: ignore[arg-type]
        if user is None:
            raise bad_request("user not found")
        return {"status": "left", "user": dict(user)}

    async def getChatAdministrators(self, params: dict) -> list[dict]:
        chat = self._resolve_chat(params, writing=False)
        admins = [
            copy.deepcopy(m)
            for m in chat.members.values()
            if m["status"] in ("administrator", "creator")
        ]
        if params.get("return_bots") and chat.bot_member["status"] == "administrator":
            admins.append(copy.deepcopy(chat.bot_member))
        return admins

    # ----------------------------------------------------- Bot API: commands

    async def setMyCommands(self, params: dict) -> bool:
        commands = params.get("commands")
        if isinstance(commands, str):
            commands = json.loads(commands)
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        clean = []
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not _COMMAND_RE.match(name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name, "description": description})
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = clean
        return True

    async def getMyCommands(self, params: dict) -> list[dict]:
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    async def deleteMyCommands(self, params: dict) -> bool:
        key = self._scope_key(params.get("scope"), params.get("language_code"))
        self._commands.pop(key, None)
        return True

    # ------------------------------------------------------- Bot API: topics

    async def createForumTopic(self, params: dict) -> dict:
        chat = self._resolve_chat(params)
        self._need_topic_rights(chat, creating=True)
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_INVALID")
        color = self._int_param(params, "icon_color", required=False) or _DEFAULT_ICON_COLOR
        # the topic id is the id of its "topic created" service message
        service = self._new_message(chat, self.bot_user)
        thread_id = service["message_id"]
        service.update(
            message_thread_id=thread_id,
            is_topic_message=True,
            forum_topic_created={"name": name, "icon_color": color},
        )
        self._store(chat, service)
        topic = {
            "id": thread_id,
            "name": name,
            "closed": False,
            "icon_color": color,
            "icon_custom_emoji_id": params.get("icon_custom_emoji_id") or None,
            "created_by_bot": True,
        }
        chat.topics[thread_id] = topic
        result = {"message_thread_id": thread_id, "name": name, "icon_color": color}
        if topic["icon_custom_emoji_id"]:
            result["icon_custom_emoji_id"] = topic["icon_custom_emoji_id"]
        return result

    def add_topic(self, chat_id: int, name: str, icon_color: int = _DEFAULT_ICON_COLOR) -> int:
        """A topic created by a person (the bot needs can_manage_topics to manage it)."""
        chat = self._chat_state(chat_id)
        if not chat.chat.get("is_forum"):
            raise ValueError(f"chat {chat_id} is not a forum")
        service = self._new_message(chat, {"id": 1, "is_bot": False, "first_name": "Admin"})
        thread_id = service["message_id"]
        service.update(
            message_thread_id=thread_id,
            is_topic_message=True,
            forum_topic_created={"name": name, "icon_color": icon_color},
        )
        self._store(chat, service)
        chat.topics[thread_id] = {
            "id": thread_id,
            "name": name,
            "closed": False,
            "icon_color": icon_color,
            "icon_custom_emoji_id": None,
            "created_by_bot": False,
        }
        return thread_id

    async def editForumTopic(self, params: dict) -> bool:
        chat = self._resolve_chat(params)
        topic = self._topic(chat, params)
        self._need_topic_rights(chat, creating=False, topic=topic)
        assert topic is not None
        name = params.get("name")
        emoji = params.get("icon_custom_emoji_id")
        if name is not None and not 1 <= len(str(name)) <= 128:
            raise bad_request("TOPIC_TITLE_INVALID")
        changed = (name is not None and name != topic["name"]) or (
            emoji is not None and (emoji or None) != topic["icon_custom_emoji_id"]
        )
        if not changed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        if name is not None:
            topic["name"] = str(name)
        if emoji is not None:
            topic["icon_custom_emoji_id"] = emoji or None
        return True

    async def closeForumTopic(self, params: dict) -> bool:
        return self._set_topic_closed(params, closed=True)

    async def reopenForumTopic(self, params: dict) -> bool:
        return self._set_topic_closed(params, closed=False)

    def _set_topic_closed(self, params: dict, closed: bool) -> bool:
        chat = self._resolve_chat(params)
        topic = self._topic(chat, params)
        self._need_topic_rights(chat, creating=False, topic=topic)
        assert topic is not None
        if topic["closed"] == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic["closed"] = closed
        return True
