"""bot.cards.card: the card and thread texts under hostile input, every state, limits."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from factories import T0, UTC_TZ, make_incident

from bot.cards.card import (
    THREAD_KINDS,
    CardView,
    render_card,
    render_message,
    render_thread,
    render_whoami,
)
from bot.cards.details import render_details
from bot.models import (
    Action,
    Alert,
    Approval,
    Decision,
    DecisionState,
    Proposal,
    ProposalSource,
    Risk,
    Silence,
    Verb,
)
from keyboards.urls import button_url_ok
from sandbox.judge import check_message_text

EFFECT = "kubectl rollout restart deployment/cart --namespace shop"
LOCALES = ("en", "zh-TW")

HOSTILE = [
    "<b>",
    "<script>alert(1)</script>",
    "a & b && c",
    "say \"hi\" 'there'",
    "; rm -rf /",
    "&lt;already&gt; &amp; &#60; &nbsp;",
    "🔥💥🚨 emoji 👩‍👩‍👧‍👦",
    "שלום עולם مرحبا \u202etxt.exe",
    "</code></pre></blockquote><a href='x'>",
    "x" * 4000,
    "\x00\x1b[31mred\r\n\ud800",
]


def check(html: str) -> str:
    """The emulator's parser must accept it; returns the text users see."""
    parsed = check_message_text(html)
    assert len(parsed.text) <= 4096
    assert len(html.encode()) <= 30 * 1024
    return parsed.text


def make_alert(
    i: int = 0,
    *,
    labels: dict | None = None,
    annotations: dict | None = None,
    status: str = "firing",
    url: str = "http://prometheus-0:9090/graph?g0.expr=up",
) -> Alert:
    return Alert(
        fingerprint=f"{i:016x}",
        status=status,
        labels=labels
        if labels is not None
        else {
            "alertname": "KubePodCrashLooping",
            "namespace": "shop",
            "pod": f"cart-5d8f-{i}",
            "severity": "critical",
        },
        annotations=annotations
        if annotations is not None
        else {
            "summary": "Pod shop/cart is crash looping",
            "description": "Back-off restarting failed container",
        },
        starts_at=T0 + timedelta(seconds=i),
        ends_at=T0 + timedelta(minutes=12) if status == "resolved" else None,
        generator_url=url,
    )


def make_decision(
    state: DecisionState = DecisionState.PENDING, *, action: bool = True, required: int = 1, **kw
) -> Decision:
    act = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop")
    prop = Proposal(
        action=act if action else None,
        risk=Risk.MEDIUM,
        summary="Restart the deployment",
        reasoning="restarting clears most crash loops caused by bad state",
        source=ProposalSource.RULE,
        source_name="pod-crash",
    )
    base = dict(
        id=7,
        incident_id="INC-7K3F9Q",
        state=state,
        proposal=prop,
        required_approvals=required,
        created_at=T0,
        updated_at=T0 + timedelta(minutes=1),
    )
    base.update(kw)
    return Decision(**base)


def view(**kw) -> CardView:
    base = dict(
        incident=make_incident(),
        alerts=[make_alert(i) for i in range(3)],
        decision=make_decision(),
        approvals=[],
        silence=None,
        effect=EFFECT,
        tz=UTC_TZ,
    )
    base.update(kw)
    return CardView(**base)


def approval(name: str, minutes: int, uid: int = 1) -> Approval:
    return Approval(decision_id=7, user_id=uid, user_name=name, at=T0 + timedelta(minutes=minutes))


APPROVED_AT = T0 + timedelta(minutes=3)
DECIDED = dict(decided_by="alice", decided_by_id=1, decided_at=APPROVED_AT)


# -- basic content -------------------------------------------------------------


def test_pending_card_content() -> None:
    card = render_card(view())
    text = check(card.text)
    lines = text.splitlines()
    assert lines[0] == "🔴 CRITICAL · KubePodCrashLooping — cart"
    assert lines[1] == "INC-7K3F9Q · shop · 3 alerts firing · since 2026-11-27 13:07 UTC"
    assert "Pod shop/cart is crash looping" in text
    assert "Proposal (rule: pod-crash) · risk medium · confidence rule" in text
    assert EFFECT in text
    assert "Why: restarting clears most crash loops" in text
    assert lines[-1] == "⏳ Awaiting approval"
    assert f"<code>{EFFECT}</code>" in card.text
    assert "<blockquote expandable>Back-off restarting failed container</blockquote>" in card.text


