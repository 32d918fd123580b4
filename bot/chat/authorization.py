"""Who may act on which incident, from where.

Callback data is text a client sends, so the incident a press names is believed only
when the pressed message is that incident's in that chat: its card there, or a message
the bot sent there for it (a thread note, Details, History). The rights to change it
come from the routes that bring that incident into that chat (ROUTES_PATH), not from
the chat alone: a chat that two routes post into may have different approvers for each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot import audit
from bot.alerts.routing import Route, RouteTable
from bot.incidents.approvals import Authorizer, Outcome
from bot.labels import shared
from bot.models import Actor, Matcher, Silence
from bot.silences.alertmanager import RemoteSilence
from bot.silences.matching import matcher_matches
from storage import outbox, repo
from storage.db import Database


@dataclass(frozen=True)
class Pressed:
    """A press as Telegram reports it: who, where, on which message, naming what."""

    actor: Actor
    chat_id: int
    message_id: int
    action: str
    incident_id: str
    decision_id: int
    # Telegram's own copy of the pressed message carries a button with exactly this data:
    # the bot put it there, so it is this incident's card even before its id is stored.
    carried: bool = False


class IncidentAccess:
    def __init__(self, db: Database, routes: RouteTable, authz: Authorizer,
                 clock: Callable[[], datetime]) -> None:
        self.db = db
        self.routes = routes
        self.authz = authz
        self.clock = clock

    async def incident_of_message(self, chat_id: int, message_id: int) -> str | None:
        """The incident a message of ours in this chat belongs to, if any."""
        # Reads by key, on the loop's thread: a press waits for them.
        async with self.db.read(inline=True) as conn:
            card = await repo.card_by_message(conn, chat_id, message_id)
            if card is not None:
                return card.incident_id
            sent = await outbox.sent_item(conn, chat_id, message_id)
        return sent.incident_id if sent is not None else None

    async def routes_into(self, chat_id: int, incident_id: str) -> list[Route]:
        """The routes that bring this incident into this chat; none when it has no card
        there. Resolved from its alerts' labels as ingest resolved them."""
        async with self.db.read(inline=True) as conn:
            inc = await repo.get_incident(conn, incident_id)
            card = await repo.get_card(conn, incident_id, chat_id) if inc else None
        if inc is None or card is None:
            return []
        labels: dict[str, str] = {}
        if not all(r.catch_all for r in self.routes.routes):
            # Labels matter to routes that match on them: a scan of the incident's alerts
            # (as many as it has), off the loop's thread.
            async with self.db.read() as conn:
                firing = await repo.firing_labels(conn, incident_id) or [
                    a.labels for a in await repo.alerts_of(conn, incident_id)]
            labels = shared(firing)
        labels.update(inc.group_labels)
        return [r for r in self.routes.resolve(labels) if r.chat_id == chat_id]

    async def route_index_into(self, chat_id: int, incident_id: str) -> int | None:
        """The file position of the first route that brings this incident here (0: the
        default route), or None when none does."""
        routes = await self.routes_into(chat_id, incident_id)
        return routes[0].index if routes else None

    async def is_routed_here(self, chat_id: int, incident_id: str) -> bool:
        async with self.db.read() as conn:
            return await repo.get_card(conn, incident_id, chat_id) is not None

    async def may_act(self, chat_id: int, user_id: int, incident_id: str) -> bool:
        routes = await self.routes_into(chat_id, incident_id)
        if not routes:
            return False
        return any(user_id in r.approvers for r in routes) or await self.authz.is_admin(
            chat_id, user_id)

    async def check_press(self, press: Pressed, *, mutating: bool) -> Outcome | None:
        """None when the press may go on; else its refusal, audited."""
        owner = await self.incident_of_message(press.chat_id, press.message_id)
        refusal = detail = ""
        if owner is None:
            async with self.db.read(inline=True) as conn:
                known = await repo.get_incident(conn, press.incident_id) is not None
                card = await repo.get_card(conn, press.incident_id, press.chat_id)
            here = known and card is not None
            # Its card here is being sent (no message id yet) and this is it; or the id
            # was stored between the two reads (each read sees the latest commit).
            if here and card is not None and (
                    card.message_id == press.message_id
                    or (press.carried and card.message_id is None)):
                owner = press.incident_id
            else:
                refusal = "stale_card" if here else ("not_here" if known else "unknown_incident")
                detail = "unknown message"
        if not refusal and owner != press.incident_id:
            refusal, detail = "wrong_message", f"pressed on a message of {owner}"
        elif not refusal and mutating and not await self.may_act(
                press.chat_id, press.actor.user_id, press.incident_id):
            refusal, detail = "not_allowed", "no route into this chat makes them an approver"
        if not refusal:
            return None
        await audit.write(self.db, self.clock(), press.action, refusal, actor=press.actor,
                          incident_id=press.incident_id, decision_id=press.decision_id,
                          detail=f"message {press.message_id}: {detail}")
        return Outcome(refusal, {"user_id": press.actor.user_id}, alert=True)

    # ------------------------------------------------------------ silences

    async def silence_scope(self, chat_id: int, user_id: int,
                            incident_id: str | None = None) -> list[Matcher] | None:
        """The label matchers a silence made in this chat gets added, so that it (and its
        Alertmanager copy) covers no more than the routes into this chat where this person
        approves: the route that brings the incident here, or, without one, every such
        route. None when no set of matchers says that (routes with different labels, or a
        catch-all route while other routes post elsewhere): one silence cannot say "A or B"
        or "everything the earlier routes did not take"."""
        if incident_id is not None:
            routes = await self.routes_into(chat_id, incident_id)
            scopes = {route_matchers(r) for r in routes}
            scope = min(scopes, key=len, default=None) if scopes else None
            return [Matcher(name=n, value=v, is_regex=rx) for n, v, rx in scope or ()]
        table = [*self.routes.routes, self.routes.default]
        admin = await self.authz.is_admin(chat_id, user_id)
        mine = [r for r in table if r.chat_id == chat_id and (admin or user_id in r.approvers)]
        if mine and len(mine) == len(table):
            return []  # every alert comes here: nothing to narrow
        scopes = {route_matchers(r) for r in mine}
        if len(scopes) != 1 or not (scope := scopes.pop()):
            return None
        return [Matcher(name=n, value=v, is_regex=rx) for n, v, rx in scope]

    async def may_expire(self, chat_id: int, user_id: int, silence_id: str) -> bool:
        """An approver here, and also in the chat the silence was made in."""
        if not await self.authz.is_approver(chat_id, user_id):
            return False
        async with self.db.read() as conn:
            made_in, _ = await repo.silence_extras(conn, silence_id)
        return made_in is None or made_in == chat_id or await self.authz.is_approver(
            made_in, user_id)

    async def silences_made_here(self, chat_id: int, silences: list[Silence]) -> list[Silence]:
        return [s for s in silences if s.chat_id in (chat_id, None)]

    def only_here(self, chat_id: int, matchers: list[Matcher]) -> bool:
        """Whether every alert these matchers select is routed into this chat alone, so
        that an Alertmanager copy of the silence (which mutes those alerts for every
        receiver, opsgate's webhook included) cannot quiet another chat. Conservative:
        a route counts as disjoint only when a label pins it apart."""
        for route in self.routes.routes:
            if disjoint(matchers, route):
                continue
            if route.chat_id != chat_id:
                return False  # some of these alerts may go to another chat
            if within(matchers, route) and not route.continue_:
                return True  # all of them stop here
        return self.routes.default.chat_id == chat_id

    def remote_within(self, chat_id: int, remote: list[RemoteSilence]) -> list[RemoteSilence]:
        """Silences only Alertmanager knows that concern this chat alone: their matchers
        pin the labels of a route into it (or every route posts here). One that is wider
        (e.g. alertname=X alone, while routes post into other chats) belongs to no chat."""
        table = [*self.routes.routes, self.routes.default]
        if all(r.chat_id == chat_id for r in table):
            return list(remote)
        routes = [r for r in table if r.chat_id == chat_id and not r.catch_all]
        return [s for s in remote if any(within(s.matchers, r) for r in routes)]


