"""Decision engine and execution, end to end: cards, buttons, kubectl stand-in, LLM fake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from factories import AUTO_PLAYBOOK
from fake_llm import fake_llm_server
from harness import ALICE, CHAT, AppFactory, Harness, fixture
from pg import Databases, database_env
from standins import FakeKubectl, install_fake_kubectl

from bot.models import Actor, DecisionState, ProposalSource
from sandbox.emulator import wait_for
from storage import repo
from storage.playbooks import PlaybookRepo

ROOT = Path(__file__).resolve().parent.parent
TOKEN = {"Authorization": "Bearer hook-token"}


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    log = tmp_path / "kubectl.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    return install_fake_kubectl(tmp_path / "bin", log)


def kubectl_settings(fake: FakeKubectl, **extra: Any) -> dict[str, Any]:
    return dict(executor="kubectl", kubectl_path=str(fake.path),
                alert_webhook_token="hook-token", **extra)


def episode(name: str, starts_at: str) -> dict:
    payload = fixture(name)
    for alert in payload["alerts"]:
        alert["startsAt"] = starts_at
    return payload


async def test_card_appears_analyzing_then_rule_answer_after_llm_timeout(
    start_app: AppFactory
) -> None:
    async with fake_llm_server() as llm:
        llm.hang = True
        # No first-card wait: with the default one (2 s) this 1 s timeout's rule answer would
        # be on the first card already (tests/test_first_card.py).
        h = await start_app(llm_base_url=llm.url, llm_model="slow-model", decision_timeout="1s",
                            first_card_wait="0s")
        body = await h.alert("crashloop-firing.json")
        inc = body["opened"][0]
        first = await h.wait_card(lambda m: inc in m["text"])
        assert "Analyzing" in first["text"]
        card = await h.wait_card(lambda m: inc in m["text"] and "Proposal" in m["text"], 20)
        assert card["message_id"] == first["message_id"]
        assert "rule: pod-crash" in card["text"]
        assert "Model slow-model did not answer in time; the rule answer stands" in card["text"]
        llm.release.set()
        await h.settled()


async def test_llm_answer_wins_over_rules_and_names_the_model(start_app: AppFactory) -> None:
    async with fake_llm_server() as llm:
        llm.answer({
            "action": {"verb": "rollout-restart", "target_kind": "deployment",
                       "target_name": "cart", "namespace": "shop", "params": {}},
            "risk": "high", "reasoning": "Restarts fixed this twice last week.",
            "confidence": 0.82,
        })
        h = await start_app(llm_base_url=llm.url, llm_model="ops-llm-7b")
        body = await h.alert("crashloop-firing.json")
        inc = body["opened"][0]
        card = await h.wait_card(lambda m: inc in m["text"] and "Proposal" in m["text"])
        await h.settled()
        assert "ops-llm-7b" in card["text"] and "risk high" in card["text"]
        assert "kubectl rollout restart deployment/cart --namespace shop" in card["text"]
        decision = await h.decision(inc)
        assert decision.proposal.source is ProposalSource.LLM


@pytest.mark.parametrize("hostile", ["api; rm -rf /", "$(reboot)", "../x", "api\nrm", "a" * 300])
async def test_hostile_label_gives_invalid_decision_with_nothing_to_approve(
    app: Harness, hostile: str
) -> None:
    payload = fixture("crashloop-firing.json")
    for alert in payload["alerts"]:
        alert["labels"]["deployment"] = hostile
    payload["commonLabels"]["deployment"] = hostile
    status, body = await app.post("/alerts/alertmanager", payload)
    assert status == 200
    inc = body["opened"][0]
    await app.settled()
    decision = await app.decision(inc)
    assert decision.state is DecisionState.INVALID
    assert "not a valid Kubernetes name" in decision.invalid_reason
    (card,) = app.cards()
    assert "No valid action" in card["text"]
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert not any("Approve" in t for t in labels)


async def test_kubectl_execution_save_as_playbook_and_statistics(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await start_app(**kubectl_settings(kubectl))
    status, body = await h.post("/alerts/alertmanager", fixture("crashloop-firing.json"),
                                headers=TOKEN)
    assert status == 200
    inc = body["opened"][0]
    card = await h.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    await h.press(card["message_id"], "Approve", ALICE)
    await h.settled()
    assert kubectl.calls() == [["rollout", "restart", "deployment/cart", "--namespace", "shop"]]
    outcome = [r["text"] for r in h.replies_to(card["message_id"]) if "Done" in r["text"]]
    assert outcome and "deployment.apps/cart restarted" in outcome[0]
    card = h.em.message(CHAT, card["message_id"])
    qid = await h.press(card["message_id"], "Save as playbook", ALICE)
    assert "Saved as playbook" in h.em.callback_answer(qid)["text"]
    await h.settled()
    playbooks = await PlaybookRepo(h.db).list_all()
    assert len(playbooks) == 1 and playbooks[0].runs == 0

    # The next episode of the same failure is answered by the playbook.
    await h.post("/alerts/alertmanager", fixture("crashloop-firing.json") | {
        "status": "resolved",
        "alerts": [fixture("crashloop-firing.json")["alerts"][0] | {
            "status": "resolved", "endsAt": "2026-11-27T13:20:00Z"}],
    }, headers=TOKEN)
    status, body = await h.post("/alerts/alertmanager",
                                episode("crashloop-firing.json", "2026-11-27T15:00:00Z"),
                                headers=TOKEN)
    inc2 = body["opened"][0]
    card2 = await h.wait_card(lambda m: inc2 in m["text"] and "Awaiting approval" in m["text"])
    assert "playbook:" in card2["text"]
    await h.press(card2["message_id"], "Approve", ALICE)
    await h.settled()
    monkeypatch.setenv("FAKE_KUBECTL_EXIT", "1")
    status, body = await h.post("/alerts/alertmanager", fixture("crashloop-firing.json") | {
        "status": "resolved",
        "alerts": [episode("crashloop-firing.json", "2026-11-27T15:00:00Z")["alerts"][0] | {
            "status": "resolved", "endsAt": "2026-11-27T15:20:00Z"}],
    }, headers=TOKEN)
    status, body = await h.post("/alerts/alertmanager",
                                episode("crashloop-firing.json", "2026-11-27T16:00:00Z"),
                                headers=TOKEN)
    inc3 = body["opened"][0]
    card3 = await h.wait_card(lambda m: inc3 in m["text"] and "Awaiting approval" in m["text"])
    await h.press(card3["message_id"], "Approve", ALICE)
    await h.settled()
    assert (await h.decision(inc3)).state is DecisionState.FAILED
    (pb,) = await PlaybookRepo(h.db).list_all()
    assert (pb.runs, pb.successes, pb.recent) == (2, 1, "SF")


@pytest.mark.parametrize(
    ("runs", "successes", "recent", "auto"),
    [(6, 6, "SSSSSS", True), (6, 5, "SSSSSF", False), (3, 3, "SSS", False)],
)
async def test_auto_approval_only_when_every_condition_holds(
    start_app: AppFactory, databases: Databases, tmp_path: Path, runs: int, successes: int,
    recent: str, auto: bool,
) -> None:
    book = tmp_path / "playbooks.toml"
    book.write_text(AUTO_PLAYBOOK.format(runs=runs, successes=successes, recent=recent))
    env = {**database_env(await databases.target()), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bot", "playbooks", "import", str(book)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    h = await start_app(auto_approve=True)
    body = await h.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await h.settled()
    decision = await h.decision(inc)
    (card,) = h.cards()
    if auto:
        assert decision.auto_approved and decision.state is DecisionState.SUCCEEDED
        assert "auto-approved" in card["text"].lower()
        assert any("Auto-approved" in r["text"] for r in h.replies_to(card["message_id"]))
    else:
        assert not decision.auto_approved and decision.state is DecisionState.PENDING
        assert "playbook:" in card["text"]


async def test_playbooks_cli_round_trip(tmp_path: Path) -> None:
    book = tmp_path / "in.toml"
    book.write_text(AUTO_PLAYBOOK.format(runs=2, successes=2, recent="SS"))
    env = {"DATABASE_PATH": str(tmp_path / "x.db"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}

    def bot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "playbooks", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    empty = bot("list")
    assert empty.returncode == 0 and "no playbooks yet" in empty.stdout
    nothing = bot("export", str(tmp_path / "none.toml"))
    assert nothing.returncode == 0 and "nothing to export" in nothing.stderr
    assert not (tmp_path / "none.toml").exists()
    assert bot("export").stdout == ""
    assert bot("import", str(book)).returncode == 0
    listing = bot("list")
    assert "scale cart out" in listing.stdout and "100% of 2 runs" in listing.stdout
    first = bot("export").stdout
    (tmp_path / "again.toml").write_text(first)
    assert bot("import", str(tmp_path / "again.toml")).returncode == 0
    assert bot("export").stdout == first
    bad = tmp_path / "bad.toml"
    bad.write_text("[[playbook]]\nname = 3\n")
    result = bot("import", str(bad))
    assert result.returncode == 1 and "cannot import" in result.stderr
    # One readable line per problem, naming the playbook and the field; nothing imported.
    bad.write_text(first.replace('verb = "scale"', 'verb = "nuke"')
                   .replace("runs = 2", "runs = 2\ncolour = 1")
                   + '\n[[playbook]]\nname = "second"\nrisk = "low"\n')
    result = bot("import", str(bad))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "4 problems" in lines[0], result.stderr
    assert sorted(line.split(": ", 2)[1:] for line in lines[1:]) == sorted([
        ['playbook 1 "scale cart out"', "action.verb: Input should be 'rollout-restart', "
         "'rollout-undo', 'scale' or 'delete-pod' (got \"nuke\")"],
        ['playbook 1 "scale cart out"', "colour: unknown key (see docs/playbooks.md for the keys)"],
        ['playbook 2 "second"', "action: missing (required)"],
        ['playbook 2 "second"', "created_at: missing (required)"],
    ])
    assert bot("export").stdout == first


async def test_reanalyze_supersedes_and_is_refused_while_executing(
    start_app: AppFactory, kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await start_app(**kubectl_settings(kubectl))
    _, body = await h.post("/alerts/alertmanager", fixture("crashloop-firing.json"),
                           headers=TOKEN)
    inc = body["opened"][0]
    card = await h.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    old = await h.decision(inc)
    await h.press(card["message_id"], "Re-analyze", ALICE)
    await h.settled()
    new = await h.decision(inc)
    assert new.id != old.id and new.state is DecisionState.PENDING
    async with h.db.read() as conn:
        assert (await repo.get_decision(conn, old.id)).state is DecisionState.SUPERSEDED

    monkeypatch.setenv("FAKE_KUBECTL_SLEEP", "30")
    card = h.em.message(CHAT, card["message_id"])
    await h.press(card["message_id"], "Approve", ALICE)
    await wait_for(lambda: kubectl.calls(), 15)
    executing = await h.decision(inc)
    assert executing.state is DecisionState.EXECUTING
    outcome = await h.approvals.reanalyze(
        Actor(user_id=ALICE["id"], name="@alice", chat_id=CHAT), inc, executing.id
    )
    assert outcome.toast == "reanalyze_refused"
    assert (await h.decision(inc)).id == executing.id
