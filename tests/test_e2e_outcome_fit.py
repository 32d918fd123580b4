"""Rendering never wedges a transition: huge executor output through the real app (fake
kubectl as a subprocess, emulator judged by TDLib) still ends `succeeded` with a note that
fits, and a note or card that cannot be rendered becomes a short text, the state kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import ALICE, AppFactory, Harness, fixture
from standins import FakeKubectl, install_fake_kubectl

from bot.cards import card as cards
from bot.cards import notes
from bot.models import DecisionState
from sandbox.emulator import wait_for
from sandbox.judge import MAX_TEXT, check_message_text
from sandbox.telegram_html import utf16_len

OUTPUTS = {
    "emoji": "😀" * 3000,
    "cjk": "中文輸出" * 1250,
    "mixed": "<b>&amp; \"q\" 'a' 😀 中 & < > &lt;</b>\n" * 120,
}


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    log = tmp_path / "kubectl.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return install_fake_kubectl(tmp_path / "bin", log)


async def start(start_app: AppFactory, fake: FakeKubectl, **extra: Any) -> Harness:
    return await start_app(executor="kubectl", kubectl_path=str(fake.path),
                           alert_webhook_token="hook-token", **extra)


async def open_incident(h: Harness) -> str:
    status, body = await h.post("/alerts/alertmanager", fixture("crashloop-firing.json"),
                                headers={"Authorization": "Bearer hook-token"})
    assert status == 200, body
    return str(body["opened"][0])


async def approve(h: Harness) -> tuple[str, dict[str, Any]]:
    inc = await open_incident(h)
    card = await h.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    await h.press(card["message_id"], "Approve", ALICE)
    await h.settled()
    return inc, card


async def outcome_notes(h: Harness, card: dict[str, Any]) -> list[dict[str, Any]]:
    def notes() -> list[dict[str, Any]]:
        return [r for r in h.replies_to(card["message_id"]) if r["text"].startswith("✅ Done")]

    await wait_for(notes, 15, message="no outcome note")
    await h.settled()
    return notes()


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
async def test_huge_output_still_succeeds_and_the_note_fits(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_PRINT", OUTPUTS[kind])
    h = await start(start_app, kubectl)
    inc, card = await approve(h)
    decision = await h.decision(inc)
    assert decision.state is DecisionState.SUCCEEDED, decision
    assert len(kubectl.calls()) == 1
    (note,) = await outcome_notes(h, card)
    # what the emulator stored passed TDLib; check its count again from the raw HTML
    assert utf16_len(check_message_text(note["html"]).text) <= MAX_TEXT
    assert OUTPUTS[kind].strip()[-20:].strip() in note["text"]  # the tail of the output
    audit = [(r["action"], r["result"]) for r in await h.audit(inc)]
    assert ("execute", "succeeded") in audit


async def test_note_that_cannot_render_becomes_short_text_and_the_state_is_kept(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cards.render_thread

    def broken(kind: str, /, **kw: Any) -> str:
        if kind == "outcome":
            raise ValueError("injected render failure")
        return real(kind, **kw)

    monkeypatch.setattr(cards, "render_thread", broken)
    h = await start(start_app, kubectl)
    inc, card = await approve(h)
    assert (await h.decision(inc)).state is DecisionState.SUCCEEDED
    (note,) = await outcome_notes(h, card)
    assert inc in note["text"] and "could not be shown" in note["text"]
    assert (await h.decision(inc)).result["ok"] is True


async def test_card_that_cannot_render_shows_the_short_card(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(view: cards.CardView, lim: Any) -> str:
        raise ValueError("injected render failure")

    monkeypatch.setattr(cards, "render_text", broken)
    h = await start(start_app, kubectl)
    inc = await open_incident(h)
    card = await h.wait_card(lambda m: inc in m["text"] and "awaiting approval" in m["text"])
    assert "could not be shown in full" in card["text"]
    await h.press(card["message_id"], "Approve", ALICE)
    await h.settled()
    assert (await h.decision(inc)).state is DecisionState.SUCCEEDED


async def test_outcome_write_that_fails_once_is_stored_on_the_second_try(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = notes.reply
    failed: list[str] = []

    async def flaky(conn: Any, incident: Any, kind: str, *args: Any, **kw: Any) -> None:
        if kind == "outcome" and not failed:
            failed.append(kind)
            raise OSError("injected write failure")  # rolls the whole transition back
        await real(conn, incident, kind, *args, **kw)

    monkeypatch.setattr(notes, "reply", flaky)
    h = await start(start_app, kubectl)
    inc, card = await approve(h)
    assert failed == ["outcome"]
    decision = await h.decision(inc)
    assert decision.state is DecisionState.SUCCEEDED and decision.result["ok"] is True
    assert len(kubectl.calls()) == 1  # recorded again, never run again
    audit = [(r["action"], r["result"]) for r in await h.audit(inc)]
    assert audit.count(("execute", "succeeded")) == 1
    (note,) = await outcome_notes(h, card)
    assert "deployment.apps/cart restarted" in note["text"]