@pytest.mark.parametrize(
    ("severity", "marker"),
    [
        ("critical", "🔴"),
        ("warning", "🟠"),
        ("high", "🟠"),
        ("info", "🔵"),
        ("page", "⚪"),
        ("", "⚪"),
    ],
)
def test_severity_marker(severity: str, marker: str) -> None:
    text = check(render_card(view(incident=make_incident(severity=severity))).text)
    assert text.startswith(f"{marker} {severity.upper()} · ")


def test_time_zone_is_applied() -> None:
    text = check(render_card(view(tz=ZoneInfo("Asia/Taipei"))).text)
    assert "since 2026-11-27 21:07 CST" in text


def test_model_proposal_with_confidence() -> None:
    dec = make_decision()
    prop = dec.proposal.model_copy(
        update={"source": ProposalSource.LLM, "source_name": "gpt-x", "confidence": 0.823}
    )
    text = check(render_card(view(decision=dec.model_copy(update={"proposal": prop}))).text)
    assert "Proposal (model: gpt-x) · risk medium · confidence 0.82" in text


def test_no_action_proposed() -> None:
    dec = make_decision(DecisionState.PENDING, action=False)
    card = render_card(view(decision=dec))
    text = check(card.text)
    assert "No automatic action proposed (rule: pod-crash)" in text
    assert "Approve" not in str(card.keyboard)


def test_effect_fallback_from_action() -> None:
    text = check(render_card(view(effect=None)).text)
    assert "rollout-restart deployment/cart --namespace shop" in text


# -- every decision state ---------------------------------------------------------

STATE_LINES = {
    DecisionState.ANALYZING: (dict(), "⏳ Analyzing…"),
    DecisionState.PENDING: (dict(), "⏳ Awaiting approval"),
    DecisionState.APPROVED: (DECIDED, "✅ Approved by alice at 13:10 UTC — executing"),
    DecisionState.EXECUTING: (DECIDED, "⚙️ Executing — approved by alice at 13:10 UTC"),
    DecisionState.SUCCEEDED: (
        dict(DECIDED, result={"dry_run": True, "output": "ok"}),
        "✅ Done (dry-run) — approved by alice at 13:10 UTC",
    ),
    DecisionState.FAILED: (
        dict(DECIDED, result={"error": "exit code 1", "output": "boom"}),
        "❌ Failed: exit code 1 — approved by alice at 13:10 UTC",
    ),
    DecisionState.REJECTED: (
        dict(decided_by="bob", decided_at=T0 + timedelta(minutes=5), reason="not now"),
        "🚫 Rejected by bob at 13:12 UTC: not now",
    ),
    DecisionState.EXPIRED: (
        dict(decided_at=T0 + timedelta(days=1)),
        "⌛ Expired at 2026-11-28 13:07 UTC — nobody approved",
    ),
    DecisionState.CANCELLED: (dict(), "➖ Cancelled: the incident resolved"),
    DecisionState.INVALID: (
        dict(invalid_reason="deployment name 'Cart!' is not valid"),
        "⚠️ No valid action: deployment name 'Cart!' is not valid",
    ),
    DecisionState.SUPERSEDED: (dict(), "↪️ Superseded by a newer analysis"),
}


@pytest.mark.parametrize("state", list(DecisionState))
def test_state_line(state: DecisionState) -> None:
    kw, expected = STATE_LINES[state]
    approvals = [approval("alice", 3)] if kw.get("decided_by") == "alice" else []
    card = render_card(view(decision=make_decision(state, **kw), approvals=approvals))
    assert check(card.text).splitlines()[-1] == expected
    for locale in LOCALES[1:]:
        check(render_card(view(decision=make_decision(state, **kw), locale=locale)).text)


def test_auto_approved() -> None:
    dec = make_decision(DecisionState.APPROVED, auto_approved=True, reason="low risk, rule scale")
    assert check(render_card(view(decision=dec)).text).endswith(
        "🤖 Auto-approved: low risk, rule scale — executing"
    )
    done = make_decision(
        DecisionState.SUCCEEDED, auto_approved=True, reason="low risk", result={"dry_run": False}
    )
    assert check(render_card(view(decision=done)).text).endswith(
        "✅ Done — auto-approved: low risk"
    )


