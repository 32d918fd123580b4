"""Alerts in, incidents out: one notification, inside a write transaction (webhooks that
arrive together share one: bot/alerts/intake.py).

The steps, in order: find or open the incident of the group, store every
alert (re-delivery updates), add what changed to the incident's counts and
maybe resolve, apply silences, schedule analysis and the card. Nothing here
talks to Telegram; the outbox rows written in the same transaction are the
promise that it will happen.

The work is in proportion to the payload, never to the incident: each alert is
looked up by its key, and the incident's counts per (status, severity) are kept
in incident_alert_counts from the changes, so a re-delivery into an incident of
5,000 alerts reloads none of them (tests/test_ingest_work.py counts the steps).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.alerts.routing import Route, RouteTable
from bot.cards import notes
from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from bot.labels import common_labels, firing_or_all
from bot.models import (
    Alert,
    AlertGroup,
    AlertStatus,
    DecisionState,
    Incident,
    IncidentStatus,
    Silence,
)
from bot.silences import coverage
from bot.silences.matching import silence_matches
from storage import outbox, repo
from storage.db import Database

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_TARGET_LABELS = (
    "deployment", "statefulset", "daemonset", "service", "app", "job", "pod", "instance",
)
_SEVERITY_RANK = {"critical": 4, "error": 3, "high": 3, "warning": 2, "info": 1, "none": 0}


def new_incident_id() -> str:
    # Six letters of 5 bits each from one draw of 30 random bits.
    bits = secrets.randbits(30)
    return "INC-" + "".join(_ID_ALPHABET[(bits >> shift) & 31] for shift in range(0, 30, 5))


@dataclass
class IngestResult:
    incidents: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    silenced: list[str] = field(default_factory=list)
    alerts: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "incidents": self.incidents,
            "opened": self.opened,
            "resolved": self.resolved,
            "silenced": self.silenced,
            "alerts": self.alerts,
        }


@dataclass(frozen=True)
class IngestContext:
    routes: RouteTable
    group_by: tuple[str, ...]
    locale: str
    tz_name: str
    topic_chats: frozenset[int] = frozenset()  # chats in THREAD_MODE=topic
    first_card_wait: timedelta = timedelta(0)  # a new card waits this long for its proposal

    @property
    def voice(self) -> Voice:
        return Voice(self.locale, self.tz_name)


def group_key_of(group: AlertGroup, group_by: tuple[str, ...]) -> str:
    if group.group_key:
        return f"{group.source}:{group.group_key}"
    labels = group.alerts[0].labels
    return group.source + ":" + ",".join(f"{k}={labels.get(k, '')}" for k in group_by)


def target_of(labels: dict[str, str]) -> str:
    for name in _TARGET_LABELS:
        if labels.get(name):
            return labels[name]
    return labels.get("alertname", "unknown")


def best_severity(labels: Iterable[str]) -> str:
    """The highest-ranked severity label (lower-cased); "unknown" when none is set. Labels
    of equal rank are decided by name, so the answer does not depend on alert order."""
    best = "unknown"
    for sev in sorted({label.lower() for label in labels if label}):
        if _SEVERITY_RANK.get(sev, 0) >= _SEVERITY_RANK.get(best, -1):
            best = sev
    return best


def severity_of(alerts: list[Alert]) -> str:
    return best_severity(a.labels.get("severity", "") for a in alerts)


def severity_of_counts(counts: Mapping[tuple[str, str], int]) -> str:
    """The incident's severity from its (status, severity label) counts: of the firing
    alerts, or of all when none fires (as severity_of(firing_or_all(alerts)))."""
    firing = [sev for (status, sev), n in counts.items() if status == "firing" and n > 0]
    return best_severity(firing) if firing else best_severity(
        sev for (_, sev), n in counts.items() if n > 0)


def routing_labels(group: AlertGroup, common: dict[str, str] | None = None) -> dict[str, str]:
    """`common`: common_labels(firing_or_all(group.alerts)), when the caller has it."""
    if common is None:
        common = common_labels(firing_or_all(group.alerts))
    return {**common, **group.group_labels}


def _new_incident(
    group: AlertGroup, key: str, ctx: IngestContext, now: datetime, chat_id: int,
    firing: list[Alert], labels: dict[str, str],
) -> Incident:
    """`firing`: firing_or_all(group.alerts); `labels`: their common labels."""
    alertname = labels.get("alertname") or firing[0].labels.get("alertname", "alert")
    target = target_of(labels) if labels else alertname
    group_labels = group.group_labels or {
        k: labels[k] for k in ctx.group_by if k in labels
    }
    return Incident(
        id=new_incident_id(),
        group_key=key,
        group_labels=group_labels,
        title=f"{alertname} — {target}" if target != alertname else alertname,
        alertname=alertname,
        severity=severity_of(firing),
        target=target,
        namespace=labels.get("namespace", ""),
        status=IncidentStatus.FIRING,
        firing_count=0,
        resolved_count=0,
        opened_at=min(a.starts_at for a in firing),
        updated_at=now,
        chat_id=chat_id,
    )


async def accept(
    db: Database, group: AlertGroup, ctx: IngestContext, now: datetime
) -> IngestResult:
    """Store one notification and schedule what it implies, atomically."""
    async with db.write() as conn:
        return await accept_in(conn, group, ctx, now)


async def accept_in(
    conn: repo.Conn, group: AlertGroup, ctx: IngestContext, now: datetime
) -> IngestResult:
    """accept() inside a write transaction the caller holds (and commits)."""
    result = IngestResult(alerts=len(group.alerts))
    key = group_key_of(group, ctx.group_by)
    group = await _anchor_unknown_starts(conn, group)
    open_inc = await repo.open_incident_for_group(conn, key)
    # Alerts already stored keep their incident; new firing ones join the open
    # incident, or open one. New resolved-only alerts without an incident are
    # a resolution of something we never saw fire: stored nowhere, nothing to say.
    stored = await repo.stored_alerts(conn, group.alerts)
    needs_new = open_inc is None and any(
        old is None and a.status is AlertStatus.FIRING
        for old, a in zip(stored, group.alerts, strict=True)
    )
    if needs_new:
        firing = firing_or_all(group.alerts)
        common = common_labels(firing)
        routes = ctx.routes.resolve(routing_labels(group, common))
        open_inc = _new_incident(group, key, ctx, now, routes[0].chat_id, firing, common)
        await repo.insert_incident(conn, open_inc, group.truncated_alerts)
        await _plan_cards(conn, open_inc.id, routes, ctx, now)
        result.opened.append(open_inc.id)
    touched, deltas = await _store_alerts(conn, group.alerts, stored,
                                          open_inc.id if open_inc else None, now)
    silences = await repo.active_silences(conn, now)
    for incident_id, changes in touched.items():
        is_new = incident_id in result.opened
        await _after_alerts_changed(
            conn, incident_id, changes, group, ctx, now, silences, result,
            is_new=is_new, opened=open_inc if is_new else None,
            new_counts=deltas.get(incident_id) if is_new else None,
        )
    result.incidents = list(touched)
    return result


# One alert of a webhook: what the table held for it before (None: new), what it holds now.
Change = tuple[repo.StoredAlert | None, repo.StoredAlert]


async def _store_alerts(
    conn: repo.Conn, alerts: list[Alert], stored: list[repo.StoredAlert | None],
    open_id: str | None, now: datetime,
) -> tuple[dict[str, list[Change]], dict[str, Counter[tuple[str, str]]]]:
    """Upsert each alert and add to its incident's counts what it changed (the status and
    severity it left, the ones it has now): work in proportion to the payload, never to
    the incident. Returns each touched incident's changes, and what it added to each
    incident's counts."""
    touched: dict[str, list[Change]] = {}
    deltas: dict[str, Counter[tuple[str, str]]] = {}
    written: dict[tuple[str, datetime], repo.StoredAlert] = {}  # an alert sent twice
    upserts: list[tuple[Alert, str]] = []
    for alert, first_seen in zip(alerts, stored, strict=True):
        key = (alert.fingerprint, alert.starts_at)
        old = written.get(key, first_seen)
        owner = old.incident_id if old else open_id
        if owner is None:
            continue
        if old is not None and old.status == AlertStatus.RESOLVED.value:
            # A resolved episode stays resolved: the upsert would leave the row alone.
            touched.setdefault(owner, []).append((old, old))
            continue
        upserts.append((alert, owner))
        new = repo.StoredAlert(owner, alert.status.value, alert.labels)
        written[key] = new
        delta = deltas.setdefault(owner, Counter())
        if old is not None:
            delta[(old.status, old.severity)] -= 1
        delta[(new.status, new.severity)] += 1
        touched.setdefault(owner, []).append((old, new))
    await repo.upsert_alerts(conn, upserts, now)
    for incident_id, delta in deltas.items():
        await repo.add_alert_counts(conn, incident_id, delta)
    return touched, deltas


