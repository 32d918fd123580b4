"""Alert POST -> proposal on the card, with knowledge, tools and consensus vs rules only.

    ./dev bench proposals [N]

Two apps in the same run, the same critical crash-loop alerts one at a time:
- rules only (no LLM), the baseline;
- everything on, against the test stand-ins: three models in CONSENSUS_MODELS, each
  calling two tools (the kubectl stand-in script, a real subprocess, and the Prometheus
  API stand-in) before answering, an embeddings server and a KB_PATH folder of runbooks.
Reports median and worst per path, the share of DECISION_TIMEOUT the full path used,
and the ratio of the medians. The stand-ins answer at once, so what is measured is the
bot's own cost (requests, redaction, subprocesses, index, vote) plus the stand-ins' (the
kubectl stand-in is a Python script: about 0.2 s a run on a loaded 2-core machine), not a
model's thinking.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import payload_for_group, post, report, running_app
from bot.app import App
from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_llm import fake_llm_server, tool_call, tool_messages
from standins import fake_prometheus_server, install_fake_kubectl

MODELS = ["model-a", "model-b", "model-c"]
DECISION_TIMEOUT = 30.0  # seconds, the default
RUNBOOK = "# Crash loops\n\n## OOMKilled\n\nRaise the memory limit.\n\n## Bad state\n\nRestart.\n"


def critical(i: int) -> dict[str, Any]:
    data = payload_for_group(i)
    for alert in data["alerts"]:
        alert["labels"]["severity"] = "critical"
    data["commonLabels"]["severity"] = "critical"
    return data


async def time_to_proposal(app: App, emu: RunningEmulator, payloads: list[dict[str, Any]],
                           key_of: list[str], timeout: float = 60) -> list[float]:
    """Seconds from each POST to the first card text with its proposal, one at a time."""
    em = emu.emulator

    def proposal_at(key: str) -> float | None:
        for c in em.calls("sendMessage") + em.calls("editMessageText"):
            text = str(c["params"].get("text", ""))
            if c["ok"] and f"— {key}" in text and "Proposal" in text:
                return float(c["at"])
        return None

    out = []
    for payload, key in zip(payloads, key_of, strict=True):
        t0 = time.time()
        assert await post(app, payload) == 200
        at = await wait_for(partial(proposal_at, key), timeout)
        out.append(at - t0)
    return out


def investigating(body: dict[str, Any]) -> dict[str, Any]:
    """Two tool calls first; the answer once their results are in the request."""
    if not tool_messages(body):
        ns = json.loads(body["messages"][1]["content"])["incident"]["namespace"]
        return {"content": "", "tool_calls": [
            tool_call("kubectl_get", {"kind": "pods"}, "c1"),
            tool_call("prometheus_query", {"query": f'sum(restarts{{namespace="{ns}"}})'}, "c2"),
        ]}
    ns = json.loads(body["messages"][1]["content"])["incident"]["namespace"]
    return {"content": json.dumps({
        "action": {"verb": "rollout-restart", "target_kind": "deployment", "target_name": ns,
                   "namespace": ns, "params": {}},
        "risk": "medium", "reasoning": "Restart clears the crash loop.", "confidence": 0.7,
    })}


async def main(n: int = 30) -> None:
    keys = [f"svc-{i:04d}" for i in range(n)]
    payloads = [critical(i) for i in range(n)]
    async with running_app() as (app, emu):
        await time_to_proposal(app, emu, [critical(9000)], ["svc-9000"])  # warm-up
        rules = await time_to_proposal(app, emu, payloads, keys)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["FAKE_KUBECTL_LOG"] = str(root / "kubectl.jsonl")
        kubectl = install_fake_kubectl(root / "bin", root / "kubectl.jsonl")
        (root / "kb").mkdir()
        (root / "kb" / "crash-loops.md").write_text(RUNBOOK)
        async with fake_llm_server() as llm, fake_prometheus_server() as prom:
            llm.respond = investigating
            async with running_app(
                llm_base_url=llm.url, llm_model=MODELS[0], consensus_models=MODELS,
                kubectl_path=str(kubectl.path), prometheus_url=prom.url,
                embeddings_base_url=llm.url, embeddings_model="embed", kb_path=str(root / "kb"),
            ) as (app, emu):
                await time_to_proposal(app, emu, [critical(9000)], ["svc-9000"])
                full = await time_to_proposal(app, emu, payloads, keys)
            tool_runs = len(kubectl.calls())
            chat = len(llm.requests)
    print(report("alert -> proposal, rules only", rules))
    print(report("alert -> proposal, KB + tools + 3-model consensus", full))
    print(f"  per incident: {chat / (n + 1):.1f} chat requests, {tool_runs / (n + 1):.1f} "
          f"kubectl runs, {len(prom.queries) / (n + 1):.1f} Prometheus queries")
    med, worst = statistics.median(full), max(full)
    print(f"  share of DECISION_TIMEOUT ({DECISION_TIMEOUT:g}s): median "
          f"{med / DECISION_TIMEOUT:.2%}, worst {worst / DECISION_TIMEOUT:.2%}")
    print(f"  ratio full / rules-only: median {med / statistics.median(rules):.1f}x, "
          f"worst {worst / max(rules):.1f}x")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