def test_two_approval_progress() -> None:
    dec = make_decision(required=2)
    text = check(render_card(view(decision=dec, approvals=[approval("alice", 2)])).text)
    assert text.endswith("⏳ Awaiting approval · 1/2 (alice)")
    text0 = check(render_card(view(decision=dec)).text)
    assert text0.endswith("⏳ Awaiting approval · 0/2")
    both = make_decision(DecisionState.APPROVED, required=2, decided_at=APPROVED_AT)
    text2 = check(
        render_card(
            view(decision=both, approvals=[approval("bob", 3, 2), approval("alice", 2)])
        ).text
    )
    assert text2.endswith("✅ Approved by alice, bob at 13:10 UTC — executing")


@pytest.mark.parametrize(("locale", "why"), [
    ("en", "🔐 shop is a critical namespace: 2 different approvers needed"),
    ("zh-TW", "🔐 shop 是關鍵命名空間：需要 2 位不同的核准者"),
])
def test_critical_namespace_says_why_two_approvals(locale: str, why: str) -> None:
    dec = make_decision(required=2)
    assert dec.proposal is not None
    flagged = dec.model_copy(update={"proposal": dec.proposal.model_copy(
        update={"critical_namespace": True, "risk": Risk.CRITICAL})})
    lines = check(render_card(view(decision=flagged, locale=locale)).text).splitlines()
    assert lines[-2] == why
    assert why not in check(render_card(view(decision=dec, locale=locale)).text)
    approved = flagged.model_copy(update={"state": DecisionState.APPROVED, **DECIDED})
    assert why not in check(render_card(view(decision=approved, locale=locale)).text)


def test_many_approvers_are_capped_but_counted() -> None:
    dec = make_decision(required=50)
    approvals = [approval("x" * 4000 + str(i), i, uid=i) for i in range(40)]
    text = check(render_card(view(decision=dec, approvals=approvals)).text)
    assert "· 40/50 (" in text and text.endswith(" +35)")


def test_approvals_of_other_decisions_are_ignored() -> None:
    dec = make_decision(required=2)
    other = Approval(decision_id=99, user_id=5, user_name="mallory", at=T0)
    assert "mallory" not in render_card(view(decision=dec, approvals=[other])).text


def test_no_decision_at_all() -> None:
    card = render_card(view(decision=None, effect=None))
    text = check(card.text)
    assert "Proposal" not in text and "⏳" not in text


# -- resolved and silenced ----------------------------------------------------------


def test_resolved_card() -> None:
    inc = make_incident(
        status="resolved",
        firing_count=0,
        resolved_count=3,
        resolved_at=T0 + timedelta(minutes=12, seconds=4),
    )
    dec = make_decision(DecisionState.CANCELLED)
    card = render_card(
        view(
            incident=inc, decision=dec, alerts=[make_alert(i, status="resolved") for i in range(3)]
        )
    )
    text = check(card.text)
    lines = text.splitlines()
    assert lines[0] == "✅ RESOLVED · CRITICAL · KubePodCrashLooping — cart"
    assert lines[1] == (
        "INC-7K3F9Q · shop · opened 2026-11-27 13:07 UTC · resolved at 13:20 UTC after 12m"
    )
    assert lines[-1] == "➖ Cancelled: the incident resolved"
    assert "Silence" not in str(card.keyboard)


def test_silenced_card() -> None:
    silence = Silence(
        id="abc",
        matchers=[],
        reason="deploy",
        created_by="carol",
        created_by_id=3,
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
    )
    card = render_card(view(silence=silence))
    assert "🔕 Silenced until 14:07 UTC by carol" in check(card.text)
    assert "Silence 1h" not in str(card.keyboard)


def test_truncated_alerts_mentioned() -> None:
    text = check(render_card(view(truncated_alerts=17)).text)
    assert "17 more alerts were left out by Alertmanager" in text


