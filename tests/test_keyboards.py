"""keyboards: callback data sizes and the card keyboard per state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.models import (
    Action,
    Decision,
    DecisionState,
    Incident,
    Proposal,
    ProposalSource,
    Silence,
    Verb,
)
from keyboards.callbacks import (
    MAX_CALLBACK_BYTES,
    CardAct,
    CardCB,
    HistoryPageCB,
    SilenceAct,
    SilenceCB,
)
from keyboards.incident import incident_keyboard, reminder_keyboard

T = datetime(2026, 11, 27, 13, 7, tzinfo=UTC)
LONG_INC = "INC-" + "Z" * 16
MAX_INT64 = 2**63 - 1


def incident(status: str = "firing", inc_id: str = "INC-7K3F9Q") -> Incident:
    return Incident(
        id=inc_id,
        group_key="g",
        group_labels={},
        title="t",
        alertname="A",
        severity="critical",
        target="cart",
        namespace="shop",
        status=status,
        firing_count=1,
        resolved_count=0,
        opened_at=T,
        updated_at=T,
        chat_id=-100,
    )


def decision(
    state: DecisionState,
    *,
    action: bool = True,
    dry_run: bool = False,
    source: ProposalSource = ProposalSource.RULE,
) -> Decision:
    act = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop")
    prop = Proposal(
        action=act if action else None, risk="medium", summary="s", reasoning="r", source=source
    )
    result = {"dry_run": dry_run} if state == DecisionState.SUCCEEDED else None
    return Decision(
        id=42,
        incident_id="INC-7K3F9Q",
        state=state,
        proposal=prop,
        required_approvals=1,
        created_at=T,
        updated_at=T,
        result=result,
    )


SILENCE = Silence(
    id="s1", matchers=[], reason="r", created_by="al", created_by_id=1, starts_at=T, ends_at=T
)


def texts_of(rows) -> list[list[str]]:
    return [[b["text"] for b in row] for row in rows]


# -- callback data ------------------------------------------------------------


@pytest.mark.parametrize("act", list(CardAct))
def test_card_callback_fits_with_longest_ids(act: CardAct) -> None:
    packed = CardCB(act=act, inc=LONG_INC, dec=MAX_INT64).pack()
    assert len(packed.encode()) <= MAX_CALLBACK_BYTES
    assert CardCB.unpack(packed) == CardCB(act=act, inc=LONG_INC, dec=MAX_INT64)


def test_card_callback_format_is_short_and_versioned() -> None:
    assert CardCB(act=CardAct.APPROVE, inc="INC-7K3F9Q", dec=5).pack() == "c1:a:INC-7K3F9Q:5"
    assert {a.value for a in CardAct} == {"a", "r", "d", "h", "z", "s", "p", "k", "u"}


def test_history_and_silence_callbacks_fit() -> None:
    h = HistoryPageCB(query="x" * 24, page=10_000).pack()
    s = SilenceCB(act=SilenceAct.EXPIRE, sid="0" * 36).pack()  # Alertmanager UUIDs
    assert h.startswith("h1:") and s == "s1:x:" + "0" * 36
    assert len(h.encode()) <= 64 and len(s.encode()) <= 64
    assert HistoryPageCB.unpack(h).page == 10_000


def test_every_keyboard_callback_fits() -> None:
    for state in DecisionState:
        rows = incident_keyboard(
            incident(inc_id=LONG_INC),
            decision(state),
            None,
            source_url="https://grafana.example.com/d/x",
        )
        for row in rows:
            for b in row:
                if "callback_data" in b:
                    assert len(b["callback_data"].encode()) <= MAX_CALLBACK_BYTES


# -- layout per state ---------------------------------------------------------

INFO = ["🔍 Details", "📜 History"]
INFO_RE = [*INFO, "🔄 Re-analyze"]
ACK_SILENCE = ["👀 Ack", "🔕 Silence 1h"]


@pytest.mark.parametrize(
    ("state", "rows"),
    [
        (DecisionState.ANALYZING, [INFO, ACK_SILENCE]),
        (DecisionState.PENDING, [["✅ Approve", "❌ Reject"], INFO_RE, ACK_SILENCE]),
        (DecisionState.APPROVED, [INFO, ACK_SILENCE]),
        (DecisionState.EXECUTING, [INFO, ACK_SILENCE]),
        (DecisionState.SUCCEEDED, [["💾 Save as playbook"], INFO, ACK_SILENCE]),
        (DecisionState.FAILED, [INFO_RE, ACK_SILENCE]),
        (DecisionState.REJECTED, [INFO_RE, ACK_SILENCE]),
        (DecisionState.EXPIRED, [INFO_RE, ACK_SILENCE]),
        (DecisionState.CANCELLED, [INFO_RE, ACK_SILENCE]),
        (DecisionState.INVALID, [INFO_RE, ACK_SILENCE]),
        (DecisionState.SUPERSEDED, [INFO, ACK_SILENCE]),
    ],
)
def test_rows_per_state(state: DecisionState, rows: list[list[str]]) -> None:
    assert texts_of(incident_keyboard(incident(), decision(state), None)) == rows


def test_callback_values_per_button() -> None:
    rows = incident_keyboard(incident(), decision(DecisionState.PENDING), None)
    packed = [CardCB.unpack(b["callback_data"]) for row in rows for b in row]
    assert [p.act for p in packed] == [
        CardAct.APPROVE,
        CardAct.REJECT,
        CardAct.DETAILS,
        CardAct.HISTORY,
        CardAct.REANALYZE,
        CardAct.ACK,
        CardAct.SILENCE,
    ]
    assert {(p.inc, p.dec) for p in packed} == {("INC-7K3F9Q", 42)}


def test_no_decision_yet() -> None:
    rows = incident_keyboard(incident(), None, None)
    assert texts_of(rows) == [INFO, ACK_SILENCE]
    assert CardCB.unpack(rows[0][0]["callback_data"]).dec == 0


def test_pending_without_action_has_no_approve() -> None:
    rows = incident_keyboard(incident(), decision(DecisionState.PENDING, action=False), None)
    assert texts_of(rows) == [INFO_RE, ACK_SILENCE]


@pytest.mark.parametrize(
    ("dry_run", "source"),
    [(True, ProposalSource.RULE), (False, ProposalSource.PLAYBOOK)],
)
def test_no_playbook_button_for_dry_run_or_playbook(dry_run, source) -> None:
    dec = decision(DecisionState.SUCCEEDED, dry_run=dry_run, source=source)
    # A success is final: no re-analysis (it could propose the same action twice).
    assert texts_of(incident_keyboard(incident(), dec, None))[0] == INFO


def test_playbook_button_for_llm_success() -> None:
    dec = decision(DecisionState.SUCCEEDED, source=ProposalSource.LLM)
    assert texts_of(incident_keyboard(incident(), dec, None))[0] == ["💾 Save as playbook"]


def test_silence_hidden_when_silenced_or_resolved() -> None:
    dec = decision(DecisionState.REJECTED)
    assert texts_of(incident_keyboard(incident(), dec, SILENCE)) == [INFO_RE, ["👀 Ack"]]
    # Resolved: no silence, and no re-analysis either (open incidents only).
    assert texts_of(incident_keyboard(incident("resolved"), dec, None)) == [INFO]


def test_url_buttons_only_for_acceptable_links() -> None:
    dec = decision(DecisionState.REJECTED)
    rows = incident_keyboard(
        incident(),
        dec,
        None,
        source_url="https://prometheus.example.com/graph?g0.expr=up",
        runbook_url="https://runbooks.example.com/cart",
    )
    assert rows[-1][2:] == [
        {"text": "📈 Source", "url": "https://prometheus.example.com/graph?g0.expr=up"},
        {"text": "📖 Runbook", "url": "https://runbooks.example.com/cart"},
    ]
    bad = incident_keyboard(
        incident(),
        dec,
        None,
        source_url="http://prometheus-0:9090/graph",
        runbook_url="http://localhost/rb",
    )
    assert texts_of(bad) == [INFO_RE, ACK_SILENCE]
    off = incident_keyboard(
        incident(), dec, None, source_url="https://grafana.example.com/", url_buttons=False
    )
    assert texts_of(off) == [INFO_RE, ACK_SILENCE]


def test_zh_tw_labels() -> None:
    rows = incident_keyboard(incident(), decision(DecisionState.PENDING), None, locale="zh-TW")
    assert rows[0][0]["text"].startswith("✅") and "Approve" not in rows[0][0]["text"]


def test_ack_becomes_unack_and_a_reminder_has_its_own_ack() -> None:
    acked = incident().model_copy(update={"acked_by_id": 333, "acked_by": "@carol", "acked_at": T})
    rows = incident_keyboard(acked, decision(DecisionState.PENDING), None)
    assert texts_of(rows)[-1] == ["↩️ Unack", "🔕 Silence 1h"]
    assert CardCB.unpack(rows[-1][0]["callback_data"]).act is CardAct.UNACK
    (button,), = reminder_keyboard("INC-7K3F9Q")
    assert button["text"] == "👀 Ack"
    assert CardCB.unpack(button["callback_data"]) == CardCB(act=CardAct.ACK, inc="INC-7K3F9Q")