def _miss(silence: Silence, alert: repo.StoredAlert | None) -> int:
    """1 when the alert fires and the silence does not match it."""
    return int(alert is not None and alert.status == "firing"
               and not silence_matches(silence, alert.labels))


async def _silence_misses(conn: repo.Conn, inc: Incident, changes: list[Change],
                          silences: list[Silence], *, is_new: bool) -> dict[str, int]:
    """For each active silence, how many of the incident's firing alerts it does not match:
    the stored count plus what this webhook changed. Counted in full only once, when a
    silence meets an incident it was never counted for (it was made before the count was
    kept, or it has just started)."""
    misses: dict[str, int] = {}
    chats: set[int] | None = None
    for silence in silences:
        base = 0 if is_new else await repo.silence_misses(conn, inc.id, silence.id)
        if base is None:
            if chats is None:
                chats = {card.chat_id for card in await repo.cards_of(conn, inc.id)}
            if not any(coverage.applies_in(silence, chat) for chat in chats):
                continue  # it can never quiet this incident
            labels = await repo.firing_labels(conn, inc.id)
            count = sum(not silence_matches(silence, lb) for lb in labels)
        else:
            count = base + sum(_miss(silence, new) - _miss(silence, old) for old, new in changes)
        if count != base:
            await repo.set_silence_misses(conn, inc.id, silence.id, count)
        misses[silence.id] = count
    return misses


