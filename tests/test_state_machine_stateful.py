"""The incident, decision and silence model under every sequence hypothesis finds.

A RuleBasedStateMachine drives the real app (Dispatcher polling the emulator, the alert
webhook over HTTP, delivery, analysis, execution, timers) on a real SQLite file, with a
clock it controls: alerts of two groups fire and resolve and are delivered again (old
bodies included); approvers of each chat and a non-approver press Approve, Reject,
Re-analyze, Ack and Silence on the newest or an older card, with the current or an older
decision id; silences are made by label and by card, expired, and run out as the clock
moves on; approvals expire; the app restarts on the same file. Both groups are routed into
chat A (Alice approves) and chat B (Bob approves), so one incident has a card in each.

After every step, once ingest and delivery have settled:
- a resolved incident has no approvable proposal, and its cards offer none;
- in each chat, an incident is silenced exactly when an active silence made there matches
  every firing alert of it (a resolved one keeps only a silence that is still active);
- no decision ran more than once, and each run was approved by an approver of its chat;
- each card in the emulator (text and keyboard) equals a render of the stored state, one
  message per incident and chat, and an unsent card is one silenced before it was sent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ALICE, BOB, CHAT, MALLORY, Harness, routes_into_two_chats, settings_for
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.app import App
from bot.models import Matcher, Silence
from bot.silences.matching import silence_matches
from bot.telegram.card_loading import card_renderer
from bot.texts import toast
from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator, start_emulator

CHAT_A, CHAT_B = CHAT, -1001000000009
DAVE = {"id": 444, "first_name": "Dave", "username": "dave"}  # APPROVER_IDS: the default route
APPROVER = {CHAT_A: ALICE["id"], CHAT_B: BOB["id"]}
ROUTES = routes_into_two_chats("shop", CHAT_A, CHAT_B)
# A crash loop (rules propose a restart) and a latency alert (a scale-up): both approvable.
GROUPS = ("LabCartCrashLooping", "LabQueueLatencyHigh")
PODS = ("a", "b")
USERS = {"alice": ALICE, "bob": BOB, "mallory": MALLORY}
# Approve, reject, re-analyze, ack, silence 1h; approve twice as often (it is what runs).
PRESSES = ("a", "a", "r", "z", "k", "s")
T_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RESOLVED_TOAST = toast("incident_resolved", "en")
# Examples and steps sized for CI's two noisy cores (about a minute with CI=true).
EXAMPLES, STEPS = 15, 20
SETTLE_EVERY = 0.01  # seconds between looks at the database while waiting for it to settle


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def alert_body(group: str, pod: str, starts: datetime, ends: datetime | None) -> dict[str, Any]:
    """One Alertmanager notification for one alert of the group (firing without `ends`)."""
    labels = {"alertname": group, "namespace": "shop", "pod": pod, "severity": "warning",
              "deployment": group.removeprefix("Lab")[:5].lower()}
    status = "firing" if ends is None else "resolved"
    return {
        "receiver": "opsgate", "status": status, "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}", namespace="shop"}}',
        "groupLabels": {"alertname": group, "namespace": "shop"},
        "commonLabels": labels, "commonAnnotations": {"summary": f"{group} on {pod}"},
        "externalURL": "http://127.0.0.1:19093", "truncatedAlerts": 0,
        "alerts": [{
            "status": status, "labels": labels,
            "annotations": {"summary": f"{group} on {pod}"},
            "startsAt": _iso(starts), "endsAt": _iso(ends) if ends else "0001-01-01T00:00:00Z",
            "generatorURL": f"http://127.0.0.1/prom/{group}", "fingerprint": f"{group}-{pod}",
        }],
    }


def buttons(message: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [[{k: v for k, v in b.items() if k in ("text", "callback_data", "url")} for b in row]
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])]


class IncidentModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="opsgate-stateful-"))
        (self.dir / "routes.toml").write_text(ROUTES)
        self.now = T_START
        self.episodes: dict[tuple[str, str], tuple[datetime, bool]] = {}  # start, firing
        self.bodies: list[dict[str, Any]] = []
        self.incidents: dict[str, list[str]] = {g: [] for g in GROUPS}
        self.runs: Counter[int] = Counter()
        self.emu: RunningEmulator = self.run(start_emulator())
        self.emu.emulator.add_chat(CHAT_A, title="On-call", admins=[ALICE])
        self.emu.emulator.add_chat(CHAT_B, title="Shop watch", admins=[BOB])
        self.h = self.run(self._start())

    # ------------------------------------------------------------ driving

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

    def clock(self) -> datetime:
        return self.now

    async def _start(self) -> Harness:
        app = App(settings_for(self.emu, self.dir / "opsgate.db", routes_path=str(
            self.dir / "routes.toml"), approver_ids=[DAVE["id"]]),
                  clock=self.clock)
        await app.start(poll=True)
        h = Harness(app, self.emu, CHAT_A)
        executor = h.pipeline.execution.executor
        runs = self.runs

        class Counting:
            async def run(self, action: Any, *, incident_id: str | None = None,
                          decision_id: int | None = None) -> Any:
                runs[decision_id or 0] += 1
                return await executor.run(action, incident_id=incident_id,
                                          decision_id=decision_id)

        h.pipeline.execution.executor = Counting()
        await h.settled(interval=SETTLE_EVERY)
        return h

    async def _post(self, body: dict[str, Any]) -> None:
        status, result = await self.h.post("/alerts/alertmanager", body)
        assert status == 200, result
        group = body["groupLabels"]["alertname"]
        self.incidents[group] += [i for i in result["opened"] if i not in self.incidents[group]]
        await self.h.settled(interval=SETTLE_EVERY)

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.dir / "opsgate.db")
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def teardown(self) -> None:
        try:
            self.run(self.h.app.stop())
            self.run(self.emu.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ rules

    @initialize(pods=st.sampled_from([("a",), ("a", "b")]))
    def both_groups_fire(self, pods: tuple[str, ...]) -> None:
        for group in GROUPS:
            for pod in pods:
                self.fire(group, pod)

    @rule(group=st.sampled_from(GROUPS), pod=st.sampled_from(PODS))
    def fire(self, group: str, pod: str) -> None:
        start, firing = self.episodes.get((group, pod), (None, False))
        if start is None or not firing:
            # A new episode; microseconds keep two episodes of one minute apart.
            start = self.now + timedelta(microseconds=len(self.bodies) + 1)
        self.episodes[(group, pod)] = (start, True)
        body = alert_body(group, pod, start, None)
        self.bodies.append(body)
        self.run(self._post(body))

    @precondition(lambda self: any(firing for _, firing in self.episodes.values()))
    @rule(group=st.sampled_from(GROUPS), pod=st.sampled_from(PODS))
    def resolve(self, group: str, pod: str) -> None:
        start, firing = self.episodes.get((group, pod), (None, False))
        if start is None or not firing:
            return
        self.episodes[(group, pod)] = (start, False)
        body = alert_body(group, pod, start, self.now)
        self.bodies.append(body)
        self.run(self._post(body))

    @precondition(lambda self: bool(self.bodies))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """Alertmanager repeats a notification: the last one, or an older one late."""
        if self.bodies:
            index = data.draw(st.integers(-len(self.bodies), -1), label="body")
            self.run(self._post(self.bodies[index]))

    # One argument each: hypothesis tries rules with fewer arguments first, and these are
    # the presses that move decisions.
    @rule(press=st.tuples(st.sampled_from(PRESSES), st.sampled_from(GROUPS),
                          st.sampled_from((CHAT_A, CHAT_B)), st.booleans(), st.booleans()))
    def approver_presses(self, press: tuple[str, str, int, bool, bool]) -> None:
        act, group, chat, older_card, older_decision = press
        self.press(act, "approver here", group, chat, older_card, older_decision)

    @rule(press=st.tuples(st.sampled_from(PRESSES),
                          st.sampled_from(("approver elsewhere", "mallory")),
                          st.sampled_from(GROUPS), st.sampled_from((CHAT_A, CHAT_B)),
                          st.booleans(), st.booleans()))
    def someone_else_presses(self, press: tuple[str, str, str, int, bool, bool]) -> None:
        self.press(*press)

    def press(self, act: str, who: str, group: str, chat: int, older_card: bool,
              older_decision: bool) -> None:
        """A press on a card as shown, or as an older copy of it (force: it may not carry
        that button any more), with the current decision id or the incident's first."""
        if not self.incidents[group]:
            return
        user = {"approver here": USERS["alice" if chat == CHAT_A else "bob"],
                "approver elsewhere": USERS["bob" if chat == CHAT_A else "alice"],
                "mallory": MALLORY}[who]
        inc = self.incidents[group][0 if older_card else -1]
        card = self.rows("SELECT message_id FROM cards WHERE incident_id = ? AND chat_id = ?",
                         inc, chat)
        if not card or card[0][0] is None:
            return
        decisions = [r[0] for r in self.rows(
            "SELECT id FROM decisions WHERE incident_id = ? ORDER BY id", inc)]
        if not decisions:
            return
        current = not older_decision or len(decisions) == 1
        dec = decisions[-1] if current else decisions[0]
        (status,) = self.rows("SELECT status FROM incidents WHERE id = ?", inc)[0]
        answer = self.run(self._press(chat, card[0][0], f"c1:{act}:{inc}:{dec}", user))
        if status == "resolved" and act in ("a", "r", "z") and current and who == "approver here":
            assert answer.get("text") == RESOLVED_TOAST, answer

    async def _press(self, chat: int, message_id: int, data: str, user: dict[str, Any]
                     ) -> dict[str, Any]:
        qid = self.emu.emulator.press_button(chat, message_id, data, user, force=True)
        answer = await wait_for(lambda: self.emu.emulator.callback_answer(qid), 15,
                                message=f"press {data!r} not answered")
        await self.h.settled(interval=SETTLE_EVERY)
        return dict(answer)

    @rule(silence=st.tuples(st.sampled_from((CHAT_A, CHAT_B)), st.sampled_from(GROUPS),
                            st.sampled_from((None, *PODS)), st.sampled_from((1, 2))))
    def approver_silences(self, silence: tuple[int, str, str | None, int]) -> None:
        """/silence by labels, by the chat's approver: the whole group, or one of its
        alerts (which leaves an incident with the other one firing loud)."""
        chat, group, pod, hours = silence
        self.silence(chat, "alice" if chat == CHAT_A else "bob", group, pod, hours)

    def silence(self, chat: int, user: str, group: str, pod: str | None, hours: int) -> None:
        what = f"alertname={group}" + (f" pod={pod}" if pod else "")
        self.run(self._say(chat, USERS[user], f"/silence {what} {hours}h"))

    @precondition(lambda self: bool(self.rows("SELECT 1 FROM silences LIMIT 1")))
    @rule(chat=st.sampled_from((CHAT_A, CHAT_B)), user=st.sampled_from(("alice", "bob")),
          data=st.data())
    def unsilence(self, chat: int, user: str, data: st.DataObject) -> None:
        """/unsilence by an approver of this chat or of the other one, of any silence."""
        made = [r[0] for r in self.rows("SELECT id FROM silences ORDER BY rowid")]
        sid = data.draw(st.sampled_from(made), label="silence")
        self.run(self._say(chat, USERS[user], f"/unsilence {sid}"))

    async def _say(self, chat: int, user: dict[str, Any], text: str) -> None:
        sent = self.emu.emulator.user_sends(chat, user, text)
        await wait_for(
            lambda: any((m.get("reply_to_message") or {}).get("message_id") == sent["message_id"]
                        for m in self.emu.emulator.messages(chat)),
            15, message=f"no answer to {text!r}")
        await self.h.settled(interval=SETTLE_EVERY)

    @rule(minutes=st.sampled_from((10, 40, 70, 130)))
    def clock_moves(self, minutes: int) -> None:
        """Time passes: silences run out, pending approvals expire (APPROVAL_TIMEOUT 1h)."""
        self.now += timedelta(minutes=minutes)
        self.run(self._tick())

    async def _tick(self) -> None:
        await self.h.pipeline.timers.tick()
        await self.h.settled(interval=SETTLE_EVERY)

    @rule(redeliver=st.booleans())
    def restart(self, redeliver: bool) -> None:
        """The app stops and starts again on the same file; Alertmanager, which kept
        sending meanwhile, may repeat its last notification."""
        self.run(self.h.app.stop())
        self.h = self.run(self._start())
        if redeliver and self.bodies:
            self.run(self._post(self.bodies[-1]))

    # ------------------------------------------------------------ invariants

    @invariant()
    def a_resolved_incident_has_nothing_to_approve(self) -> None:
        open_states = self.rows(
            """SELECT i.id, d.state FROM incidents i JOIN decisions d ON d.incident_id = i.id
               WHERE i.status = 'resolved' AND d.state IN ('analyzing', 'pending')""")
        assert open_states == []
        for inc, chat, message_id in self.rows(
                """SELECT c.incident_id, c.chat_id, c.message_id FROM cards c
                   JOIN incidents i ON i.id = c.incident_id
                   WHERE i.status = 'resolved' AND c.message_id IS NOT NULL"""):
            shown = self.emu.emulator.message(chat, message_id)
            data = [b.get("callback_data", "") for row in buttons(shown) for b in row]
            assert not [d for d in data if d.split(":")[1] in ("a", "r", "z")], (inc, data)

    @invariant()
    def silenced_exactly_when_a_silence_of_the_chat_covers_it(self) -> None:
        silences = [
            Silence(id=sid, matchers=[Matcher.model_validate(m) for m in json.loads(matchers)],
                    reason="", created_by="", created_by_id=0,
                    starts_at=datetime.fromisoformat(starts),
                    ends_at=datetime.fromisoformat(ends), chat_id=chat)
            for sid, matchers, starts, ends, chat in self.rows(
                """SELECT id, matchers, starts_at, ends_at, chat_id FROM silences
                   WHERE expired_at IS NULL""")
        ]
        active = {s.id: s for s in silences if s.starts_at <= self.now < s.ends_at}
        for inc, chat, mark, status in self.rows(
                """SELECT c.incident_id, c.chat_id, c.silence_id, i.status FROM cards c
                   JOIN incidents i ON i.id = c.incident_id"""):
            if mark is not None:
                assert mark in active, (inc, chat, mark)
                assert active[mark].chat_id in (chat, None), (inc, chat, mark)
            if status != "firing":
                continue
            firing = [json.loads(r[0]) for r in self.rows(
                "SELECT labels FROM alerts WHERE incident_id = ? AND status = 'firing'", inc)]
            covers = [s.id for s in active.values() if s.chat_id in (chat, None)
                      and all(silence_matches(s, labels) for labels in firing)]
            assert (mark is not None) == bool(covers), (inc, chat, mark, covers)
            assert mark is None or mark in covers, (inc, chat, mark, covers)

    @invariant()
    def every_action_ran_at_most_once_and_was_approved_here(self) -> None:
        assert all(n == 1 for n in self.runs.values()), self.runs
        for decision_id in self.runs:
            approvers = {r[0] for r in self.rows(
                """SELECT user_id FROM audit WHERE decision_id = ? AND action = 'approve'
                   AND result = 'approved'""", decision_id)}
            assert approvers and approvers <= set(APPROVER.values()), (decision_id, approvers)

    @invariant()
    def every_card_shows_its_stored_state(self) -> None:
        render = card_renderer(self.h.db, self.h.app.settings.tz, "en")
        shown_cards = Counter(
            (m["chat"]["id"], inc) for chat in (CHAT_A, CHAT_B)
            for m in self.emu.emulator.messages(chat) if m["from"]["is_bot"]
            for inc in [next((b["callback_data"].split(":")[2] for row in buttons(m)
                              for b in row if b.get("callback_data", "").startswith("c1:d:")),
                             None)] if inc)
        assert all(n == 1 for n in shown_cards.values()), shown_cards
        for inc, chat, message_id, mark, status in self.rows(
                """SELECT c.incident_id, c.chat_id, c.message_id, c.silence_id, i.status
                   FROM cards c JOIN incidents i ON i.id = c.incident_id"""):
            if message_id is None:
                # Held back: silenced there before it was sent (and maybe resolved since).
                assert mark is not None or status == "resolved", (inc, chat)
                assert (chat, inc) not in shown_cards, (inc, chat)
                continue
            card = self.run(render(inc, chat))
            shown = self.emu.emulator.message(chat, message_id)
            if shown["html"] != card.text or buttons(shown) != card.keyboard:
                plain = self.run(render(inc, chat, url_buttons=False))
                assert (shown["html"], buttons(shown)) == (plain.text, plain.keyboard), (
                    inc, chat)


    def check(self) -> None:
        self.a_resolved_incident_has_nothing_to_approve()
        self.silenced_exactly_when_a_silence_of_the_chat_covers_it()
        self.every_action_ran_at_most_once_and_was_approved_here()
        self.every_card_shows_its_stored_state()


