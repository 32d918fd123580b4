"""Proposals with evidence, end to end: the real app, the emulator, stand-in model servers.

Every test goes alert webhook -> card -> analysis -> card edit -> Details, with the
OpenAI-compatible stand-in (tests/fake_llm.py), the kubectl stand-in script and a
Prometheus API stand-in. A model here answers only when its request carries what the
tools really returned (a fresh nonce), so the tool loop cannot be faked by the bot.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from factories import AUTO_PLAYBOOK
from fake_llm import Responder, fake_llm_server, investigator, tool_call, tool_messages
from harness import ALICE, AppFactory, Harness, fixture
from pg import Databases
from standins import FakeKubectl, fake_prometheus_server, install_fake_kubectl

from bot.models import DecisionState, ProposalSource, Risk
from sandbox.emulator import wait_for

RESTART = {"verb": "rollout-restart", "target_kind": "deployment", "target_name": "cart",
           "namespace": "shop", "params": {}}
SCALE3 = {"verb": "scale", "target_kind": "deployment", "target_name": "cart",
          "namespace": "shop", "params": {"replicas": 3}}


def answer(action: dict[str, Any] | None, reasoning: str, risk: str = "medium",
           summary: str = "") -> dict[str, Any]:
    return {"action": action, "risk": risk, "reasoning": reasoning, "summary": summary,
            "confidence": 0.8}


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    log = tmp_path / "kubectl.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_KUBECTL_NONCES", str(tmp_path / "nonces"))
    return install_fake_kubectl(tmp_path / "bin", log)


def nonces(tmp_path: Path) -> list[str]:
    path = tmp_path / "nonces"
    return path.read_text().split() if path.exists() else []


def crashloop(severity: str = "warning", **labels: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("crashloop-firing.json"))
    for alert in payload["alerts"]:
        alert["labels"].update(severity=severity, **labels)
    payload["commonLabels"].update(severity=severity, **labels)
    return payload


async def post_alert(h: Harness, payload: dict[str, Any]) -> str:
    status, body = await h.post("/alerts/alertmanager", payload)
    assert status == 200, body
    return str(body["opened"][0])


async def proposed_card(h: Harness, inc: str) -> dict[str, Any]:
    await h.settled(30)
    return await h.wait_card(lambda m: inc in m["text"] and "Analyzing" not in m["text"]
                             and "分析中" not in m["text"])


async def evidence(h: Harness, card: dict[str, Any], mark: str = "🧭") -> str:
    """Press Details; the text of its last message (what the proposers saw)."""
    await h.press(card["message_id"], "Details" if mark == "🧭" else mark, ALICE)
    await h.settled()
    texts = [r["text"] for r in h.replies_to(card["message_id"]) if r["text"].startswith("🧭")]
    assert texts, "Details has no evidence message"
    return texts[-1]


# (a) tool calls, then an answer that needs the tool's real output -------------------

@pytest.mark.parametrize(("locale", "details", "words"), [
    ("en", "Details", ("model: tool-model", "Investigation · 1 tool call",
                       "Related: nothing similar found.")),
    ("zh-TW", "詳情", ("模型：tool-model", "調查 · 呼叫工具 1 次",
                       "相關資料：沒有找到相似的內容。")),
])
async def test_model_investigates_with_kubectl_and_the_transcript_is_in_details(
    start_app: AppFactory, kubectl: FakeKubectl, tmp_path: Path, locale: str, details: str,
    words: tuple[str, str, str],
) -> None:
    async with fake_llm_server() as llm:
        llm.respond = investigator(
            [tool_call("kubectl_get", {"kind": "pods", "name": "cart-5d8f"})],
            lambda: nonces(tmp_path),
            answer(RESTART, "The pod logs show a stale cache; a restart clears it.",
                   summary="Restart cart"),
        )
        h = await start_app(llm_base_url=llm.url, llm_model="tool-model",
                            kubectl_path=str(kubectl.path), locale=locale)
        inc = await post_alert(h, crashloop())
        card = await proposed_card(h, inc)
        # Read-only and scoped: exactly the allowlisted get in the incident's namespace.
        assert kubectl.calls() == [["get", "pods", "cart-5d8f", "-o", "wide", "--namespace",
                                    "shop", "--request-timeout=10s"]]
        (nonce,) = nonces(tmp_path)
        assert len(llm.requests) == 2 and "tools" in llm.requests[0]
        assert nonce in tool_messages(llm.requests[1])[0]["content"]
        decision = await h.decision(inc)
        assert decision.proposal is not None and decision.proposal.source is ProposalSource.LLM
        assert words[0] in card["text"]
        assert "kubectl rollout restart deployment/cart --namespace shop" in card["text"]
        await h.press(card["message_id"], details, ALICE)
        await h.settled()
        shown = [r["text"] for r in h.replies_to(card["message_id"]) if r["text"].startswith("🧭")]
        assert shown, "no evidence message in Details"
        assert words[1] in shown[0] and words[2] in shown[0]
        assert "kubectl_get kind=pods name=cart-5d8f" in shown[0]
        assert f"nonce {nonce}" in shown[0]  # the excerpt of what the tool returned


# (b) what is outside the allowlist is refused as the tool's answer ------------------

async def test_forbidden_tool_kind_and_namespace_are_refused_and_nothing_runs(
    start_app: AppFactory, kubectl: FakeKubectl
) -> None:
    asked = [
        tool_call("kubectl_get", {"kind": "secrets", "name": "db"}, "c1"),
        tool_call("kubectl_describe", {"kind": "configmaps", "name": "app"}, "c2"),
        tool_call("kubectl_get", {"kind": "pods", "namespace": "kube-system"}, "c3"),
        tool_call("kubectl_exec", {"pod": "cart", "command": "cat /etc/shadow"}, "c4"),
    ]

    def refusals() -> list[str]:
        seen = [m["content"] for r in llm.requests for m in tool_messages(r)]
        return ["refused:"] * 4 if len(seen) == 4 and all(
            s.startswith("refused:") for s in seen) else ["(every call refused)"]

    async with fake_llm_server() as llm:
        llm.respond = investigator(asked, refusals, answer(None, "I was not allowed to look.",
                                                           risk="low"))
        h = await start_app(llm_base_url=llm.url, llm_model="nosy-model",
                            kubectl_path=str(kubectl.path))
        inc = await post_alert(h, crashloop())
        card = await proposed_card(h, inc)
        assert kubectl.calls() == []  # nothing was executed
        answers = [m["content"] for m in tool_messages(llm.requests[1])]
        assert "kind \"secrets\" is not allowed" in answers[0]
        assert "kind \"configmaps\" is not allowed" in answers[1]
        assert "only the incident's namespace 'shop' may be read" in answers[2]
        assert "tool 'kubectl_exec' is not available" in answers[3]
        assert "model: nosy-model" in card["text"]
        decision = await h.decision(inc)
        assert decision.proposal is not None and decision.proposal.evidence is not None
        assert [t.refused for t in decision.proposal.evidence.tools] == [True] * 4
        shown = await evidence(h, card)
        assert shown.count("— refused") == 4 and "Investigation · 4 tool calls" in shown


async def test_tool_calls_stop_at_the_limit_and_the_model_must_answer(
    start_app: AppFactory, kubectl: FakeKubectl
) -> None:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if "tools" in body:  # it would look forever
            return {"content": "", "tool_calls": [
                tool_call("kubectl_events", {}, f"c{len(llm.requests)}")]}
        return {"content": json.dumps(answer(RESTART, "Enough looking."))}

    async with fake_llm_server() as llm:
        llm.respond = respond
        h = await start_app(llm_base_url=llm.url, llm_model="curious-model",
                            kubectl_path=str(kubectl.path), llm_tool_max_calls=3)
        inc = await post_alert(h, crashloop())
        card = await proposed_card(h, inc)
        assert len(kubectl.calls()) == 3
        assert ["tools" in r for r in llm.requests] == [True, True, True, False]
        assert "model: curious-model" in card["text"]


# (c) a model that hangs: the card is there at once, the rule answer within the timeout -

@pytest.mark.parametrize(("locale", "words"), [
    ("en", ("rule: pod-crash", "Model slow-model did not answer in time; the rule answer stands",
            "Related: the lookup timed out; the analysis went on without it.")),
    ("zh-TW", ("規則：pod-crash", "模型 slow-model未及時回答，採用規則的答案",
               "相關資料：查詢逾時；分析在沒有相關資料的情況下繼續。")),
])
async def test_hanging_model_and_embeddings_never_delay_the_card_or_the_rule_answer(
    start_app: AppFactory, locale: str, words: tuple[str, str, str]
) -> None:
    async with fake_llm_server() as llm:
        llm.hang = True  # chat completions and embeddings alike
        h = await start_app(llm_base_url=llm.url, llm_model="slow-model",
                            embeddings_base_url=llm.url, embeddings_model="embed",
                            decision_timeout="3s", kb_timeout="1s", locale=locale)
        inc = await post_alert(h, crashloop())

        def card_while_analysis_waits() -> dict[str, Any] | None:
            # The first card is on screen while the analysis still waits on a server.
            cards = [m for m in h.cards() if inc in m["text"]]
            if cards and llm.raw and not llm.release.is_set():
                return cards[0]
            return None

        first = await h.wait_card(lambda m: inc in m["text"])
        assert (await h.decision(inc)).state is DecisionState.ANALYZING
        await wait_for(card_while_analysis_waits, 15)
        card = await proposed_card(h, inc)
        assert card["message_id"] == first["message_id"]
        assert words[0] in card["text"] and words[1] in card["text"]
        decision = await h.decision(inc)
        assert decision.state is DecisionState.PENDING
        assert decision.proposal is not None and decision.proposal.source is ProposalSource.RULE
        shown = await evidence(h, card, "Details" if locale == "en" else "詳情")
        assert words[2] in shown


async def test_a_hanging_model_holds_up_only_its_own_incident(start_app: AppFactory) -> None:
    async with fake_llm_server() as llm:
        llm.answer(answer(RESTART | {"namespace": "web"}, "Restart it."))
        llm.hang_if = lambda body: '"namespace": "shop"' in body["messages"][1]["content"]
        h = await start_app(llm_base_url=llm.url, llm_model="ops-model")  # timeout 30 s
        stuck = await post_alert(h, crashloop())
        await wait_for(lambda: llm.requests, 15)  # the first analysis is waiting on the model
        behind = await post_alert(h, crashloop_in("web", 1))
        assert behind != stuck
        card = await h.wait_card(lambda m: behind in m["text"] and "model: ops-model" in m["text"])
        assert "kubectl rollout restart deployment/cart --namespace web" in card["text"]
        assert (await h.decision(stuck)).state is DecisionState.ANALYZING


def crashloop_in(namespace: str, n: int) -> dict[str, Any]:
    """The crash loop in another namespace: its own group, its own alerts (fingerprints)."""
    payload = crashloop(namespace=namespace)
    payload["groupLabels"]["namespace"] = namespace
    payload["groupKey"] = payload["groupKey"].replace('"shop"', f'"{namespace}"')
    for alert in payload["alerts"]:
        alert["fingerprint"] = f"{n:03x}" + alert["fingerprint"][3:]
    return payload


async def test_n_incidents_wait_for_one_slow_model_answer_at_once_not_n(
    start_app: AppFactory
) -> None:
    """N incidents with a model that holds every request: all N requests are at the model
    at once (one after another, the N-th would wait N x DECISION_TIMEOUT)."""
    n = 4
    async with fake_llm_server() as llm:
        llm.answer(answer(RESTART, "Restart it."))
        llm.hang = True
        h = await start_app(llm_base_url=llm.url, llm_model="ops-model")  # timeout 30 s
        incidents = [await post_alert(h, crashloop_in(f"team{i}", i + 1)) for i in range(n)]
        await wait_for(lambda: llm.in_flight == n, 15,
                       message=f"{llm.in_flight} of {n} analyses at the model at once")
        llm.release.set()
        for inc in incidents:
            await h.wait_card(lambda m, inc=inc: inc in m["text"] and "model: ops-model"
                              in m["text"])
        assert len(llm.requests) == n and llm.max_in_flight == n


async def test_analysis_concurrency_bounds_the_requests_at_the_model(
    start_app: AppFactory
) -> None:
    async with fake_llm_server() as llm:
        llm.hang = True
        h = await start_app(llm_base_url=llm.url, llm_model="slow-model",
                            decision_timeout="1s", analysis_concurrency=1)
        incidents = [await post_alert(h, crashloop_in(f"team{i}", i + 1)) for i in range(2)]
        await h.settled(30)
        for inc in incidents:
            decision = await h.decision(inc)
            assert decision.proposal is not None
            assert decision.proposal.source is ProposalSource.RULE
        # One at a time: the second asked only after the first had given up.
        assert len(llm.requests) == 2 and llm.max_in_flight == 1


# (d) several models: agreement, dissent, absence -------------------------------------

def by_model(answers: dict[str, dict[str, Any]]) -> Responder:
    def respond(body: dict[str, Any]) -> dict[str, Any]:
        return {"content": json.dumps(answers[body["model"]])}
    return respond


async def test_models_that_agree_show_n_of_m_and_keep_the_risk(start_app: AppFactory) -> None:
    async with fake_llm_server() as llm:
        llm.respond = by_model({m: answer(RESTART, f"{m}: restart clears the crash loop.")
                                for m in ("model-a", "model-b", "model-c")})
        h = await start_app(llm_base_url=llm.url, llm_model="model-a",
                            consensus_models=["model-a", "model-b", "model-c"])
        inc = await post_alert(h, crashloop("critical"))
        card = await proposed_card(h, inc)
        assert sorted(r["model"] for r in llm.requests) == ["model-a", "model-b", "model-c"]
        assert ("🗳 4 of 4 propose: rollout restart deployment/cart "
                "(model-a, model-b, model-c, rules: pod-crash)") in card["text"]
        assert "disagree" not in card["text"] and "↳" not in card["text"]
        decision = await h.decision(inc)
        assert decision.proposal is not None and decision.proposal.risk is Risk.MEDIUM


@pytest.mark.parametrize(("locale", "words"), [
    ("en", ("🗳 2 of 4 propose: rollout restart deployment/cart (model-a, rules: pod-crash)"
            " · they disagree: risk raised from medium, no auto-approval",
            "↳ model-b: absent (timed out)",
            "↳ model-c: scale deployment/cart -n shop replicas=3",
            "Engines · 2 of 4 agree · risk raised from medium")),
    ("zh-TW", ("🗳 4 個引擎中有 2 個建議：rollout restart deployment/cart"
               "（model-a、rules: pod-crash） · 意見不一：風險由中提高，不自動核准",
               "↳ model-b：缺席（逾時）",
               "↳ model-c：scale deployment/cart -n shop replicas=3",
               "各引擎 · 4 個中有 2 個同意 · 風險由中提高")),
])
async def test_models_that_disagree_raise_the_risk_and_name_each_dissent(
    start_app: AppFactory, locale: str, words: tuple[str, ...]
) -> None:
    async with fake_llm_server() as llm:
        llm.respond = by_model({
            "model-a": answer(RESTART, "A restart clears the bad state."),
            "model-c": answer(SCALE3, "More replicas absorb the crashes.", risk="low"),
        })
        llm.hang_models = {"model-b"}
        h = await start_app(llm_base_url=llm.url, llm_model="model-a", locale=locale,
                            consensus_models=["model-a", "model-b", "model-c"],
                            decision_timeout="3s")
        inc = await post_alert(h, crashloop("critical"))
        card = await proposed_card(h, inc)
        for line in words[:3]:
            assert line in card["text"], line
        decision = await h.decision(inc)
        assert decision.proposal is not None and decision.proposal.risk is Risk.HIGH
        assert decision.required_approvals == 1  # high, not critical
        shown = await evidence(h, card, "Details" if locale == "en" else "詳情")
        assert words[3] in shown
        # Details has each engine's full answer.
        assert "A restart clears the bad state." in shown
        assert "More replicas absorb the crashes." in shown


async def test_disagreement_disables_auto_approval_of_a_proven_playbook(
    start_app: AppFactory, databases: Databases,
) -> None:
    from bot.decisions.playbooks import import_toml
    from storage.backends import database_for
    from storage.playbooks import PlaybookRepo

    db = database_for(await databases.target())
    await db.open()
    await import_toml(PlaybookRepo(db), AUTO_PLAYBOOK.format(runs=6, successes=6,
                                                           recent="SSSSSS"))
    await db.close()
    async with fake_llm_server() as llm:
        llm.respond = by_model({
            "model-a": answer(SCALE3 | {"params": {"replicas": 4}}, "Scale out, as the "
                              "playbook says.", risk="low"),
            "model-b": answer(SCALE3 | {"params": {"replicas": 4}}, "Scaling worked before.",
                              risk="low"),
        })
        h = await start_app(llm_base_url=llm.url, llm_model="model-a", auto_approve=True,
                            consensus_models=["model-a", "model-b"])
        inc = await post_alert(h, crashloop("critical"))
        card = await proposed_card(h, inc)
        decision = await h.decision(inc)
        # The models and the playbook agree; the rules (restart) do not: a person decides.
        assert decision.state is DecisionState.PENDING and not decision.auto_approved
        assert decision.proposal is not None
        assert decision.proposal.source is ProposalSource.PLAYBOOK
        assert "playbook: scale cart out" in card["text"]
        assert "3 of 4 propose: scale deployment/cart" in card["text"]
        assert "no auto-approval" in card["text"] and "Awaiting approval" in card["text"]


async def test_engines_on_several_servers_from_consensus_path(
    start_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTED_KEY", "sk-hosted-0123456789")
    async with fake_llm_server() as local, fake_llm_server() as hosted:
        local.answer(answer(RESTART, "Local model: restart."))
        hosted.answer(answer(None, "Hosted model: leave it alone.", risk="low"))
        engines = tmp_path / "engines.toml"
        engines.write_text(
            f'[[engine]]\nname = "local"\nbase_url = "{local.url}"\nmodel = "qwen"\n\n'
            f'[[engine]]\nname = "hosted"\nbase_url = "{hosted.url}"\nmodel = "gpt"\n'
            'api_key_env = "HOSTED_KEY"\n')
        h = await start_app(consensus_path=str(engines))
        inc = await post_alert(h, crashloop("critical"))
        card = await proposed_card(h, inc)
        assert [r["model"] for r in local.requests] == ["qwen"]
        assert [r["model"] for r in hosted.requests] == ["gpt"]
        assert "Authorization" not in local.headers[0]
        assert hosted.headers[0]["Authorization"] == "Bearer sk-hosted-0123456789"
        assert ("🗳 2 of 3 propose: rollout restart deployment/cart (local, rules: pod-crash)"
                in card["text"])
        assert "↳ hosted: no action" in card["text"]


# (e) the Prometheus instant query -----------------------------------------------------

async def test_model_queries_prometheus_and_sees_the_answer(start_app: AppFactory) -> None:
    query = 'sum(rate(kube_pod_container_status_restarts_total{namespace="shop"}[5m]))'
    async with fake_prometheus_server() as prom, fake_llm_server() as llm:
        llm.respond = investigator([tool_call("prometheus_query", {"query": query})],
                                   lambda: prom.nonces,
                                   answer(RESTART, "Restarts climb steadily."))
        h = await start_app(llm_base_url=llm.url, llm_model="metrics-model",
                            prometheus_url=prom.url, kubectl_path="/nonexistent/kubectl")
        inc = await post_alert(h, crashloop())
        card = await proposed_card(h, inc)
        assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["prometheus_query"]
        assert len(prom.queries) == 1 and prom.queries[0]["query"] == query
        assert float(prom.queries[0]["time"]) > 0
        assert "model: metrics-model" in card["text"]
        shown = await evidence(h, card)
        assert "prometheus_query query=" in shown and prom.nonces[0] in shown


# (f) secrets never leave ----------------------------------------------------------------

SECRETS = {
    "url": "postgres://app:Tr0ub4dor-pass@db.shop:5432/app",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu",
    "aws": "AKIAQWERTYUIOPASDFGH",
    "key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n"
           "-----END RSA PRIVATE KEY-----",
    "custom": "TENANT-424242",
}
LEAKS = ("Tr0ub4dor-pass", "c2VjcmV0LXRva2Vu", "AKIAQWERTYUIOPASDFGH",
         "secretkeymaterial", "424242")


async def test_seeded_secrets_reach_no_model_or_embeddings_request(
    start_app: AppFactory, kubectl: FakeKubectl, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patterns = tmp_path / "redact.txt"
    patterns.write_text("# our tenant ids\nTENANT-[0-9]{6}\n")
    monkeypatch.setenv("FAKE_KUBECTL_PRINT", f"env: {SECRETS['aws']}\n{SECRETS['key']}")
    payload = crashloop(tenant=SECRETS["custom"])
    for alert in payload["alerts"]:
        alert["annotations"]["description"] = (
            f"connect {SECRETS['url']} with header Authorization: {SECRETS['bearer']}")
    async with fake_llm_server() as llm:
        llm.respond = investigator([tool_call("kubectl_logs", {"pod": "cart-5d8f"})],
                                   lambda: nonces(tmp_path)[-1:],
                                   answer(RESTART, "Logs show a crash on start."))
        h = await start_app(llm_base_url=llm.url, llm_model="careful-model",
                            embeddings_base_url=llm.url, embeddings_model="embed",
                            kubectl_path=str(kubectl.path), llm_redact_path=str(patterns))
        # A first incident with the same secrets, resolved: it is in the index next time.
        inc1 = await post_alert(h, payload)
        await proposed_card(h, inc1)
        resolved = copy.deepcopy(payload) | {"status": "resolved"}
        for alert in resolved["alerts"]:
            alert.update(status="resolved", endsAt="2026-11-27T13:30:00Z")
        await post_alert_resolved(h, resolved)
        again = copy.deepcopy(payload)
        for alert in again["alerts"]:
            alert["startsAt"] = "2026-11-27T15:00:00Z"
        inc2 = await post_alert(h, again)
        card = await proposed_card(h, inc2)
        # Not vacuous: the model saw the tool output, the embeddings server the incidents.
        assert len(nonces(tmp_path)) == 2 and llm.embedding_requests
        decision = await h.decision(inc2)
        assert decision.proposal is not None and decision.proposal.evidence is not None
        assert decision.proposal.source is ProposalSource.LLM
        assert inc1 in [r.ref for r in decision.proposal.evidence.related]
        sent = "\n".join(llm.raw)
        assert sent.count("[REDACTED]") >= 5
        for leak in LEAKS:
            assert leak not in sent, leak
        shown = await evidence(h, card)
        assert "[REDACTED]" in shown
        for leak in LEAKS:
            assert leak not in shown, leak


async def post_alert_resolved(h: Harness, payload: dict[str, Any]) -> None:
    status, body = await h.post("/alerts/alertmanager", payload)
    assert status == 200, body
    await h.settled()