# -- links: buttons vs text ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://grafana.example.com/d/abc?var=1", True),
        ("http://prometheus.acme.io:9090/graph", True),
        ("https://8.8.8.8/x", True),
        ("https://bücher.example/x", False),
        ("https://xn--bcher-kva.de/x", True),
        ("http://prometheus-0:9090/graph", False),
        ("http://localhost:9090/", False),
        ("http://127.0.0.1:9093", False),
        ("http://10.1.2.3/", False),
        ("http://192.168.0.10/", False),
        ("http://[::1]/", False),
        ("http://prometheus.monitoring.svc.cluster.local:9090/", False),
        ("http://alertmanager.svc/", False),
        ("http://host.internal/", False),
        ("http://10.0.0/", False),
        ("ftp://example.com/x", False),
        ("javascript:alert(1)", False),
        ("https://user:pw@example.com/", False),
        ("https://example.com/a b", False),
        ("https://exa_mple.com/", False),
        ("https://example.com:99999/", False),
        ("", False),
        ("https://" + "a" * 3000 + ".com/", False),
    ],
)
def test_button_url_ok(url: str, ok: bool) -> None:
    assert button_url_ok(url) is ok


def test_good_links_become_buttons_bad_links_text() -> None:
    good = [
        make_alert(
            0,
            url="https://prometheus.example.com/graph?g0.expr=up&x=<1>",
            annotations={"summary": "s", "runbook_url": "https://wiki.example.com/rb"},
        )
    ]
    card = render_card(view(alerts=good))
    urls = [b["url"] for row in card.keyboard for b in row if "url" in b]
    assert urls == [
        "https://prometheus.example.com/graph?g0.expr=up&x=<1>",
        "https://wiki.example.com/rb",
    ]
    assert "Source:" not in check(card.text)

    bad = [make_alert(0, annotations={"summary": "s", "runbook_url": "http://wiki/rb?a=1&b=<2>"})]
    card = render_card(view(alerts=bad))
    text = check(card.text)
    assert not [b for row in card.keyboard for b in row if "url" in b]
    assert "Source: http://prometheus-0:9090/graph?g0.expr=up" in text
    assert "Runbook: http://wiki/rb?a=1&b=<2>" in text
    assert "<code>http://wiki/rb?a=1&amp;b=&lt;2&gt;</code>" in card.text


def test_url_buttons_off_shows_links_as_text() -> None:
    alerts = [make_alert(0, url="https://prometheus.example.com/graph")]
    card = render_card(view(alerts=alerts, url_buttons=False))
    assert "Source: https://prometheus.example.com/graph" in check(card.text)
    assert not [b for row in card.keyboard for b in row if "url" in b]


# -- hostile input ---------------------------------------------------------------------


def hostile_view(value: str, n_alerts: int = 3, locale: str = "en") -> CardView:
    labels = {"alertname": value, "namespace": value, "pod": value, value[:50]: value}
    alerts = [
        make_alert(
            i,
            labels={**labels, "pod": f"{value[:100]}-{i}"},
            annotations={"summary": value, "description": value, "runbook_url": value},
            url=value,
        )
        for i in range(n_alerts)
    ]
    inc = make_incident(alertname=value, target=value, namespace=value, severity=value, title=value)
    act = Action(verb=Verb.SCALE, target_name=value, namespace=value, params={"replicas": 3})
    prop = Proposal(
        action=act,
        risk=Risk.HIGH,
        summary=value,
        reasoning=value,
        source=ProposalSource.PLAYBOOK,
        source_name=value,
    )
    dec = make_decision(
        DecisionState.REJECTED, proposal=prop, decided_by=value, reason=value, decided_at=T0
    )
    silence = Silence(
        id="x",
        matchers=[],
        reason=value,
        created_by=value,
        created_by_id=1,
        starts_at=T0,
        ends_at=T0,
    )
    return view(
        incident=inc,
        alerts=alerts,
        decision=dec,
        effect=value,
        silence=silence,
        locale=locale,
        approvals=[approval(value, 1)],
    )


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("locale", LOCALES)
def test_hostile_values_are_escaped(value: str, locale: str) -> None:
    card = render_card(hostile_view(value, locale=locale))
    text = check(card.text)
    assert "<script>" not in card.text
    if value.startswith("<script>"):
        assert "<script>alert(1)</script>" in text  # shown literally, not as markup
    assert "&lt;b&gt;" in card.text or value != "<b>"
    for row in card.keyboard:
        for b in row:
            assert "url" not in b or button_url_ok(b["url"])


