"""The card's information buttons (Details, History, Save as playbook) and the outbox writes
of chat answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import audit
from bot.cards import card as cards
from bot.cards import notes
from bot.cards.card import CardView
from bot.cards.details import details_page, render_details
from bot.chat.history import target_history
from bot.incidents.approvals import Outcome
from bot.models import Actor, DecisionState
from bot.telegram.card_loading import load_view
from bot.telegram.storm import release_card
from storage import outbox, repo
from storage.db import Database
from storage.repo import digests
from storage.repo.digests import DigestRow
from storage.repo.sql import Conn


class Inquiries:
    def __init__(
        self,
        db: Database,
        tz: ZoneInfo,
        locale: str,
        clock: Callable[[], datetime],
        playbooks: Any | None = None,
    ) -> None:
        self.db = db
        self.tz = tz
        self.locale = locale
        self.clock = clock
        self.playbooks = playbooks

    async def record_press(self, actor: Actor, action: str, detail: str,
                           result: str = "ignored") -> None:
        """A press that changed nothing still leaves a row (who pressed what, when)."""
        await audit.write(self.db, self.clock(), action, result, actor=actor,
                          detail=detail[:64])

    async def details(self, actor: Actor, incident_id: str) -> Outcome:
        now = self.clock()
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
        chat_id = actor.chat_id or (inc.chat_id if inc else 0)
        view = await load_view(self.db, incident_id, chat_id, self.tz, self.locale)
        if view is None:
            await audit.write(self.db, now, "details", "unknown_incident", actor=actor,
                              incident_id=incident_id)
            return Outcome("unknown_incident", alert=True)
        messages = render_details(await self._seen_here(view, chat_id))
        async with self.db.write() as conn:
            await notes.reply_texts(conn, view.incident, [m.text for m in messages], now,
                                    note="details", chat_id=chat_id,
                                    keyboards=[m.keyboard for m in messages])
            await audit.record(conn, now, "details", f"{len(messages)} messages", actor=actor,
                               incident_id=incident_id)
        return Outcome("working")

    async def details_page(self, actor: Actor, chat_id: int, message_id: int,
                           incident_id: str, start: int, *, backwards: bool) -> Outcome:
        """A press on a Details page's ◀️ ▶️: that message shows the other page. The press
        was checked to be on this incident's Details page in this chat."""
        now = self.clock()
        view = await load_view(self.db, incident_id, chat_id, self.tz, self.locale)
        if view is None:
            await audit.write(self.db, now, "details_page", "unknown_incident", actor=actor,
                              incident_id=incident_id)
            return Outcome("unknown_incident", alert=True)
        page = details_page(view, start, backwards=backwards)
        async with self.db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.EDIT, chat_id=chat_id, now=now,
                                 payload={"text": page.text, "message_id": message_id,
                                          "keyboard": page.keyboard})
            await audit.record(conn, now, "details_page", f"from alert {start}", actor=actor,
                               incident_id=incident_id)
        return Outcome("working")

    async def digest_page(self, actor: Actor, chat_id: int, message_id: int, digest_id: int,
                          page: int) -> Outcome:
        """A press on a storm digest's ◀️ ▶️: the digest shows that page."""
        now = self.clock()
        async with self.db.write() as conn:
            digest = await self._pressed_digest(conn, actor, chat_id, message_id, digest_id,
                                                "digest_page", now)
            if isinstance(digest, Outcome):
                return digest
            await digests.set_page(conn, digest_id, page)
            await outbox.enqueue_digest(conn, digest_id, chat_id, now)
            await audit.record(conn, now, "digest_page", "ok", actor=actor,
                               detail=f"digest {digest_id} page {page}")
        return Outcome("working")

    async def open_card(self, actor: Actor, chat_id: int, message_id: int, digest_id: int,
                        incident_id: str) -> Outcome:
        """A press on a digest's open button: the incident gets its own card in this chat.
        Only an incident this digest lists (so one routed into this chat)."""
        now = self.clock()
        async with self.db.write() as conn:
            digest = await self._pressed_digest(conn, actor, chat_id, message_id, digest_id,
                                                "open_card", now)
            if isinstance(digest, Outcome):
                return digest
            card = await repo.get_card(conn, incident_id, chat_id)
            if card is None or card.digest_id != digest_id:
                result, outcome = "not_in_digest", Outcome("not_in_digest", alert=True)
            elif await release_card(conn, incident_id, digest, now, own_at=None):
                result, outcome = "posted", Outcome("card_opening", {"id": incident_id})
            else:
                result = "already_posted"
                outcome = Outcome("card_posted", {"id": incident_id}, alert=True)
            await audit.record(conn, now, "open_card", result, actor=actor,
                               incident_id=incident_id if card else None,
                               detail=f"digest {digest_id}")
        return outcome

    async def _pressed_digest(self, conn: Conn, actor: Actor, chat_id: int, message_id: int,
                              digest_id: int, action: str, now: datetime
                              ) -> DigestRow | Outcome:
        """The digest a press names, if the pressed message is that digest in this chat;
        else the refusal, audited."""
        digest = await digests.get_digest(conn, digest_id)
        if digest is None:
            result, outcome = "digest_gone", Outcome("digest_gone", alert=True)
        elif digest.chat_id != chat_id or digest.message_id != message_id:
            result, outcome = "wrong_message", Outcome("wrong_message", alert=True)
        else:
            return digest
        await audit.record(conn, now, action, result, actor=actor,
                           detail=f"message {message_id}: digest {digest_id}")
        return outcome

    async def _seen_here(self, view: CardView, chat_id: int) -> CardView:
        """The view with Related cut to incidents routed into this chat: the knowledge
        index spans every chat, and Details must not name another chat's incidents."""
        prop = view.decision.proposal if view.decision else None
        if view.decision is None or prop is None or prop.evidence is None:
            return view
        async with self.db.read() as conn:
            related = [r for r in prop.evidence.related
                       if r.kind != "incident"
                       or await repo.get_card(conn, r.ref, chat_id) is not None]
        if len(related) == len(prop.evidence.related):
            return view
        evidence = prop.evidence.model_copy(update={"related": related})
        decision = view.decision.model_copy(
            update={"proposal": prop.model_copy(update={"evidence": evidence})})
        return replace(view, decision=decision)

    async def history(self, actor: Actor, incident_id: str) -> Outcome:
        """The History button: earlier incidents of the same target, in the thread."""
        now = self.clock()
        # Only what was routed into the chat asking: no other chat's incidents.
        found = await target_history(self.db, incident_id, tz=self.tz, locale=self.locale,
                                     chat_id=actor.chat_id)
        if found is None:
            await audit.write(self.db, now, "history", "unknown_incident", actor=actor,
                              incident_id=incident_id)
            return Outcome("unknown_incident", alert=True)
        inc, text, listed = found
        async with self.db.write() as conn:
            await notes.reply_texts(conn, inc, [text], now, note="history",
                                    chat_id=actor.chat_id or inc.chat_id)
            await audit.record(conn, now, "history", f"{listed} incidents", actor=actor,
                               incident_id=incident_id)
        return Outcome("working")

    async def save_playbook(self, actor: Actor, incident_id: str, decision_id: int) -> Outcome:
        now = self.clock()
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            decision = await repo.get_decision(conn, decision_id)
        if inc is None or decision is None:
            await audit.write(self.db, now, "save_playbook", "unknown_incident", actor=actor,
                              incident_id=incident_id)
            return Outcome("unknown_incident", alert=True)
        if (
            self.playbooks is None
            or decision.state is not DecisionState.SUCCEEDED
            or decision.proposal is None
            or decision.proposal.action is None
            or (decision.result or {}).get("dry_run")
        ):
            await audit.write(self.db, now, "save_playbook", "refused", actor=actor,
                              incident_id=incident_id, decision_id=decision_id)
            return Outcome("stale_card", alert=True)
        playbook = await self.playbooks.create_from_decision(
            inc, decision.proposal.action, decision.proposal.risk,
            decision.proposal.summary, actor.name,
        )
        name = getattr(playbook, "name", str(playbook))
        text = cards.render_thread("playbook_saved", tz=self.tz, locale=self.locale,
                                   name=actor.name, playbook=name)
        async with self.db.write() as conn:
            await audit.record(conn, now, "save_playbook", "saved", actor=actor,
                               incident_id=incident_id, decision_id=decision_id, detail=name)
            await notes.reply_texts(conn, inc, [text], now, note="playbook_saved",
                                    chat_id=inc.chat_id)
        return Outcome("playbook_saved", {"name": name})

    async def say(self, chat_id: int, text: str, *, reply_to: int | None = None,
                  thread_id: int | None = None, keyboard: list[list[dict]] | None = None
                  ) -> None:
        """A chat answer (commands). Goes through the outbox like every write."""
        async with self.db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=chat_id, now=self.clock(),
                                 payload={"text": text, "reply_to": reply_to,
                                          "thread_id": thread_id, "keyboard": keyboard or []})

    async def edit(self, chat_id: int, message_id: int, text: str,
                   keyboard: list[list[dict]] | None = None) -> None:
        """Replace a message we sent (paged lists), through the outbox."""
        async with self.db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.EDIT, chat_id=chat_id, now=self.clock(),
                                 payload={"text": text, "message_id": message_id,
                                          "keyboard": keyboard or []})
