import asyncio
from collections.abc import AsyncIterator

import pytest
from fake_llm import FakeLlm, fake_llm_server
from helpers import CRASHLOOP, alert, incident_for

from bot.decisions.llm import MAX_ALERTS, LlmProposer
from bot.execution.names import ActionLimits
from bot.models import Action, ProposalSource, Risk, Verb

GOOD = {
    "action": {
        "verb": "rollout-restart",
        "target_kind": "deployment",
        "target_name": "cart",
        "namespace": "shop",
        "params": {},
    },
    "risk": "medium",
    "summary": "Restart cart",
    "reasoning": "Crash loop after a config change.",
    "confidence": 0.7,
}


@pytest.fixture
async def llm() -> AsyncIterator[FakeLlm]:
    async with fake_llm_server() as fake:
        yield fake


def proposer(fake: FakeLlm, **kw) -> LlmProposer:
    return LlmProposer(fake.url, "test-model", kw.pop("api_key", "k"), **kw)


async def ask(p: LlmProposer, n_alerts: int = 1):
    alerts = [alert(CRASHLOOP | {"pod": f"cart-{i}"}) for i in range(n_alerts)]
    return await p.propose(incident_for(alerts), alerts, None)


async def test_good_answer(llm: FakeLlm) -> None:
    llm.answer(GOOD)
    proposal = await ask(proposer(llm))
    assert proposal is not None
    assert proposal.action == Action(
        verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop"
    )
    assert proposal.risk is Risk.MEDIUM
    assert proposal.confidence == 0.7
    assert proposal.source is ProposalSource.LLM
    assert proposal.source_name == "test-model"
    request = llm.requests[0]
    assert request["model"] == "test-model"
    assert request["response_format"] == {"type": "json_object"}
    assert llm.headers[0]["Authorization"] == "Bearer k"


async def test_no_api_key_sends_no_auth_header(llm: FakeLlm) -> None:
    llm.answer(GOOD)
    assert await ask(proposer(llm, api_key=None)) is not None
    assert "Authorization" not in llm.headers[0]


async def test_alerts_are_bounded(llm: FakeLlm) -> None:
    llm.answer(GOOD)
    await ask(proposer(llm), n_alerts=MAX_ALERTS + 5)
    user = llm.requests[0]["messages"][1]["content"]
    assert '"alerts_not_shown": 5' in user
    assert user.count('"pod":') == MAX_ALERTS


async def test_null_action_is_a_valid_answer(llm: FakeLlm) -> None:
    llm.answer(GOOD | {"action": None, "risk": "low"})
    proposal = await ask(proposer(llm))
    assert proposal is not None and proposal.action is None


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        '{"action": null}',  # required fields missing
        '["a list"]',
        '{"action": null, "risk": "low", "reasoning": "x", "confidence": 1.5}',
    ],
)
async def test_invalid_answers_give_none(llm: FakeLlm, content: str, caplog) -> None:
    llm.answer(content)
    assert await ask(proposer(llm)) is None
    assert "unusable answer" in caplog.text


async def test_slow_answer_times_out(llm: FakeLlm, caplog) -> None:
    p = proposer(llm, timeout=1.0)
    # Warmed first: a cold process spends its first request's time on what every request
    # after it finds ready (the CA bundle, lazy imports), and the deadline covers that too.
    llm.answer(GOOD)
    assert await ask(p) is not None
    llm.hang = True
    async with asyncio.timeout(30):  # a proposer that ignores its deadline fails, not hangs
        assert await ask(p) is None
    assert "no answer within 1.0s" in caplog.text
    assert len(llm.requests) == 2  # the held one arrived and was not asked again


async def test_http_500_gives_none(llm: FakeLlm, caplog) -> None:
    llm.status = 500
    assert await ask(proposer(llm)) is None
    assert "request failed" in caplog.text


@pytest.mark.parametrize(
    "bad_action",
    [
        {"verb": "exec", "target_kind": "deployment", "target_name": "cart", "namespace": "shop"},
        {"verb": "rollout-restart", "target_kind": "node", "target_name": "n1", "namespace": "x"},
        {"verb": "scale", "target_kind": "deployment", "target_name": "cart", "namespace": "shop",
         "params": {"replicas": 500}},
        {"verb": "rollout-restart", "target_kind": "deployment", "target_name": "cart; reboot",
         "namespace": "shop"},
    ],
)  # fmt: skip
async def test_action_outside_allowlist_gives_none(llm: FakeLlm, bad_action: dict) -> None:
    llm.answer(GOOD | {"action": bad_action})
    assert await ask(proposer(llm)) is None


async def test_namespace_limits_apply(llm: FakeLlm, caplog) -> None:
    llm.answer(GOOD)
    p = proposer(llm, limits=ActionLimits(allowed_namespaces=frozenset({"payments"})))
    assert await ask(p) is None
    assert "not in the allowed namespaces" in caplog.text


async def test_unreachable_server_gives_none() -> None:
    p = LlmProposer("http://127.0.0.1:9/v1", "m", timeout=2)
    assert await ask(p) is None