@pytest.mark.parametrize("locale", LOCALES)
def test_all_hostile_states(locale: str) -> None:
    for value in HOSTILE:
        base = hostile_view(value, locale=locale)
        for state in DecisionState:
            dec = base.decision.model_copy(
                update={
                    "state": state,
                    "invalid_reason": value,
                    "result": {"error": value},
                }
            )
            check(render_card(dataclasses.replace(base, decision=dec)).text)


def test_huge_annotations_are_truncated() -> None:
    long = "word " * 1000  # 5,000 characters
    alerts = [make_alert(0, annotations={"summary": long, "description": long})]
    card = render_card(view(alerts=alerts))
    text = check(card.text)
    assert "…" in text
    assert len(text) < 4096
    assert text.count("word") < 400


def test_many_alerts_are_capped() -> None:
    alerts = [make_alert(i) for i in range(300)]
    card = render_card(view(alerts=alerts, incident=make_incident(firing_count=300)))
    text = check(card.text)
    assert "300 alerts firing" in text
    assert "• pod=cart-5d8f-0" in text
    assert "… 292 more" in text


def test_worst_case_everything_long_still_fits() -> None:
    value = "&<>\"'" * 900  # escapes to ~5x its size; 4,500 characters
    alerts = [
        make_alert(
            i,
            labels={f"k{j}": value for j in range(40)} | {"pod": f"{value}{i}"},
            annotations={"summary": value, "description": value, "runbook_url": value},
            url=value,
        )
        for i in range(300)
    ]
    v = hostile_view(value)
    for locale in LOCALES:
        card = render_card(dataclasses.replace(v, alerts=alerts, locale=locale))
        check(card.text)
        emoji = dataclasses.replace(
            v,
            alerts=[
                make_alert(0, annotations={"summary": "🚨" * 5000, "description": "🚨" * 5000})
            ],
            locale=locale,
        )
        check(render_card(emoji).text)


def test_distinct_instances_and_resolved_marker() -> None:
    alerts = [make_alert(0), make_alert(1, status="resolved"), make_alert(2)]
    text = check(render_card(view(alerts=alerts)).text)
    assert "• pod=cart-5d8f-0" in text
    assert "✅ pod=cart-5d8f-1" in text


def test_single_alert_has_no_list() -> None:
    text = check(render_card(view(alerts=[make_alert(0)])).text)
    assert "Alerts" not in text


# -- determinism -------------------------------------------------------------------------


def test_same_state_same_digest() -> None:
    a = render_card(view(approvals=[approval("alice", 1)], decision=make_decision(required=2)))
    b = render_card(view(approvals=[approval("alice", 1)], decision=make_decision(required=2)))
    assert a == b and a.digest == b.digest
    assert len(a.digest) == 64


def test_alert_order_does_not_matter() -> None:
    alerts = [make_alert(i) for i in range(5)]
    assert (
        render_card(view(alerts=alerts)).digest
        == render_card(view(alerts=list(reversed(alerts)))).digest
    )


def test_visible_changes_change_digest() -> None:
    base = render_card(view()).digest
    assert render_card(view(incident=make_incident(firing_count=4))).digest != base
    assert render_card(view(decision=make_decision(DecisionState.EXPIRED))).digest != base
    assert render_card(view(effect="kubectl scale")).digest != base
    silence = Silence(
        id="x", matchers=[], reason="r", created_by="c", created_by_id=1, starts_at=T0, ends_at=T0
    )
    assert render_card(view(silence=silence)).digest != base
    # keyboard-only change (no URL button -> URL button) also changes the digest
    alerts = [make_alert(0, url="https://prometheus.example.com/x")]
    assert (
        render_card(view(alerts=alerts)).digest
        != render_card(view(alerts=alerts, url_buttons=False)).digest
    )


# -- thread messages ------------------------------------------------------------------------

LONG = "<&>" * 3000


def thread_cases(value: str) -> dict[str, dict]:
    return {
        "resolved": dict(
            incident=make_incident(status="resolved", resolved_at=T0 + timedelta(minutes=12))
        ),
        "approved": dict(names=[value, "bob"], at=APPROVED_AT),
        "approval_progress": dict(name=value, count=1, required=2),
        "rejected": dict(name=value),
        "reason_recorded": dict(name=value, reason=value),
        "outcome": dict(succeeded=False, dry_run=False, effect=value, output=value, error=value),
        "expired": dict(at=APPROVED_AT),
        "cancelled": dict(reason=value),
        "silenced": dict(until=T0 + timedelta(hours=1), name=value, reason=value),
        "stale_press": dict(name=value, button="approve"),
        "reanalyzing": dict(name=value),
        "playbook_saved": dict(name=value, playbook=value),
        "silence_expired": dict(name=value),
        "acked": dict(name=value, at=APPROVED_AT),
        "unacked": dict(name=value, holder="bob", at=APPROVED_AT),
        "reminder": dict(incident=make_incident(title=value), number=2, of=3, now=APPROVED_AT,
                         people=PEOPLE),
        "escalation": dict(incident=make_incident(title=value), reminders=3, now=APPROVED_AT,
                           people=PEOPLE),
    }


