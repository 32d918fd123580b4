"""What a press on a card does, and who approves in a chat (per incident:
bot.chat.authorization).

The presses move the decision through bot.incidents.states (one transition
each, in one write transaction with its audit row, card sync and thread note);
what a press changes nothing with still leaves an audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import audit, texts
from bot.cards import notes
from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from bot.models import Actor, Decision, DecisionState, Incident, IncidentStatus, Matcher
from bot.silences.service import SilenceService
from storage import outbox, repo
from storage.db import Database
from storage.state import StateStore

log = logging.getLogger(__name__)

MUTATING = frozenset({"approve", "reject", "reanalyze", "silence", "save_playbook"})
BUTTON_OF = {"save_playbook": "playbook"}  # the rest are named like their button


@dataclass
class Outcome:
    """What to tell the presser: a toast key for bot.texts, shown as an alert or not."""

    toast: str
    ctx: dict[str, object] = field(default_factory=dict)
    alert: bool = False


AdminLookup = Callable[[int], Awaitable[list[int]]]


class Authorizer:
    """Approvers per chat (routes may name their own), and optionally the chat's admins."""

    def __init__(
        self,
        approvers_for: Callable[[int], frozenset[int]],
        state: StateStore,
        *,
        from_admins: bool = False,
        admin_lookup: AdminLookup | None = None,
        admin_ttl: float = 300.0,
    ) -> None:
        self.approvers_for = approvers_for
        self.state = state
        self.from_admins = from_admins
        self.admin_lookup = admin_lookup
        self.admin_ttl = admin_ttl

    async def is_approver(self, chat_id: int, user_id: int) -> bool:
        """An approver of some route into this chat (commands that act on the chat)."""
        return user_id in self.approvers_for(chat_id) or await self.is_admin(chat_id, user_id)

    async def is_admin(self, chat_id: int, user_id: int) -> bool:
        """With APPROVERS_FROM_CHAT_ADMINS: an administrator of the chat."""
        if not self.from_admins or self.admin_lookup is None:
            return False
        key = f"admins:{chat_id}"
        admins = await self.state.get(key)
        if admins is None:
            try:
                admins = await self.admin_lookup(chat_id)
            except Exception as exc:  # a failed lookup must not grant anything
                log.warning("could not read the admins of chat %s: %s", chat_id, exc)
                return False
            await self.state.set(key, admins, self.admin_ttl)
        return user_id in admins


def _reason_key(chat_id: int | None, user_id: int, incident_id: str) -> str:
    return f"reason:{chat_id}:{user_id}:{incident_id}"


@dataclass(frozen=True)
class ApprovalConfig:
    locale: str
    tz_name: str
    reject_reason_window: timedelta

    @property
    def voice(self) -> Voice:
        return Voice(self.locale, self.tz_name)


