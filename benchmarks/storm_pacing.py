"""A storm into one group with Telegram's flood control on: 429s, the share of the group's
allowed rate used, and how long people wait during the backlog.

    ./dev bench storm_pacing [incidents] [speed] [presses]

`incidents` new incidents (default 100, one alert each) are posted at once into one
group; the emulator answers 429 over Telegram's limits and the bot paces under the same
limits, both with every period divided by `speed` (default 10: a group's minute is 6 s).
While new cards are still waiting, once per group window (up to `presses` times, default
10) Ack is pressed on a card that shows its proposal and /whoami is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from benchmarks.common import ALICE, CHAT, payload_for_group, post, report, running_app
from sandbox.emulator import FloodLimits, wait_for

WRITES = {"sendMessage", "editMessageText", "editMessageReplyMarkup", "createForumTopic",
          "editForumTopic", "closeForumTopic", "reopenForumTopic", "deleteMessage"}


def replied_to(call: dict[str, Any]) -> int | None:
    reply = call["params"].get("reply_parameters")
    if isinstance(reply, str):
        reply = json.loads(reply)
    return int(reply["message_id"]) if reply else None


def is_card(message: dict[str, Any]) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return any(str(b.get("callback_data", "")).startswith("c1:d:") for row in rows for b in row)


def ack_data(message: dict[str, Any]) -> str | None:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for b in row:
            if b.get("callback_data", "").startswith("c1:") and b["text"].endswith("Ack"):
                return str(b["callback_data"])
    return None


async def main(incidents: int = 100, speed: float = 10.0, presses: int = 10) -> None:
    window = 60 / speed
    async with running_app(
        telegram_pacing=True, telegram_group_rate=f"20/{window}",
        telegram_group_burst=f"3/{3 / speed}", telegram_private_rate=f"3/{3 / speed}",
        telegram_global_rate=f"30/{1 / speed}",
    ) as (app, emu):
        em = emu.emulator
        em.set_rate_limits(True, FloodLimits().scaled(speed))
        started = time.time()
        statuses = await asyncio.gather(*(post(app, payload_for_group(i))
                                          for i in range(incidents)))
        assert set(statuses) == {200}, statuses

        def cards() -> list[dict[str, Any]]:
            """Cards to press: they show their proposal and the bot has stored their id
            (a person does not press within the milliseconds between the two)."""
            return [m for m in em.messages(CHAT) if ack_data(m) and "Analyzing" not in m["text"]
                    and m["message_id"] in stored]

        def backlog_left() -> bool:
            return sum(1 for m in em.messages(CHAT) if is_card(m)) < incidents

        stored: set[int] = set()

        db = app.db
        assert db is not None

        async def refresh_stored() -> None:
            async with db.read() as conn:
                async with conn.execute(
                        "SELECT message_id FROM cards WHERE message_id IS NOT NULL") as cur:
                    stored.update(int(r[0]) for r in await cur.fetchall())

        answers: list[float] = []
        edits: list[float] = []
        commands: list[float] = []
        pressed: set[int] = set()
        refused = 0
        next_press = time.time()
        while backlog_left() and len(answers) < presses:
            if time.time() < next_press:
                with contextlib.suppress(TimeoutError):
                    await em.wait_for(lambda: not backlog_left(), next_press - time.time())
                continue
            await refresh_stored()
            fresh = [m for m in cards() if m["message_id"] not in pressed]
            if not fresh:
                seen = len(em.calls())
                with contextlib.suppress(TimeoutError):  # until the bot calls again
                    await em.wait_for(lambda: len(em.calls()) > seen, 1)  # noqa: B023
                continue
            card = fresh[0]
            mid = card["message_id"]
            pressed.add(mid)
            t0 = time.time()
            qid = em.press_button(CHAT, mid, ack_data(card) or "", ALICE)
            await wait_for(lambda: em.callback_answer(qid) is not None, 15)  # noqa: B023
            toast = (em.callback_answer(qid) or {}).get("text") or ""
            if not toast.startswith("Acknowledged"):
                refused += 1  # a card whose latest state is not shown yet: out of date
                continue
            await wait_for(lambda: "Acknowledged" in em.message(CHAT, mid)["text"],  # noqa: B023
                           60)
            if not backlog_left():
                break  # the edit went out after the backlog: not a press during it
            answer = next(c for c in em.calls("answerCallbackQuery")
                          if c["params"].get("callback_query_id") == qid)
            edit = next(c for c in em.calls("editMessageText") if c["ok"] and c["at"] >= t0
                        and str(c["params"].get("message_id")) == str(mid)
                        and "Acknowledged" in c["params"]["text"])
            next_press = t0 + window  # one press and one command per group window
            answers.append(answer["at"] - t0)
            edits.append(edit["at"] - t0)
            t1 = time.time()
            sent = em.user_sends(CHAT, ALICE, "/whoami")
            await wait_for(lambda: any(
                (m.get("reply_to_message") or {}).get("message_id")
                == sent["message_id"] for m in em.messages(CHAT)), 60)  # noqa: B023
            if backlog_left():
                reply = next(c for c in em.calls("sendMessage") if c["ok"] and c["at"] >= t1
                             and replied_to(c) == sent["message_id"])
                commands.append(reply["at"] - t1)
        await wait_for(lambda: not backlog_left(), 600)
        drained = time.time() - started

        calls = [c for c in em.calls() if c["method"] in WRITES
                 and str(c["params"].get("chat_id")) == str(CHAT)]
        limited = sum(1 for c in calls if c["error_code"] == 429)
        ok = sorted(c["at"] for c in calls if c["ok"])
        whole = int((ok[-1] - ok[0]) // window)
        used = (sum(1 for t in ok if t < ok[0] + whole * window) / (whole * 20)) if whole else 0
        print(f"storm: {incidents} incidents into one group, limits at {speed:g}x "
              f"(a group's 20/min = 20/{window:g}s)")
        print(f"429 answers: {limited}; writes: {len(ok)}; every card out after "
              f"{drained:.1f} s ({drained * speed:.0f} s at Telegram's pace)")
        print(f"group rate used over {whole} whole windows: {used:.1%} of 20/window")
        print(f"presses refused as out of date (not measured): {refused}")
        print(report("press -> answerCallbackQuery (during the backlog)", answers))
        print(report("press -> card edit (during the backlog)", edits))
        print(report("/whoami -> answer (during the backlog)", commands))

if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 100, float(args[1]) if len(args) > 1 else 10.0,
                     int(args[2]) if len(args) > 2 else 10))