PEOPLE = [{"username": "alice", "id": None}, {"username": None, "id": 333}]


def test_reminder_and_escalation_mention_people() -> None:
    inc = make_incident(title="KubePodCrashLooping — cart")
    text = render_thread("reminder", tz=UTC_TZ, incident=inc, number=2, of=3, now=APPROVED_AT,
                         people=PEOPLE)
    assert text == (
        f"🔔 Still firing since 13:07 UTC and nobody is on it: <code>{inc.id}</code> "
        "KubePodCrashLooping — cart · reminder 2 of 3\n"
        '@alice <a href="tg://user?id=333">333</a> — press 👀 Ack if you take it.'
    )
    text = render_thread("escalation", tz=UTC_TZ, incident=inc, reminders=1, now=APPROVED_AT,
                         people=PEOPLE[:1])
    assert "after 1 reminder." in text
    assert text.endswith("@alice — please take it or find who will.")
    zh = render_thread("reminder", tz=UTC_TZ, locale="zh-TW", incident=inc, number=1, of=3,
                       now=APPROVED_AT, people=PEOPLE)
    assert "第 1 次提醒，共 3 次" in zh and "@alice" in zh


def test_card_shows_who_acknowledged() -> None:
    inc = make_incident().model_copy(update={"acked_by_id": 333, "acked_by": "@carol",
                                             "acked_at": APPROVED_AT})
    assert "👀 Acknowledged by @carol at 13:10 UTC" in render_card(view(incident=inc)).text
    zh = render_card(view(incident=inc, locale="zh-TW")).text
    assert "👀 已由 @carol 認領（13:10 UTC）" in zh


def test_thread_cases_cover_every_kind() -> None:
    assert set(thread_cases("x")) == set(THREAD_KINDS)


@pytest.mark.parametrize("value", [*HOSTILE, LONG], ids=range(len(HOSTILE) + 1))
@pytest.mark.parametrize("locale", LOCALES)
def test_thread_messages_hostile(value: str, locale: str) -> None:
    for kind, ctx in thread_cases(value).items():
        html = render_thread(kind, tz=UTC_TZ, locale=locale, **ctx)
        check(html)
        assert "<script>" not in html


def test_thread_texts_en() -> None:
    def t(kind: str, **ctx) -> str:
        return check(render_thread(kind, tz=UTC_TZ, **ctx))

    inc = make_incident(status="resolved", resolved_at=T0 + timedelta(minutes=12))
    assert t("resolved", incident=inc) == "✅ Resolved at 13:19 UTC after 12m"
    assert (
        t("approved", names=["alice"], at=APPROVED_AT)
        == "✅ Approved by alice at 13:10 UTC — executing"
    )
    assert (
        t("approved", names=[], at=None, auto_reason="low risk")
        == "🤖 Auto-approved: low risk — executing"
    )
    assert (
        t("approval_progress", name="alice", count=1, required=2)
        == "👍 alice approved (1/2) — one more approver needed"
    )
    assert (
        t("approval_progress", name="alice", count=1, required=3)
        == "👍 alice approved (1/3) — 2 more approvers needed"
    )
    assert (
        t("rejected", name="bob")
        == "🚫 Rejected by bob. Reply to this message within 10 minutes to add a reason."
    )
    assert t("reason_recorded", name="bob", reason="flapping") == "📝 Reason from bob: flapping"
    assert t("stale_press", name="alice", button="approve") == (
        "alice, your press on “Approve” reached me too late (I was offline) and was not "
        "carried out. Please press again."
    )
    assert t("silenced", until=T0 + timedelta(hours=1), name="carol").startswith(
        "🔕 Silenced until 2026-11-27 14:07 UTC by carol"
    )
    assert t("cancelled").startswith("➖ Cancelled: the incident resolved")
    assert t("expired", at=APPROVED_AT).startswith("⌛ Expired at 13:10 UTC")


