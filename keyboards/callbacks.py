"""Callback data factories.

Short versioned prefixes keep packed data far below Telegram's 64-byte limit
and let a future format change tell old buttons apart (bump c1 -> c2).
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

MAX_CALLBACK_BYTES = 64


class CardAct(StrEnum):
    APPROVE = "a"
    REJECT = "r"
    DETAILS = "d"
    HISTORY = "h"
    REANALYZE = "z"
    SILENCE = "s"
    PLAYBOOK = "p"


class CardCB(CallbackData, prefix="c1"):
    act: CardAct
    inc: str  # incident id, e.g. INC-7K3F9Q
    dec: int = 0  # decision id the card showed; 0 when none


class HistoryPageCB(CallbackData, prefix="h1"):
    query: str  # short: a target or incident id, ':' and '%' percent-encoded
    page: int = 0
    n: int = 10  # rows per page


class SilenceAct(StrEnum):
    EXPIRE = "x"


class SilenceCB(CallbackData, prefix="s1"):
    act: SilenceAct
    sid: str