IncidentModel.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=STEPS)
TestIncidentModel = IncidentModel.TestCase


def silence_of(m: IncidentModel, chat: int, inc: str) -> str | None:
    (mark,) = m.rows("SELECT silence_id FROM cards WHERE incident_id = ? AND chat_id = ?",
                     inc, chat)[0]
    return str(mark) if mark else None


def test_sequences_that_once_broke_the_invariants() -> None:
    """The orders the issue found, run through the same machine and its checks."""
    m = IncidentModel()
    try:
        cart, queue = GROUPS
        m.both_groups_fire(("a", "b"))
        m.check()
        # Two silences over one incident in A; ending either leaves it silenced by the
        # other, in A only; the card in B stays loud throughout.
        m.silence(CHAT_A, "alice", cart, None, 1)
        m.silence(CHAT_A, "alice", cart, None, 2)
        m.check()
        inc = m.incidents[cart][-1]
        first, second = (r[0] for r in m.rows("SELECT id FROM silences ORDER BY rowid"))
        assert silence_of(m, CHAT_A, inc) == first and silence_of(m, CHAT_B, inc) is None
        m.run(m._say(CHAT_A, ALICE, f"/unsilence {first}"))
        m.check()
        assert silence_of(m, CHAT_A, inc) == second
        # One alert of the incident silenced: the other still fires, so it stays loud;
        # when that one resolves, the silence covers what fires and it goes quiet.
        m.silence(CHAT_B, "bob", queue, "a", 2)
        q = m.incidents[queue][-1]
        assert silence_of(m, CHAT_B, q) is None
        m.resolve(queue, "b")
        m.check()
        assert silence_of(m, CHAT_B, q) is not None and silence_of(m, CHAT_A, q) is None
        # The silences run out on the clock; a restart in between changes nothing.
        m.clock_moves(70)
        m.check()
        m.restart(redeliver=True)
        m.clock_moves(70)
        m.check()
        assert silence_of(m, CHAT_A, inc) is None and silence_of(m, CHAT_B, q) is None
        # A resolved incident: Re-analyze and an old Approve are refused with a clear
        # toast (asserted by press), and its cards offer neither (the invariant).
        m.resolve(cart, "a")
        m.resolve(cart, "b")
        m.check()
        for act in ("z", "a", "r"):
            m.press(act, "approver here", cart, CHAT_A, False, False)
        m.check()
        # It fires again: approved once, pressed again, in the other chat too, and
        # restarted: the action ran once.
        m.fire(cart, "a")
        assert len(m.incidents[cart]) == 2
        m.approver_presses(("a", cart, CHAT_A, False, False))
        m.approver_presses(("a", cart, CHAT_A, False, False))
        m.restart(redeliver=False)
        m.approver_presses(("a", cart, CHAT_B, False, False))
        m.check()
        assert sum(m.runs.values()) == 1, m.runs
    finally:
        m.teardown()
