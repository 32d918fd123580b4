"""The approval state machine and who may drive it.

Every transition is a compare-and-set in SQLite inside one write transaction
that also writes the audit row and queues the card edit and the thread note:
two presses at once, from two processes even, give exactly one transition.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import texts
from bot.cards import notes
from bot.models import REANALYZABLE, Actor, Decision, DecisionState, Incident
from bot.silences.service import SilenceService
from storage import outbox, repo
from storage.db import Database
from storage.state import StateStore

log = logging.getLogger(__name__)

AdminLookup = Callable[[int], Awaitable[list[int]]]

MUTATING = frozenset({"approve", "reject", "reanalyze", "silence", "save_playbook"})
BUTTON_OF = {"save_playbook": "playbook"}


@dataclass
class Outcome:
    """What to tell the presser (a toast key for bot.texts) and what to do next."""

    toast: str
    ctx: dict[str, object] = field(default_factory=dict)
    alert: bool = False
    execute: int | None = None  # decision id to execute after answering
    analyze: bool = False  # a new decision waits for analysis


class Authorizer:
    def __init__(
        self,
        approvers_for: Callable[[int], frozenset[int]],
        state: StateStore,
        *,
        from_admins: bool = False,
        admin_lookup: AdminLookup | None = None,
        admin_ttl: float = 300.0,
    ) -> None:
        self.approvers_for = approvers_for  # per chat: routes may name their own approvers
        self.state = state
        self.from_admins = from_admins
        self.admin_lookup = admin_lookup
        self.admin_ttl = admin_ttl

    async def is_approver(self, chat_id: int, user_id: int) -> bool:
        if user_id in self.approvers_for(chat_id):
            return True
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
    approval_timeout: timedelta
    reject_reason_window: timedelta


class ApprovalService:
    def __init__(
        self,
        db: Database,
        authz: Authorizer,
        state: StateStore,
        cfg: ApprovalConfig,
        clock: Callable[[], datetime],
        silences: SilenceService,
    ) -> None:
        self.silences = silences
        self.db = db
        self.authz = authz
        self.state = state
        self.cfg = cfg
        self.clock = clock

    # ------------------------------------------------------------ helpers

    async def _audit(self, conn: repo.Conn, actor: Actor | None, action: str, result: str,
                     incident_id: str | None, decision_id: int | None,
                     detail: str | None = None) -> None:
        await repo.audit(
            conn, action=action, result=result, now=self.clock(),
            user_id=actor.user_id if actor else None, user_name=actor.name if actor else None,
            chat_id=actor.chat_id if actor else None, incident_id=incident_id,
            decision_id=decision_id, detail=detail,
        )

    async def _note(self, conn: repo.Conn, inc: Incident, kind: str, **ctx: object) -> None:
        await notes.reply(conn, inc, kind, self.clock(), self.cfg.locale, self.cfg.tz_name, **ctx)

    async def _load(
        self, conn: repo.Conn, actor: Actor, action: str, incident_id: str, decision_id: int
    ) -> tuple[Incident, Decision] | Outcome:
        inc = await repo.get_incident(conn, incident_id)
        if inc is None:
            await self._audit(conn, actor, action, "unknown_incident", incident_id, decision_id)
            return Outcome("unknown_incident", alert=True)
        decision = await repo.current_decision(conn, incident_id)
        if decision is None or decision.id != decision_id:
            await self._audit(conn, actor, action, "stale_card", incident_id, decision_id)
            return Outcome("stale_card", alert=True)
        return inc, decision

    # ------------------------------------------------------------ presses

    async def refuse(self, actor: Actor, action: str, incident_id: str, decision_id: int
                     ) -> Outcome:
        async with self.db.write() as conn:
            await self._audit(conn, actor, action, "not_allowed", incident_id, decision_id)
        return Outcome("not_allowed", {"user_id": actor.user_id}, alert=True)

    async def stale_press(self, actor: Actor, action: str, incident_id: str, decision_id: int
                          ) -> None:
        """A press that waited too long (the bot was down): record it, ask again."""
        async with self.db.write() as conn:
            await self._audit(conn, actor, action, "stale_press", incident_id, decision_id)
            inc = await repo.get_incident(conn, incident_id)
            if inc is not None:
                await self._note(conn, inc, "stale_press", name=actor.name,
                                 button=BUTTON_OF.get(action, action))

    async def approve(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, actor, "approve", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            inc, decision = loaded
            if decision.state is not DecisionState.PENDING or decision.proposal is None or (
                decision.proposal.action is None
            ):
                await self._audit(conn, actor, "approve", f"already_{decision.state}",
                                  incident_id, decision.id)
                return Outcome("already_decided", {"state": decision.state.value})
            added = await repo.add_approval(conn, decision.id, actor.user_id, actor.name, now)
            approvals = await repo.approvals_of(conn, decision.id)
            if not added:
                await self._audit(conn, actor, "approve", "already_approved", incident_id,
                                  decision.id)
                return Outcome("already_approved")
            if len(approvals) < decision.required_approvals:
                await self._audit(conn, actor, "approve",
                                  f"recorded {len(approvals)}/{decision.required_approvals}",
                                  incident_id, decision.id)
                await notes.card_changed(conn, inc, now)
                await self._note(conn, inc, "approval_progress", name=actor.name,
                                 count=len(approvals), required=decision.required_approvals)
                return Outcome("approval_recorded",
                               {"count": len(approvals), "required": decision.required_approvals})
            names = [a.user_name for a in approvals]
            won = await repo.transition(
                conn, decision.id, DecisionState.PENDING, DecisionState.APPROVED, now,
                decided_by=", ".join(names), decided_by_id=actor.user_id, decided_at=now,
            )
            if not won:
                await self._audit(conn, actor, "approve", "lost_race", incident_id, decision.id)
                return Outcome("already_decided", {"state": "approved"})
            await self._audit(conn, actor, "approve", "approved", incident_id, decision.id)
            await notes.card_changed(conn, inc, now)
            await self._note(conn, inc, "approved", names=names, at=now)
        return Outcome("approved_executing", execute=decision.id)

    async def reject(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, actor, "reject", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            inc, decision = loaded
            won = await repo.transition(
                conn, decision.id, DecisionState.PENDING, DecisionState.REJECTED, now,
                decided_by=actor.name, decided_by_id=actor.user_id, decided_at=now,
            )
            if not won:
                await self._audit(conn, actor, "reject", f"already_{decision.state}",
                                  incident_id, decision.id)
                return Outcome("already_decided", {"state": decision.state.value})
            await self._audit(conn, actor, "reject", "rejected", incident_id, decision.id)
            await notes.card_changed(conn, inc, now)
            await self._note(
                conn, inc, "rejected", name=actor.name,
                minutes=int(self.cfg.reject_reason_window.total_seconds() // 60),
            )
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
            await self._audit(conn, actor, "reject_reason", "recorded", inc.id,
                              waiting["decision_id"], detail=reason)
            await notes.card_changed(conn, inc, now)
            await self._note(conn, inc, "reason_recorded", name=actor.name, reason=reason)
        await self.state.delete(key)
        return True

    async def reanalyze(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        now = self.clock()
        async with self.db.write() as conn:
            loaded = await self._load(conn, actor, "reanalyze", incident_id, decision_id)
            if isinstance(loaded, Outcome):
                return loaded
            inc, decision = loaded
            if decision.state not in REANALYZABLE or not await repo.transition(
                conn, decision.id, list(REANALYZABLE), DecisionState.SUPERSEDED, now
            ):
                await self._audit(conn, actor, "reanalyze", "refused", incident_id, decision.id)
                return Outcome("reanalyze_refused", {"state": decision.state.value}, alert=True)
            new_id = await repo.insert_decision(conn, incident_id, now)
            await self._audit(conn, actor, "reanalyze", "superseded", incident_id, decision.id,
                              detail=f"new decision {new_id}")
            await notes.card_changed(conn, inc, now)
            await self._note(conn, inc, "reanalyzing", name=actor.name)
        return Outcome("reanalyzing", analyze=True)

    async def silence_incident(self, actor: Actor, incident_id: str, decision_id: int,
                               duration: timedelta = timedelta(hours=1)) -> Outcome:
        """Silence 1h: equality matchers on the incident's group labels."""
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            existing = await repo.get_silence(conn, inc.silence_id) if inc and inc.silence_id \
                else None
        if inc is None:
            async with self.db.write() as conn:
                await self._audit(conn, actor, "silence", "unknown_incident", incident_id,
                                  decision_id)
            return Outcome("unknown_incident", alert=True)
        now = self.clock()
        if existing and existing.expired_at is None and existing.ends_at > now:
            async with self.db.write() as conn:
                await self._audit(conn, actor, "silence", "already_silenced", incident_id,
                                  decision_id)
            return Outcome("already_silenced")
        matchers = await self.silences.group_matchers(incident_id) or []
        await self.silences.create(
            actor, actor.chat_id, matchers, now + duration,
            texts.plain(texts.render("commands/card_silence_reason.html", self.cfg.locale,
                                     incident_id=inc.id)),
            incident_id=inc.id,
        )
        return Outcome("silenced", {"hours": int(duration.total_seconds() // 3600)})

    # ------------------------------------------------------------ timers

    async def expire_due(self) -> int:
        now = self.clock()
        cutoff = now - self.cfg.approval_timeout
        expired = 0
        async with self.db.read() as conn:
            candidates = await repo.pending_older_than(conn, cutoff)
        for decision in candidates:
            async with self.db.write() as conn:
                if not await repo.transition(
                    conn, decision.id, DecisionState.PENDING, DecisionState.EXPIRED, now,
                    decided_at=now,
                ):
                    continue
                inc = await repo.get_incident(conn, decision.incident_id)
                assert inc is not None
                await self._audit(conn, None, "expire", "expired", inc.id, decision.id)
                await notes.card_changed(conn, inc, now)
                await self._note(conn, inc, "expired", at=now)
                expired += 1
        return expired