def test_outcome_messages() -> None:
    ok = render_thread(
        "outcome",
        tz=UTC_TZ,
        succeeded=True,
        dry_run=True,
        effect=EFFECT,
        output="deployment.apps/cart restarted",
        error="",
    )
    assert check(ok).startswith("✅ Done (dry-run")
    assert "<pre>deployment.apps/cart restarted</pre>" in ok
    bad = render_thread(
        "outcome",
        tz=UTC_TZ,
        succeeded=False,
        dry_run=False,
        effect=None,
        output="x" * 10_000 + "THE END",
        error="exit code 1",
    )
    text = check(bad)
    assert text.startswith("❌ Failed: exit code 1")
    assert text.endswith("THE END") and len(text) < 3000  # the tail is kept, bounded
    unknown = render_thread(
        "outcome",
        tz=UTC_TZ,
        succeeded=False,
        dry_run=False,
        effect=None,
        output="",
        error="",
        unknown=True,
    )
    assert check(unknown).startswith("❓ Outcome unknown")


def test_unknown_thread_kind() -> None:
    with pytest.raises(KeyError):
        render_thread("nope", tz=UTC_TZ)


@pytest.mark.parametrize("locale", LOCALES)
def test_whoami(locale: str) -> None:
    yes = check(
        render_whoami(
            user_id=111, name="<alice>", is_approver=True, chat_id=-100123, tz=UTC_TZ, locale=locale
        )
    )
    assert "111" in yes and "<alice>" in yes and "-100123" in yes
    no = check(render_whoami(user_id=222, name="bob", is_approver=False, tz=UTC_TZ))
    assert "Approver: no" in no and "Chat id" not in no


# -- details and history ----------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_details_single_alert(locale: str) -> None:
    msgs = render_details(view(alerts=[make_alert(0)], locale=locale))
    assert len(msgs) == 1
    text = check(msgs[0].text)
    assert "cart-5d8f-0" in text and "Back-off restarting failed container" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_details_many_alerts(locale: str) -> None:
    alerts = [make_alert(i) for i in range(300)]
    msgs = render_details(view(alerts=alerts, locale=locale, truncated_alerts=5))
    assert len(msgs) in (2, 3)  # the head, a page of the rest (and the evidence, if any)
    texts = [check(m.text) for m in msgs]
    assert "pod (300): cart-5d8f-0, cart-5d8f-1" in texts[0]
    assert "namespace: shop" in texts[0]
    assert not msgs[0].keyboard and msgs[1].keyboard  # the page has ▶️
    if locale == "en":
        assert "of 300" in texts[1]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_details_hostile(value: str) -> None:
    for n in (1, 40):
        msgs = render_details(hostile_view(value, n_alerts=n))
        assert 1 <= len(msgs) <= 3
        for m in msgs:
            check(m.text)


def test_details_worst_case() -> None:
    value = "&<>" * 2000
    alerts = [
        make_alert(
            i,
            labels={f"key{j}-{value[:60]}": f"{value}{i}" for j in range(60)},
            annotations={f"a{j}": value for j in range(20)},
            url=value,
        )
        for i in range(100)
    ]
    msgs = render_details(view(alerts=alerts))
    assert len(msgs) <= 3
    for m in msgs:
        check(m.text)


@pytest.mark.parametrize("locale", LOCALES)
def test_start_command(locale: str) -> None:
    text = check(render_message("commands/start.html", tz=UTC_TZ, locale=locale, chat_id=-100777))
    assert "-100777" in text and "/whoami" in text


def test_title_does_not_repeat_the_alertname_as_target() -> None:
    same = render_card(view(incident=make_incident(target="KubePodCrashLooping"))).text
    assert "KubePodCrashLooping — KubePodCrashLooping" not in same
    other = render_card(view()).text
    assert "<b>KubePodCrashLooping</b> — cart" in other


def test_details_carry_the_proposal_and_its_full_reasoning() -> None:
    messages = [m.text for m in render_details(view())]
    joined = "\n".join(messages)
    assert "restarting clears most crash loops caused by bad state" in joined
    assert EFFECT in joined
    for message in messages:
        check_message_text(message)