async def _anchor_unknown_starts(conn: repo.Conn, group: AlertGroup) -> AlertGroup:
    """An alert sent without a start time belongs to the episode of its fingerprint that
    is still firing (a re-post or its resolution); only without one does it start now."""
    if all(a.start_known for a in group.alerts):
        return group
    alerts = []
    for alert in group.alerts:
        start = None if alert.start_known else await repo.firing_start(conn, alert.fingerprint)
        alerts.append(alert if start is None else alert.model_copy(update={"starts_at": start}))
    return group.model_copy(update={"alerts": alerts})


async def _plan_cards(
    conn: repo.Conn, incident_id: str, routes: list[Route], ctx: IngestContext, now: datetime
) -> None:
    for route in routes:
        # In topic mode the group's own topic is found or made when the card is sent.
        thread = None if route.chat_id in ctx.topic_chats else route.topic
        remind_at = now + route.pace.after if route.pace.max > 0 else None
        await repo.plan_card(conn, incident_id, route.chat_id, thread,
                             route_index=route.index, remind_at=remind_at)


async def _after_alerts_changed(
    conn: repo.Conn,
    incident_id: str,
    changes: list[Change],
    group: AlertGroup,
    ctx: IngestContext,
    now: datetime,
    silences: list[Silence],
    result: IngestResult,
    *,
    is_new: bool,
    opened: Incident | None = None,
    new_counts: Counter[tuple[str, str]] | None = None,
) -> None:
    """`changes`: what this payload changed of the incident's alerts (all of a new one's).
    An incident this payload opened comes with its row as inserted (`opened`) and its
    counts, which are what this payload added (`new_counts`): not read back."""
    before = opened if opened is not None else await repo.get_incident(conn, incident_id)
    assert before is not None
    counts = ({key: n for key, n in new_counts.items() if n > 0} if new_counts is not None
              else await repo.alert_counts(conn, incident_id))
    inc = await repo.update_incident_counts(
        conn,
        incident_id,
        firing=sum(n for (status, _), n in counts.items() if status == "firing"),
        resolved=sum(n for (status, _), n in counts.items() if status == "resolved"),
        severity=severity_of_counts(counts),
        truncated=group.truncated_alerts,
        updated_at=now,
    )
    misses = await _silence_misses(conn, inc, changes, silences, is_new=is_new)
    if is_new:
        settled = await coverage.settle(conn, inc, now, ctx.voice, silences=silences,
                                        misses=misses, new=True)
        if not settled.loud:
            # Stored, but nothing is posted for an incident silenced in every chat.
            result.silenced.append(incident_id)
            return
        await repo.insert_decision(conn, incident_id, now)
        # One message when the proposal is quick: the card is posted with it, not posted
        # "Analyzing…" and edited a moment later. The analysis ends the wait when it is done.
        wait = ctx.first_card_wait
        await notes.card_changed(conn, inc, now, not_before=now + wait if wait else None)
        return

    # Alerts joining or resolving can move it under a silence or out of one. Chats where it
    # was silenced before its card was sent hear nothing of it (notes.chats_of).
    await coverage.settle(conn, inc, now, ctx.voice, silences=silences, misses=misses)
    # The card first, then the thread notes: the worker keeps this order per incident.
    await notes.card_changed(conn, inc, now)
    if before.status is IncidentStatus.FIRING and inc.status is IncidentStatus.RESOLVED:
        result.resolved.append(incident_id)
        decision = await repo.current_decision(conn, incident_id)
        if decision is not None:
            # "Cancelled before anyone approved" is untrue when nothing was asked: the
            # resolved note alone tells the thread.
            asked = decision.proposal is not None and decision.proposal.action is not None
            await transition(conn, decision.id, Event.CANCEL, now, ctx.voice,
                             detail="incident resolved",
                             thread_note=asked or decision.state is not DecisionState.PENDING)
        await notes.reply(conn, inc, "resolved", now, ctx.voice)
        for chat_id in await notes.chats_of(conn, inc):
            if chat_id in ctx.topic_chats:
                await outbox.enqueue(conn, kind=outbox.TOPIC_CLOSE, chat_id=chat_id,
                                     incident_id=inc.id, now=now)
