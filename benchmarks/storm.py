"""Delivery under load, against the real bot process: webhook -> sendMessage latency with
pacing off, a storm into one supergroup with Telegram's flood control on, and the bot's
memory with the storm's alerts open.

    ./dev bench storm [--quick] [--alerts N] [--groups G] [--per-group K] [--speed S]
                      [--cap SECONDS] [--backlog B] [--load-seconds T]
                      [--only latency|storm|starvation]

`python -m bot run` runs as its own process on a fresh SQLite file (so its RSS is its
own), against the project's Telegram emulator served over HTTP from this process, which
also sends the webhooks. Measures, each printed next to its target:

a) N alerts (default 1,000) in N groups, posted one after another (each POST after the
   previous one's 200, not after its card), pacing off: webhook POST -> the card's
   sendMessage at the emulator, p50/p99/worst. The floor is the emulator's own round trip
   for a bare sendMessage, measured in the same run; the p50 is split at the card's outbox
   row (POST -> row, row -> sendMessage).
b) G groups of K alerts (default 100 x 100) posted at once (8 senders) into one
   supergroup, default pacing, the emulator answering 429 over Telegram's limits: the
   429s, seconds until every incident's id appears in some message the chat was sent
   (a card, a digest), chat writes per minute, and, while the outbox still holds writes
   for the chat, once per group window an Ack press (-> answerCallbackQuery, -> the card
   edit) and a /whoami (-> its answer).
c) the bot's RSS with the storm's alerts open (and at start, for comparison).
d) delivery's send rate while webhooks arrive, against its rate with none (pacing off):
   B new cards (default 300) queued while the emulator holds sendMessage and analysed,
   then let go, idle or while wrk (an aiohttp client without it) posts 1-alert payloads
   into one growing group from 1 or 8 senders for T seconds (default 5); idle before and
   after, the ratios against their median.

`--speed S` divides every period of the limits (the emulator's and the bot's pacing, and
STORM_BACKLOG) by S, so a storm's minutes take seconds; times that pacing sets are then
also shown multiplied back by S. `--quick` is a smoke run: 200 alerts, 20 x 20, speed 10,
a backlog of 100 and 3 s of load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import aiohttp

from benchmarks.common import ALICE, BOB, CHAT, SAMPLE
from benchmarks.ingest_throughput import Load, client_load, wrk_load
from sandbox.emulator import FloodLimits, wait_for
from sandbox.server import RunningEmulator, start_emulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bot_process import BotProcess, free_port

SIDE_CHAT = -1001000000999  # the floor's bare sendMessages go here, away from the bot's chat
WRITES = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
          "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic"}
INCIDENT_ID = re.compile(r"INC-[0-9A-Z]{6}")
GROUP_NAME = re.compile(r"svc-(\d{5})")
SENDERS = 8  # concurrent webhook senders in the storm, as Alertmanager's parallel groups
GROUP_WINDOW = 60.0  # Telegram: at most 20 writes to a group in any 60 s
GROUP_RATE = 20


# ------------------------------------------------------------------ the bot under test


def memory_mb(bot: BotProcess) -> tuple[float, float]:
    """(resident now, resident at its highest) of the bot process, in MB."""
    assert bot.proc is not None
    fields = {}
    for line in Path(f"/proc/{bot.proc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def outbox_waiting(bot: BotProcess) -> int:
    """Rows for the chat not yet sent (read from outside, as an operator's sqlite3 would)."""
    return int(bot.rows("SELECT COUNT(*) FROM outbox WHERE chat_id = ? "
                        "AND state IN ('pending', 'sending')", (CHAT,))[0][0])


@asynccontextmanager
async def bot_against_emulator(env: dict[str, str]) -> AsyncIterator[tuple[BotProcess,
                                                                           RunningEmulator]]:
    emu = await start_emulator()
    emu.emulator.add_chat(CHAT, title="On-call", admins=[ALICE, BOB])
    emu.emulator.add_chat(SIDE_CHAT, title="Floor", admins=[ALICE])
    with tempfile.TemporaryDirectory() as tmp:
        bot = BotProcess(emu, Path(tmp) / "bot.db", free_port(), Path(tmp))
        try:
            await bot.start(**cast(dict[str, Any], {"LOG_LEVEL": "WARNING", **env}))
            yield bot, emu
        finally:
            with contextlib.suppress(Exception):
                await bot.terminate()
            await emu.close()


# ------------------------------------------------------------------ payloads


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def group_payload(i: int, size: int = 1, severity: str = "warning") -> dict[str, Any]:
    """The sample crash loop as group i (its own namespace and deployment) of `size` pods."""
    data = sample()
    template = data["alerts"][0]
    name = f"svc-{i:05d}"
    data["groupKey"] = f'{{}}/{{}}:{{alertname="KubePodCrashLooping", namespace="{name}"}}'
    data["groupLabels"] = {"alertname": "KubePodCrashLooping", "namespace": name}
    data["commonLabels"].update(namespace=name, deployment=name, severity=severity)
    alerts = []
    for j in range(size):
        alert = copy.deepcopy(template)
        alert["labels"].update(namespace=name, deployment=name, pod=f"{name}-{j:04d}",
                               severity=severity)
        alert["fingerprint"] = f"{i:08x}{j:08x}"
        alerts.append(alert)
    data["alerts"] = alerts
    return data


async def post(http: aiohttp.ClientSession, bot: BotProcess, body: bytes) -> int:
    async with http.post(bot.url + "/alerts/alertmanager", data=body,
                         headers={"Content-Type": "application/json"}) as resp:
        await resp.read()
        return resp.status


# ------------------------------------------------------------------ measures


@dataclass
class Row:
    measure: str
    value: str
    target: str
    met: bool | None  # None: no target
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # context printed above the table

    def add(self, measure: str, value: str, target: str = "", met: bool | None = None,
            note: str = "") -> None:
        self.rows.append(Row(measure, value, target, met, note))


def pct(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule (p99 of 1,000 is the 990th)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


async def floor(emu: RunningEmulator, bot: BotProcess, card: dict[str, Any], n: int
                ) -> tuple[float, float]:
    """Medians of the emulator's own round trip for a bare sendMessage of `card` (the text
    and keyboard of a card the bot sent) and of the bot's for GET /healthz, each from this
    process over a kept-alive connection."""
    url = f"{emu.base_url}/bot{emu.emulator.token}/sendMessage"
    params = {k: card[k] for k in ("text", "parse_mode", "reply_markup", "link_preview_options")
              if k in card}
    sends, health = [], []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.post(url, json={**params, "chat_id": SIDE_CHAT}) as r:
                await r.read()
            sends.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            async with http.get(bot.url + "/healthz") as r:
                await r.read()
            health.append(time.perf_counter() - t0)
    return statistics.median(sends), statistics.median(health)


async def import_floor_mb() -> float:
    """Resident memory of a Python process that only imports aiogram (the bot's client
    library), the floor under the bot's own memory."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import aiogram, resource; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return int(out) / 1024


def chat_writes(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.emulator.calls() if c["method"] in WRITES
            and str(c["params"].get("chat_id")) == str(CHAT)]


def card_queued(bot: BotProcess) -> dict[int, float]:
    """When each group's first card row was queued (unix time), by group number."""
    rows = bot.rows("SELECT i.namespace, MIN(o.created_at) FROM outbox o JOIN incidents i "
                    "ON i.id = o.incident_id WHERE o.kind = 'card' GROUP BY i.id")
    return {int(m.group(1)): datetime.fromisoformat(at).timestamp() for ns, at in rows
            if (m := GROUP_NAME.fullmatch(str(ns)))}


async def latency(n: int, out: Results) -> None:
    """(a): n alerts in n groups, one POST after another, pacing off."""
    env = {"TELEGRAM_PACING": "false", "FIRST_CARD_WAIT": "0"}
    async with bot_against_emulator(env) as (bot, emu):
        bodies = [json.dumps(group_payload(i)).encode() for i in range(n)]
        posted: list[float] = []
        async with aiohttp.ClientSession() as http:
            started = time.time()
            for body in bodies:
                posted.append(time.time())
                status = await post(http, bot, body)
                assert status == 200, status
            ingested = time.time() - started

        first: dict[int, float] = {}
        seen = 0

        def sent() -> dict[int, float]:
            # Only the calls made since the last look, and only every interval: a check on
            # every call, over every call, would slow the emulator it measures.
            nonlocal seen
            for c in emu.emulator.calls("sendMessage", start=seen):
                m = GROUP_NAME.search(str(c["params"].get("text", ""))) if c["ok"] else None
                if m and str(c["params"].get("chat_id")) == str(CHAT):
                    first.setdefault(int(m.group(1)), c["at"])
            seen = emu.emulator.call_count()
            return first

        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: len(sent()) >= n, 120, interval=0.5, on_change=False)
        sent()
        card = next((c["params"] for c in emu.emulator.calls("sendMessage") if c["ok"]
                     and str(c["params"].get("chat_id")) == str(CHAT)), {"text": "-"})
        send_floor, health_floor = await floor(emu, bot, card, 50)
        queued = card_queued(bot)
    waits = [first[i] - posted[i] for i in range(n) if i in first]
    # Where the time goes: POST -> its card's outbox row (the webhook's commit), and that
    # row -> sendMessage (delivery's queue).
    ingest = [queued[i] - posted[i] for i in range(n) if i in queued]
    deliver = [first[i] - queued[i] for i in range(n) if i in first and i in queued]
    missing = n - len(waits)
    out.lines.append(
        f"a) {n} alerts in {n} groups, one POST after another ({n / ingested:,.0f} POST/s), "
        f"pacing off; floor: the emulator's round trip for a bare sendMessage of a card "
        f"{ms(send_floor)}, the bot's for GET /healthz {ms(health_floor)}"
        + (f"; {missing} cards not sent within 120 s" if missing else ""))
    if not waits:
        out.add("a) webhook -> sendMessage", "no card sent", "", False)
        return
    p50, p99, worst = statistics.median(waits), pct(waits, 0.99), max(waits)
    split = (f"; POST -> outbox row p50 {ms(statistics.median(ingest))}, row -> sendMessage "
             f"p50 {ms(statistics.median(deliver))}" if ingest and deliver else "")
    out.add("a) webhook -> sendMessage p50", ms(p50), "<= 20 ms", p50 <= 0.020,
            f"{p50 / send_floor:,.0f}x floor" + split)
    out.add("a) webhook -> sendMessage p99", ms(p99), "<= 100 ms", p99 <= 0.100,
            f"{p99 / send_floor:,.0f}x floor")
    out.add("a) webhook -> sendMessage worst", ms(worst), "", None,
            f"{worst / send_floor:,.0f}x floor")


def ack_data(message: dict[str, Any]) -> str | None:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for b in row:
            if str(b.get("callback_data", "")).startswith("c1:") and b["text"].endswith("Ack"):
                return str(b["callback_data"])
    return None


def replied_to(call: dict[str, Any]) -> int | None:
    reply = call["params"].get("reply_parameters")
    if isinstance(reply, str):
        reply = json.loads(reply)
    return int(reply["message_id"]) if reply else None


@dataclass
class People:
    """What people waited for during the storm, in seconds."""

    answers: list[float] = field(default_factory=list)
    edits: list[float] = field(default_factory=list)
    commands: list[float] = field(default_factory=list)
    refused: int = 0  # presses answered 'out of date' (no edit to wait for)
    late: int = 0  # waits cut at the cap


class FirstSeen:
    """When each incident id first appeared in an accepted write to the chat, read from
    the calls made since the last look (copying every call of the storm at each look took
    the emulator's process from the bot it answers)."""

    def __init__(self, emu: RunningEmulator) -> None:
        self.emu = emu
        self.seen: dict[str, float] = {}
        self._looked = 0

    def __call__(self) -> dict[str, float]:
        em = self.emu.emulator
        for c in em.calls(start=self._looked):
            if c["ok"] and c["method"] in WRITES and str(c["params"].get("chat_id")) == str(CHAT):
                for inc in INCIDENT_ID.findall(str(c["params"].get("text", ""))):
                    self.seen.setdefault(inc, c["at"])
        self._looked = em.call_count()
        return self.seen


def pressable(emu: RunningEmulator, stored: set[int], pressed: set[int]) -> dict[str, Any] | None:
    """A card not pressed yet that shows its proposal."""
    return next((m for m in emu.emulator.messages(CHAT) if ack_data(m)
                 and "Analyzing" not in m["text"] and m["message_id"] in stored
                 and m["message_id"] not in pressed), None)


def call_since(emu: RunningEmulator, start: int, method: str,
               match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    return next((c for c in emu.emulator.calls(method, start=start) if match(c)), None)


# The waits below look every interval, not at every change of the emulator: what they
# measure is the time the emulator stamped on the call, and a look at every change would
# run in the emulator's process while it answers the bot.


async def press_once(emu: RunningEmulator, card: dict[str, Any], people: People,
                     deadline: float) -> None:
    """Ack the card; wait for the answer and the edit."""
    em = emu.emulator
    mid = card["message_id"]
    start = em.call_count()
    t0 = time.time()
    qid = em.press_button(CHAT, mid, ack_data(card) or "", ALICE)
    try:
        answer = await wait_for(lambda: call_since(
            emu, start, "answerCallbackQuery",
            lambda c: c["params"].get("callback_query_id") == qid),
            max(1, deadline - t0), interval=0.05, on_change=False)
    except TimeoutError:
        people.late += 1
        return
    people.answers.append(answer["at"] - t0)
    if not str((em.callback_answer(qid) or {}).get("text") or "").startswith("Acknowledged"):
        people.refused += 1  # the card's latest state was not shown yet: out of date
        return
    try:
        edit = await wait_for(lambda: call_since(
            emu, start, "editMessageText",
            lambda c: c["ok"] and str(c["params"].get("message_id")) == str(mid)
            and "Acknowledged" in c["params"]["text"]),
            max(1, deadline - time.time()), interval=0.2, on_change=False)
    except TimeoutError:
        people.late += 1
        return
    people.edits.append(edit["at"] - t0)


async def ask_once(emu: RunningEmulator, people: People, deadline: float) -> None:
    em = emu.emulator
    start = em.call_count()
    t0 = time.time()
    sent = em.user_sends(CHAT, BOB, "/whoami")
    try:
        reply = await wait_for(lambda: call_since(
            emu, start, "sendMessage",
            lambda c: c["ok"] and replied_to(c) == sent["message_id"]),
            max(1, deadline - t0), interval=0.2, on_change=False)
    except TimeoutError:
        people.late += 1
        return
    people.commands.append(reply["at"] - t0)


def storm_env(speed: float) -> dict[str, str]:
    """The bot's settings for the storm: pacing on (the test harness's bot process runs
    without it, which here would measure an unpaced bot against the flood control) at the
    default limits, every period divided by `speed`."""
    env = {"TELEGRAM_PACING": "true"}
    if speed != 1:
        window = GROUP_WINDOW / speed
        env.update(TELEGRAM_GROUP_RATE=f"20/{window:g}", TELEGRAM_GROUP_BURST=f"3/{3 / speed:g}",
                   TELEGRAM_PRIVATE_RATE=f"3/{3 / speed:g}",
                   TELEGRAM_GLOBAL_RATE=f"30/{1 / speed:g}", STORM_BACKLOG=f"{60 / speed:g}")
    return env


async def storm(groups: int, per_group: int, speed: float, cap: float, out: Results) -> None:
    """(b) and (c): groups x per_group alerts at once into one supergroup."""
    window = GROUP_WINDOW / speed
    env = storm_env(speed)
    async with bot_against_emulator(env) as (bot, emu):
        em = emu.emulator
        idle_rss, _ = memory_mb(bot)
        aiogram_rss = await import_floor_mb()
        em.set_rate_limits(True, FloodLimits().scaled(speed))
        bodies = [json.dumps(group_payload(
            g, per_group, "critical" if g % 20 == 0 else "warning")).encode()
            for g in range(groups)]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)

        async def sender(http: aiohttp.ClientSession) -> None:
            while not queue.empty():
                status = await post(http, bot, queue.get_nowait())
                assert status == 200, status

        started = time.time()
        deadline = started + cap
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(sender(http) for _ in range(SENDERS)))
        ingested = time.time() - started
        incidents = {r[0] for r in bot.rows("SELECT id FROM incidents")}
        open_alerts = int(bot.rows("SELECT COUNT(*) FROM alerts WHERE status = 'firing'")[0][0])

        people = People()
        stored: set[int] = set()
        pressed: set[int] = set()
        tasks: set[asyncio.Task[Any]] = set()
        next_turn = time.time()
        drained_at: float | None = None
        first_seen = FirstSeen(emu)
        while time.time() < deadline:
            waiting = outbox_waiting(bot)
            seen = first_seen()
            if waiting == 0 and incidents <= seen.keys() and not tasks:
                drained_at = time.time()
                break
            if waiting and time.time() >= next_turn:
                # People act while the outbox still holds the storm's writes; a window whose
                # cards show no proposal yet gets its press as soon as one does.
                stored.update(int(r[0]) for r in bot.rows(
                    "SELECT message_id FROM cards WHERE message_id IS NOT NULL"))
                card = pressable(emu, stored, pressed)
                if card is not None:
                    pressed.add(card["message_id"])
                    for work in (press_once(emu, card, people, deadline),
                                 ask_once(emu, people, deadline)):
                        task = asyncio.create_task(work)
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    next_turn = time.time() + window
            await asyncio.sleep(0.25)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        end_rss, peak_rss = memory_mb(bot)
        seen = first_seen()
        writes = chat_writes(emu)
    limited = sum(1 for c in writes if c["error_code"] == 429)
    ok = sorted(c["at"] for c in writes if c["ok"])
    sends = sum(1 for c in writes if c["ok"] and c["method"] == "sendMessage")
    visible = [seen[i] - started for i in incidents if i in seen]
    ended = (drained_at or time.time()) - started
    scale = "; {} at Telegram's pace" if speed != 1 else ""
    out.lines.append(
        f"b) {groups} groups x {per_group} alerts ({groups * per_group:,} alerts, "
        f"{len(incidents)} incidents) at once from {SENDERS} senders into one supergroup, "
        f"default pacing, emulator flood control on"
        + (f", every limit's period / {speed:g}" if speed != 1 else "")
        + f"; ingested in {ingested:.1f} s; "
        + (f"outbox drained after {ended:.1f} s" if drained_at
           else f"stopped at the cap ({cap:g} s) with writes still queued"))
    out.add("b) 429 answers", str(limited), "0", limited == 0,
            f"{len(ok)} writes accepted, {sends} of them sendMessage")
    if len(visible) == len(incidents):
        worst = max(visible)
        out.add("b) every incident visible after", f"{worst:.1f} s", "<= 60 s",
                worst * speed <= 60, scale.format(f"{worst * speed:.0f} s").lstrip("; "))
    else:
        out.add("b) every incident visible after", f"> {cap:g} s", "<= 60 s", False,
                f"{len(visible)} of {len(incidents)} visible by then"
                + scale.format(f"> {cap * speed:.0f} s"))
    whole = int((ok[-1] - ok[0]) // window) if ok else 0
    if whole:
        # Over whole group windows from the first write: a shorter span would count the
        # first burst as a rate.
        per_window = sum(1 for t in ok if t < ok[0] + whole * window) / whole
        out.add("b) chat writes per minute", f"{per_window:.1f}", f"<= {GROUP_RATE}", None,
                f"{per_window / GROUP_RATE:.0%} of the group limit, over {whole} whole "
                + (f"windows of {window:g} s" if speed != 1 else "minutes"))
    else:
        out.add("b) chat writes per minute", f"{len(ok)} writes", f"<= {GROUP_RATE}", None,
                "the storm took less than one group window")
    waited(out, "b) press -> answer (median)", people.answers, 0.015, 1,
           f"{people.refused} out of date")
    waited(out, "b) press -> card edit (median)", people.edits, 5, speed,
           f"{people.late} waits cut at the cap")
    waited(out, "b) /whoami -> answer (median)", people.commands, 5, speed, "")
    out.add(f"c) bot RSS, {open_alerts:,} open alerts", f"{end_rss:.0f} MB", "<= 150 MB",
            end_rss <= 150,
            f"peak {peak_rss:.0f} MB; {idle_rss:.0f} MB at start; a process that only "
            f"imports aiogram: {aiogram_rss:.0f} MB")


def waited(out: Results, measure: str, waits: list[float], target: float, speed: float,
           note: str) -> None:
    """A median of what people waited for during the storm; with `speed` above 1 it is
    held against the target at Telegram's pace (the waits pacing sets grow by `speed`)."""
    limit = ms(target) if target < 1 else f"{target:g} s"
    if not waits:
        out.add(measure, "none during the backlog", f"<= {limit}", False, note)
        return
    med = statistics.median(waits)
    at_pace = f"; {ms(med * speed)} at Telegram's pace" if speed != 1 else ""
    out.add(measure, ms(med), f"<= {limit}", med * speed <= target,
            f"{len(waits)} during the backlog, worst {ms(max(waits))}{at_pace}"
            + (f"; {note}" if note else ""))


def backlog_sent(emu: RunningEmulator, first: int, n: int, since: float) -> list[float]:
    """When the first cards of groups first..first+n-1 went out (accepted sendMessage)."""
    sent: dict[int, float] = {}
    for c in emu.emulator.calls("sendMessage"):
        m = GROUP_NAME.search(str(c["params"].get("text", ""))) if c["ok"] else None
        if m and first <= int(m.group(1)) < first + n and c["at"] >= since:
            sent.setdefault(int(m.group(1)), c["at"])
    return sorted(sent.values())


def unsent_cards(bot: BotProcess) -> int:
    return int(bot.rows("SELECT COUNT(*) FROM outbox WHERE kind = 'card' "
                        "AND state IN ('pending', 'sending')")[0][0])


def quiet(bot: BotProcess) -> bool:
    """Nothing left to analyse or to send."""
    return not int(bot.rows(
        "SELECT (SELECT COUNT(*) FROM decisions WHERE state = 'analyzing') + "
        "(SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending'))")[0][0])


async def starvation(backlog: int, seconds: float, out: Results,
                     phases: tuple[int, ...] = (0, 1, 8, 0)) -> None:
    """(d): delivery's send rate while webhooks arrive, against its rate with none, pacing
    off. Each phase (its senders; idle before and after, for the machine's drift) queues
    `backlog` new cards while the emulator holds sendMessage, waits until their analysis is
    done, then lets delivery go, with no load or with wrk senders posting 1-alert payloads of
    new alerts into one growing group (their card edits wait in a lower lane than the
    backlog's new cards, so they do not count)."""
    env = {"TELEGRAM_PACING": "false", "FIRST_CARD_WAIT": "0"}
    use_wrk = shutil.which("wrk") is not None
    load = wrk_load if use_wrk else client_load
    rates: list[tuple[int, float, Load | None]] = []
    async with bot_against_emulator(env) as (bot, emu):
        em = emu.emulator
        async with aiohttp.ClientSession() as http:
            for no, senders in enumerate(phases):
                first = 10_000 + no * backlog
                em.hold("sendMessage")
                for g in range(first, first + backlog):
                    status = await post(http, bot, json.dumps(group_payload(g)).encode())
                    assert status == 200, status
                await wait_for(lambda: int(bot.rows(
                    "SELECT COUNT(*) FROM decisions WHERE state = 'analyzing'")[0][0]) == 0,
                    120, interval=0.2)
                got: Load | None = None
                loading = None
                if senders:
                    with tempfile.TemporaryDirectory() as tmp:
                        loading = asyncio.create_task(load(
                            bot.port, f"load{no}", 1, "grow", senders, seconds, Path(tmp)))
                        await asyncio.sleep(0.5)  # the load is on before delivery goes
                        released = time.time()
                        em.release("sendMessage")
                        got = await loading
                else:
                    released = time.time()
                    em.release("sendMessage")
                    # Polls the bot's file, not the emulator's calls (copying those would
                    # take the emulator's process from it while it answers delivery).
                    with contextlib.suppress(TimeoutError):
                        await wait_for(lambda: unsent_cards(bot) == 0, seconds, interval=0.1)
                ended = time.time()
                times = backlog_sent(emu, first, backlog, released)
                # Over the drain, or over the load when the backlog outlasted it.
                until = times[-1] if len(times) == backlog and times[-1] <= ended else ended
                sent = sum(1 for t in times if t <= until)
                rates.append((senders, sent / (until - released), got))
                await wait_for(lambda: quiet(bot), 300, interval=0.2)
    idle = statistics.median([r for s, r, _ in rates if s == 0])
    out.lines.append(
        f"d) delivery's send rate with webhooks arriving, pacing off: {backlog} new cards "
        f"queued and analysed, then sent while {'wrk' if use_wrk else 'an aiohttp client'} "
        f"posts 1-alert payloads into one growing group for {seconds:g} s; idle rates "
        + ", ".join(f"{r:.0f}/s" for s, r, _ in rates if s == 0))
    out.add("d) delivery, idle", f"{idle:.0f} cards/s", "", None, "median of the idle phases")
    for senders, rate, got in rates:
        if senders:
            ingest = f"; ingest {got.ok / got.seconds:.0f} POST/s" if got else ""
            out.add(f"d) delivery, {senders} sender{'s' if senders > 1 else ''}",
                    f"{rate:.0f} cards/s", "", None, f"{rate / idle:.2f}x idle{ingest}")


def table(out: Results) -> Iterator[str]:
    yield from out.lines
    head = ("measure", "measured", "target", "met", "note")
    rows = [head] + [(r.measure, r.value, r.target,
                      "" if r.met is None else ("yes" if r.met else "NO"), r.note)
                     for r in out.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        yield "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]


async def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench storm")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 alerts, a 20 x 20 storm at speed 10")
    parser.add_argument("--alerts", type=int, help="(a) alerts, one group each (1000)")
    parser.add_argument("--groups", type=int, help="(b) groups in the storm (100)")
    parser.add_argument("--per-group", type=int, help="(b) alerts per group (100)")
    parser.add_argument("--speed", type=float, help="(b) divide the limits' periods (1)")
    parser.add_argument("--cap", type=float, help="(b) give up after this many seconds (900)")
    parser.add_argument("--backlog", type=int, help="(d) cards queued per phase (300)")
    parser.add_argument("--load-seconds", type=float, help="(d) seconds of load per phase (5)")
    parser.add_argument("--only", choices=("latency", "storm", "starvation"))
    args = parser.parse_args()
    quick = args.quick
    alerts = args.alerts or (200 if quick else 1000)
    groups = args.groups or (20 if quick else 100)
    per_group = args.per_group or (20 if quick else 100)
    speed = args.speed or (10.0 if quick else 1.0)
    cap = args.cap or (120.0 if quick else 900.0)
    out = Results()
    if args.only in (None, "latency"):
        await latency(alerts, out)
    if args.only in (None, "storm"):
        await storm(groups, per_group, speed, cap, out)
    if args.only in (None, "starvation"):
        await starvation(args.backlog or (100 if quick else 300),
                         args.load_seconds or (3.0 if quick else 5.0), out)
    print("\n".join(table(out)))


if __name__ == "__main__":
    asyncio.run(main())