class ApprovalService:
    def __init__(
        self,
        db: Database,
        state: StateStore,
        cfg: ApprovalConfig,
        clock: Callable[[], datetime],
        silences: SilenceService,
    ) -> None:
        self.silences = silences
        self.db = db
        self.state = state
        self.cfg = cfg
        self.clock = clock

    async def _load(
        self, conn: repo.Conn, now: datetime, actor: Actor, action: str, incident_id: str,
        decision_id: int,
    ) -> tuple[Incident, Decision] | Outcome:
        """The incident and its current decision, if the press names both (callback
        data is untrusted text); else the refusal, audited."""
        inc = await repo.get_incident(conn, incident_id)
        decision = await repo.current_decision(conn, incident_id) if inc else None
        refusal = None
        if inc is None:
            refusal = "unknown_incident"
        elif decision is None or decision.id != decision_id:
            refusal = "stale_card"
        elif inc.status is IncidentStatus.RESOLVED:
            # Nothing of a resolved incident is approvable (an old card's press included).
            refusal = "incident_resolved"
        if refusal is not None:
            await audit.record(conn, now, action, refusal, actor=actor, incident_id=incident_id,
                               decision_id=decision_id)
            return Outcome(refusal, alert=True)
        assert inc is not None and decision is not None
        return inc, decision

    # ------------------------------------------------------------ presses

    async def stale_press(self, actor: Actor, action: str, incident_id: str, decision_id: int
                          ) -> None:
        """A press that waited too long (the bot was down): record it, ask again."""
        now = self.clock()
        async with self.db.write() as conn:
            await audit.record(conn, now, action, "stale_press", actor=actor,
                               incident_id=incident_id, decision_id=decision_id)
            inc = await repo.get_incident(conn, incident_id)
            if inc is not None:
                await notes.reply(conn, inc, "stale_press", now, self.cfg.voice,
                                  name=actor.name, button=BUTTON_OF.get(action, action))

    async def approve(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        """One approval; the last one needed approves, and the commit schedules the run."""
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, now, actor, "approve", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            inc, decision = loaded

            async def refused(result: str) -> None:
                await audit.record(conn, now, "approve", result, actor=actor,
                                   incident_id=incident_id, decision_id=decision.id)

            if decision.state is not DecisionState.PENDING or decision.proposal is None or (
                decision.proposal.action is None
            ):
                await refused(f"already_{decision.state}")
                return Outcome("already_decided", {"state": decision.state.value})
            added = await repo.add_approval(conn, decision.id, actor.user_id, actor.name, now)
            approvals = await repo.approvals_of(conn, decision.id)
            if not added:
                await refused("already_approved")
                return Outcome("already_approved")
            if len(approvals) < decision.required_approvals:
                # Not a transition: the decision stays pending, the card shows the count.
                progress: dict[str, object] = {"count": len(approvals),
                                               "required": decision.required_approvals}
                await audit.record(conn, now, "approve",
                                   f"recorded {len(approvals)}/{decision.required_approvals}",
                                   actor=actor, incident_id=incident_id, decision_id=decision.id)
                await notes.card_changed(conn, inc, now)
                await notes.reply(conn, inc, "approval_progress", now, self.cfg.voice,
                                  name=actor.name, **progress)
                return Outcome("approval_recorded", progress)
            names = [a.user_name for a in approvals]
            if await transition(
                conn, decision.id, Event.APPROVE, now, self.cfg.voice, actor=actor,
                fields={"decided_by": ", ".join(names), "decided_by_id": actor.user_id,
                        "decided_at": now},
                note={"names": names, "at": now},
            ) is None:
                await refused("lost_race")
                return Outcome("already_decided", {"state": "approved"})
        return Outcome("approved_executing")

    async def reject(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, now, actor, "reject", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            inc, decision = loaded
            if await transition(
                conn, decision.id, Event.REJECT, now, self.cfg.voice, actor=actor,
                fields={"decided_by": actor.name, "decided_by_id": actor.user_id,
                        "decided_at": now},
                note={"name": actor.name,
                      "minutes": int(self.cfg.reject_reason_window.total_seconds() // 60)},
            ) is None:
                await audit.record(conn, now, "reject", f"already_{decision.state}",
                                   actor=actor, incident_id=incident_id, decision_id=decision.id)
                return Outcome("already_decided", {"state": decision.state.value})
        # Losing this only loses the chance to add a reason.
        await self.state.set(
            _reason_key(actor.chat_id, actor.user_id, inc.id), {"decision_id": decision.id},
            self.cfg.reject_reason_window.total_seconds(),
        )
        return Outcome("rejected")

    async def add_reason(self, actor: Actor, chat_id: int, replied_to: int, text: str) -> bool:
        """A reply by the rejecting person to a message of the incident's thread."""
        async with self.db.read() as conn:
            card = await repo.card_by_message(conn, chat_id, replied_to)
            sent = await outbox.sent_item(conn, chat_id, replied_to)
        incident_id = card.incident_id if card else (sent.incident_id if sent else None)
        if incident_id is None:
            return False
        key = _reason_key(chat_id, actor.user_id, incident_id)
        waiting = await self.state.get(key)
        if not waiting:
            return False
        now = self.clock()
        async with self.db.write() as conn:
            reason = text.strip()[:500]
            if not reason or not await repo.set_reason(conn, waiting["decision_id"], reason):
                return False
            inc = await repo.get_incident(conn, incident_id)
            assert inc is not None
            # Not a transition: the decision stays rejected, with its reason.
            await audit.record(conn, now, "reject_reason", "recorded", actor=actor,
                               incident_id=inc.id, decision_id=waiting["decision_id"],
                               detail=reason)
            await notes.card_changed(conn, inc, now)
            await notes.reply(conn, inc, "reason_recorded", now, self.cfg.voice,
                              name=actor.name, reason=reason)
        await self.state.delete(key)
        return True

    async def reanalyze(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        """Supersede the decision; the commit wakes analysis for its successor."""
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, now, actor, "reanalyze", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            _, decision = loaded
            if await transition(conn, decision.id, Event.REANALYZE, now, self.cfg.voice,
                                actor=actor, note={"name": actor.name}) is None:
                await audit.record(conn, now, "reanalyze", "refused", actor=actor,
                                   incident_id=incident_id, decision_id=decision.id)
                return Outcome("reanalyze_refused", {"state": decision.state.value}, alert=True)
        return Outcome("reanalyzing")

    async def silence_incident(self, actor: Actor, incident_id: str, decision_id: int,
                               duration: timedelta = timedelta(hours=1),
                               scope: list[Matcher] | None = None,
                               mirror: bool = True) -> Outcome:
        """Silence 1h: equality matchers on the incident's group labels, and the labels of
        the route that brought it into this chat (scope), so it covers nothing more."""
        now = self.clock()
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            # Silenced is per chat: only a silence over its card in this chat counts.
            card = await repo.get_card(conn, incident_id, actor.chat_id) \
                if inc and actor.chat_id is not None else None
            existing = await repo.get_silence(conn, card.silence_id) \
                if card and card.silence_id else None
        refusal = None
        if inc is None:
            refusal = "unknown_incident"
        elif existing and existing.expired_at is None and existing.ends_at > now:
            refusal = "already_silenced"
        if refusal is not None:
            async with self.db.write() as conn:
                await audit.record(conn, now, "silence", refusal, actor=actor,
                                   incident_id=incident_id, decision_id=decision_id)
            return Outcome(refusal, alert=inc is None)
        assert inc is not None
        matchers = await self.silences.group_matchers(incident_id) or []
        matchers += [m for m in scope or [] if m not in matchers]
        await self.silences.create(
            actor, actor.chat_id, matchers, now + duration,
            texts.plain(texts.render("commands/card_silence_reason.html", self.cfg.locale,
                                     incident_id=inc.id)),
            incident_id=inc.id, mirror=mirror,
        )
        return Outcome("silenced", {"hours": int(duration.total_seconds() // 3600)})
