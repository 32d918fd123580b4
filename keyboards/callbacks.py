"""Callback data factories.

Short versioned prefixes keep packed data far below Telegram's 64-byte limit
and let a future format change tell old buttons apart (bump c1 -> c2).

Callback data is text a client sends: every field is bounded here, so a forged
press fails to parse (and reaches the unknown-button handler) instead of carrying
an id SQLite cannot hold (INTEGER is signed 64-bit).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field, StringConstraints

MAX_CALLBACK_BYTES = 64
MAX_ROW_ID = 2**63 - 1  # SQLite INTEGER

RowId = Annotated[int, Field(ge=0, le=MAX_ROW_ID)]
IncidentId = Annotated[str, StringConstraints(pattern=r"^INC-[0-9A-Z]{1,16}$")]


class CardAct(StrEnum):
    APPROVE = "a"
    REJECT = "r"
    DETAILS = "d"
    HISTORY = "h"
    REANALYZE = "z"
    SILENCE = "s"
    PLAYBOOK = "p"
    ACK = "k"  # "I'm on it": a property of the incident, so `dec` does not matter
    UNACK = "u"


class CardCB(CallbackData, prefix="c1"):
    act: CardAct
    inc: IncidentId  # e.g. INC-7K3F9Q
    dec: RowId = 0  # decision id the card showed; 0 when none


class HistoryPageCB(CallbackData, prefix="h1"):
    query: Annotated[str, StringConstraints(max_length=48)]  # ':' and '%' percent-encoded
    # OFFSET page * n stays far inside SQLite's INTEGER.
    page: Annotated[int, Field(ge=0, le=10**7)] = 0
    n: Annotated[int, Field(ge=1, le=50)] = 10  # rows per page


MAX_ALERT_INDEX = 10**7  # far above any incident's alert count


class DetailsPageCB(CallbackData, prefix="d1"):
    """A page of an incident's alerts under its Details answer: from alert `at` (0-based) on,
    or, with `back`, the page that ends just before it."""

    inc: IncidentId
    at: Annotated[int, Field(ge=0, le=MAX_ALERT_INDEX)] = 0
    back: bool = False


class DigestPageCB(CallbackData, prefix="g1"):
    """A page of a storm's digest (0-based)."""

    dig: RowId
    page: Annotated[int, Field(ge=0, le=10**6)] = 0


class DigestOpenCB(CallbackData, prefix="g2"):
    """Post the card of an incident the digest lists."""

    dig: RowId
    inc: IncidentId


class SilenceAct(StrEnum):
    EXPIRE = "x"


class SilenceCB(CallbackData, prefix="s1"):
    act: SilenceAct
    sid: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{1,40}$")]


# Every factory a handler serves; data that none of them parses is an unknown button.
KNOWN_CALLBACKS: tuple[type[CallbackData], ...] = (CardCB, HistoryPageCB, SilenceCB,
                                                   DetailsPageCB, DigestPageCB, DigestOpenCB)
