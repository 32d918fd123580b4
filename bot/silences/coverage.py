"""Silenced is a property of an incident in a chat.

The incident's card in a chat is quiet exactly when an active silence made in that chat (or
one from before silences had a chat) matches every firing alert of the incident. `settle`
keeps the stored mark (cards.silence_id) equal to that rule; everything that can move it
calls it in its own transaction: alerts arriving, a silence made, expired or run out. So the
order in which silences come and go does not matter: with two silences over one incident,
the end of one leaves it quiet under the other.

A resolved incident keeps the mark it had while its silence lasts: nothing fires that could
match or not, and its card says so at the top anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.cards import notes
from bot.cards.notes import Voice
from bot.models import Incident, IncidentStatus, Silence
from bot.silences.matching import silence_matches
from storage import outbox, repo
from storage.repo import CardRow, Conn


def applies_in(silence: Silence, chat_id: int) -> bool:
    return silence.chat_id is None or silence.chat_id == chat_id


def covering(silences: list[Silence], chat_id: int, labels: list[dict[str, str]]
             ) -> list[Silence]:
    """The silences that keep an incident with these firing alerts quiet in this chat."""
    if not labels:
        return []
    return [s for s in silences
            if applies_in(s, chat_id) and all(silence_matches(s, lb) for lb in labels)]


@dataclass
class Settled:
    quiet: list[int] = field(default_factory=list)  # chats where it is silenced now
    loud: list[int] = field(default_factory=list)  # chats where it is not
    changed: list[int] = field(default_factory=list)  # chats whose mark moved


async def settle(conn: Conn, inc: Incident, now: datetime, voice: Voice, *,
                 silences: list[Silence] | None = None, misses: Mapping[str, int] | None = None,
                 new: bool = False) -> Settled:
    """Make the incident's silence mark in each of its chats what the rule says, and queue
    what that changes: the card edited, a card posted where it was kept back until now, a
    thread note where it goes quiet. `new`: just opened; the caller posts its cards.
    `misses` (silence id -> firing alerts it does not match, for every active silence that
    could apply; ingest keeps them): the rule without reading the incident's alerts."""
    active = silences if silences is not None else await repo.active_silences(conn, now)
    firing = inc.status is IncidentStatus.FIRING
    labels = await repo.firing_labels(conn, inc.id) if firing and misses is None else []
    done = Settled()
    for card in await repo.cards_of(conn, inc.id):
        current = next((s for s in active if s.id == card.silence_id), None)
        if firing:
            matching = (covering(active, card.chat_id, labels) if misses is None else
                        [s for s in active
                         if applies_in(s, card.chat_id) and misses.get(s.id) == 0])
            # The mark stays on a silence that still covers it; else the longest lasting.
            if current is None or current not in matching:
                current = max(matching, key=lambda s: s.ends_at, default=None)
        (done.quiet if current else done.loud).append(card.chat_id)
        wanted = current.id if current else None
        if wanted == card.silence_id:
            continue
        done.changed.append(card.chat_id)
        await repo.set_card_silence(conn, inc.id, card.chat_id, wanted)
        if not new:
            await _changed(conn, inc, card, current, now, voice)
    return done


async def _changed(conn: Conn, inc: Incident, card: CardRow, silence: Silence | None,
                   now: datetime, voice: Voice) -> None:
    posted = card.message_id is not None
    if silence is not None and not posted:
        return  # quiet before its card was sent: the card stays unsent
    if not posted:
        if inc.status is not IncidentStatus.FIRING:
            return
        # Silenced from the start in this chat: its card is posted now, with a decision
        # (none exists when every chat silenced it from the start).
        if await repo.current_decision(conn, inc.id) is None:
            await repo.insert_decision(conn, inc.id, now)
    await outbox.enqueue(conn, kind=outbox.CARD, chat_id=card.chat_id, incident_id=inc.id,
                         now=now, lane=notes.card_lane(inc, posted=posted))
    if silence is not None and card.silence_id is None:
        text = notes.render("silenced", voice, incident=inc, name=silence.created_by,
                            until=silence.ends_at, reason=silence.reason)
        await notes.reply_texts(conn, inc, [text], now, note="silenced", chat_id=card.chat_id)
