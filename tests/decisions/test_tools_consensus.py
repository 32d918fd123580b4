"""Investigation tools (real kubectl stand-in) and the consensus vote."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import CRASHLOOP, alert, incident_for
from standins import install_fake_kubectl

from bot.decisions.consensus import Opinion, applies, decide
from bot.decisions.redact import Redactor
from bot.decisions.tools import ToolBox, ToolConfig
from bot.models import Action, Proposal, ProposalSource, Risk, Verb
from sandbox.emulator import wait_for

INC = incident_for([alert(CRASHLOOP)])


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ToolBox, Path]:
    log = tmp_path / "kubectl.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_KUBECTL_NONCES", str(tmp_path / "nonces"))
    monkeypatch.setenv("FAKE_KUBECTL_PRINT", "env DB_PASSWORD=hunter2hunter2")
    fake = install_fake_kubectl(tmp_path / "bin", log)
    return ToolBox(ToolConfig(kubectl_path=str(fake.path)), Redactor()), tmp_path


async def test_get_runs_read_only_argv_and_redacts(box: tuple[ToolBox, Path]) -> None:
    tools, tmp = box
    answer, record = await tools.call("kubectl_get", '{"kind": "pods"}', INC)
    nonce = (tmp / "nonces").read_text().split()[0]
    assert nonce in answer and record.ok and not record.refused
    assert "hunter2hunter2" not in answer and "hunter2hunter2" not in record.excerpt
    argv = (tmp / "kubectl.jsonl").read_text().splitlines()[0]
    assert '"get", "pods", "-o", "wide", "--namespace", "shop"' in argv


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("kubectl_get", {"kind": "secrets"}),
        ("kubectl_describe", {"kind": "configmaps", "name": "app"}),
        ("kubectl_get", {"kind": "pods", "namespace": "kube-system"}),
        ("kubectl_delete", {"kind": "pods", "name": "cart"}),
        ("kubectl_logs", {"pod": "cart; rm -rf /"}),
        ("kubectl_logs", {"pod": "cart", "tail": 100000}),
        ("kubectl_get", {"kind": "pods", "extra": "--all-namespaces"}),
    ],
)
async def test_outside_the_allowlist_is_refused_not_run(
    box: tuple[ToolBox, Path], name: str, args: dict
) -> None:
    tools, tmp = box
    answer, record = await tools.call(name, args, INC)
    assert answer.startswith("refused:") and record.refused
    assert not (tmp / "kubectl.jsonl").exists()


def proposal(verb: Verb | None, risk: Risk = Risk.MEDIUM, src=ProposalSource.LLM) -> Proposal:
    action = Action(verb=verb, target_name="cart", namespace="shop") if verb else None
    return Proposal(action=action, risk=risk, summary="s", reasoning="r", source=src)


def test_majority_wins_and_disagreement_raises_risk() -> None:
    verdict = decide([
        Opinion("a", ProposalSource.LLM, proposal(Verb.ROLLOUT_RESTART)),
        Opinion("b", ProposalSource.LLM, proposal(Verb.ROLLOUT_RESTART)),
        Opinion("c", ProposalSource.LLM, None, "timeout"),
        Opinion("rules", ProposalSource.RULE, proposal(None, Risk.LOW, ProposalSource.RULE)),
    ])
    assert verdict is not None
    p = verdict.proposal
    assert p.action is not None and p.action.verb is Verb.ROLLOUT_RESTART
    assert p.consensus is not None and (p.consensus.agree, p.consensus.asked) == (2, 4)
    assert p.consensus.disagreement and p.risk is Risk.HIGH
    assert [d.engine for d in p.consensus.dissents] == ["c", "rules"]


def test_tie_takes_the_lower_risk_and_unanimity_keeps_risk() -> None:
    tie = decide([
        Opinion("a", ProposalSource.LLM, proposal(Verb.ROLLOUT_UNDO, Risk.HIGH)),
        Opinion("b", ProposalSource.LLM, proposal(None, Risk.LOW)),
    ])
    assert tie is not None and tie.proposal.action is None
    same = decide([
        Opinion("a", ProposalSource.LLM, proposal(Verb.ROLLOUT_RESTART)),
        Opinion("b", ProposalSource.LLM, proposal(Verb.ROLLOUT_RESTART)),
    ])
    assert same is not None and same.proposal.risk is Risk.MEDIUM
    assert same.proposal.consensus is not None and not same.proposal.consensus.disagreement


def test_severity_order() -> None:
    assert applies("critical", "critical") and not applies("error", "critical")
    assert applies("page", "high") and applies("whatever", "warning")
    assert not applies("info", "warning")


async def test_a_call_cut_short_leaves_no_kubectl_running(
    box: tuple[ToolBox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DECISION_TIMEOUT cancels the analysis mid-call: the stand-in must not outlive it."""
    tools, tmp = box
    pids = tmp / "pids"
    monkeypatch.setenv("FAKE_KUBECTL_PIDS", str(pids))
    monkeypatch.setenv("FAKE_KUBECTL_SLEEP", "60")
    call = asyncio.ensure_future(tools.call("kubectl_get", {"kind": "pods"}, INC))
    await wait_for(lambda: pids.exists() and pids.read_text().strip(), 10)
    pid = int(pids.read_text().split()[0])
    os.kill(pid, 0)  # running
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


async def test_a_slow_call_times_out_and_says_so(
    box: tuple[ToolBox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools, _ = box
    tools.cfg = replace(tools.cfg, timeout=0.5)
    monkeypatch.setenv("FAKE_KUBECTL_SLEEP", "60")
    answer, record = await tools.call("kubectl_get", {"kind": "pods"}, INC)
    assert answer.endswith("(timed out after 0.5s)") and not record.ok and not record.refused


def test_an_agreeing_playbook_speaks_for_the_majority() -> None:
    playbook = proposal(Verb.ROLLOUT_RESTART, Risk.LOW, ProposalSource.PLAYBOOK)
    verdict = decide([
        Opinion("a", ProposalSource.LLM, proposal(Verb.ROLLOUT_RESTART, Risk.HIGH)),
        Opinion("playbook: p", ProposalSource.PLAYBOOK, playbook, playbook_id=7),
        Opinion("rules", ProposalSource.RULE, proposal(Verb.ROLLOUT_RESTART, Risk.MEDIUM,
                                                       ProposalSource.RULE)),
    ])
    assert verdict is not None and verdict.playbook_id == 7
    assert verdict.proposal.source is ProposalSource.PLAYBOOK
    assert verdict.proposal.risk is Risk.HIGH  # the highest risk an agreeing engine saw
    assert verdict.proposal.consensus is not None
    assert not verdict.proposal.consensus.disagreement
