"""Button press -> answerCallbackQuery, and -> the card edit, over 200 presses.

    ./dev bench press_latency
200 incidents each get one Approve press (each press changes state, so each
needs a card edit). Presses are made one after another, each after the
previous one was answered, so the numbers are per-press latency, not queueing.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import ALICE, CHAT, payload_for_group, post, report, running_app
from sandbox.emulator import wait_for


def approve_data(message: dict) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for b in row:
            if "Approve" in b["text"]:
                return b["callback_data"]
    raise KeyError("no Approve")


async def main(n: int = 200) -> None:
    async with running_app() as (app, emu):
        em = emu.emulator
        for i in range(n):
            assert await post(app, payload_for_group(i)) == 200

        def pending_cards() -> list[dict]:
            return [m for m in em.messages(CHAT) if "Awaiting approval" in m["text"]]

        await wait_for(lambda: len(pending_cards()) >= n, 180)
        answers: list[float] = []
        edits: list[float] = []
        for message in pending_cards():
            mid = message["message_id"]
            before = message["edit_count"]
            t0 = time.time()
            qid = em.press_button(CHAT, mid, approve_data(message), ALICE)
            def answered(q: str = qid) -> bool:
                return em.callback_answer(q) is not None

            def edited(m: int = mid, b: int = before) -> bool:
                return bool(em.message(CHAT, m)["edit_count"] > b)

            await wait_for(answered, 15)
            await wait_for(edited, 15)
            answer_at = next(c["at"] for c in reversed(em.calls("answerCallbackQuery"))
                             if c["params"].get("callback_query_id") == qid)
            edit_at = next(c["at"] for c in em.calls("editMessageText")
                           if c["ok"] and c["at"] >= t0
                           and int(c["params"].get("message_id")) == mid)
            answers.append(answer_at - t0)
            edits.append(edit_at - t0)
        print(report("press -> answerCallbackQuery", answers))
        print(report("press -> card edit", edits))


if __name__ == "__main__":
    asyncio.run(main())