def route_matchers(route: Route) -> tuple[tuple[str, str, bool], ...]:
    """A route's own labels as silence matchers (name, value, is_regex), in a stable order."""
    return tuple(sorted([(k, v, False) for k, v in route.match]
                        + [(k, p.pattern, True) for k, p in route.match_regex]))


def within(matchers: list[Matcher], route: Route) -> bool:
    """Whether every alert these (positive) matchers select also matches the route's own
    labels: each label the route pins is pinned by the matchers to a value it accepts
    (for a regex of the route, a value it matches or that very regex)."""
    def exact(name: str, value: str) -> bool:
        return any(m.name == name and not m.is_regex and m.value == value for m in matchers)

    def pattern(name: str, p: re.Pattern[str]) -> bool:
        return any(m.name == name and (m.value == p.pattern if m.is_regex
                                       else p.fullmatch(m.value) is not None)
                   for m in matchers)

    return (all(exact(k, v) for k, v in route.match)
            and all(pattern(k, p) for k, p in route.match_regex))


def disjoint(matchers: list[Matcher], route: Route) -> bool:
    """Whether no alert can match both: some label is pinned to values that differ."""
    for name, value in route.match:
        if any(m.name == name and not matcher_matches(m, {name: value}) for m in matchers):
            return True
    for name, pattern in route.match_regex:
        if any(m.name == name and not m.is_regex and pattern.fullmatch(m.value) is None
               for m in matchers):
            return True
    return False
