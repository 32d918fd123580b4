"""The chat page's sample panel: every sample goes through the real webhook of the real app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import ALICE, BOB, Harness

from sandbox.panel import CAROL, SAMPLES, load_samples
from sandbox.run import sandbox_settings
from sandbox.server import PANEL_KEY, RunningEmulator
from storage import repo

TOKEN = "panel-test-token"


async def _call(method: str, url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url) as resp:
        body = await resp.read()
        return resp.status, (json.loads(body) if resp.content_type == "application/json"
                             else body)


async def _fire(emu: RunningEmulator, name: str) -> tuple[int, dict[str, Any]]:
    return await _call("POST", f"{emu.base_url}/_sandbox/samples/{name}")


async def test_every_sample_reaches_the_real_webhook(start_app, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    app: Harness = await start_app(alert_webhook_token=TOKEN, critical_namespaces=["payments"])
    emu.runner.app[PANEL_KEY].attach(f"{app.url}/alerts/alertmanager", TOKEN,
                                     [ALICE["id"], BOB["id"]])
    samples = load_samples()
    for name, sample in samples.items():
        status, body = await _fire(emu, name)
        assert status == 200, body
        assert body == {"sample": name, "posts": len(sample.payloads),
                        "alerts": sample.alert_count}
    await app.settled(60)
    async with app.db.read() as conn:
        open_now = await repo.open_incidents(conn)
    # six single incidents and the storm's groups, less the crash loop that resolved
    storm = samples["storm"]
    assert storm.alert_count >= 200
    assert len(open_now) == 6 - 1 + len(storm.payloads)
    cards = app.cards()
    payments = [c for c in cards if "payments is a critical namespace" in c["text"]]
    assert len(payments) == 1 and "0/2" in payments[0]["text"]
    hostile = [c for c in cards if "<script>alert('x')</script>" in c["text"]]
    assert len(hostile) == 1, "the hostile sample's card shows its text literally"


async def test_a_refusing_webhook_is_reported(start_app, emu: RunningEmulator) -> None:  # type: ignore[no-untyped-def]
    app: Harness = await start_app(alert_webhook_token=TOKEN)
    emu.runner.app[PANEL_KEY].attach(f"{app.url}/alerts/alertmanager", "wrong", [])
    status, body = await _fire(emu, "crashloop")
    assert status == 502
    assert body["error"].startswith("the bot refused 1 of 1 posts; first: 401")
    async with app.db.read() as conn:
        assert await repo.open_incidents(conn) == []


async def test_panel_without_a_bot(emu: RunningEmulator) -> None:
    status, panel = await _call("GET", f"{emu.base_url}/_sandbox/panel")
    assert status == 200 and panel["firing"] is False
    assert [s["name"] for s in panel["samples"]] == list(load_samples())
    assert {p["first_name"] for p in panel["people"]} == {"Alice", "Bob", "Carol"}
    status, body = await _fire(emu, "crashloop")
    assert status == 409 and "python -m bot sandbox" in body["error"]
    status, body = await _fire(emu, "nope")
    assert status == 404 and body["error"].startswith("no sample named 'nope'")
    status, icon = await _call("GET", f"{emu.base_url}/favicon.svg")
    assert status == 200 and icon.startswith(b"<svg")


def test_sample_index_lists_every_sample_file() -> None:
    listed = {entry["file"] for entry in json.loads((SAMPLES / "index.json").read_text())}
    assert listed == {p.name for p in SAMPLES.glob("*.json")} - {"index.json"}


def test_sandbox_people_and_four_eyes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRITICAL_NAMESPACES", raising=False)
    settings = sandbox_settings("http://127.0.0.1:1", "1:X", 0, tmp_path, "tok")
    assert settings.approver_ids == [ALICE["id"], BOB["id"]]
    assert CAROL["id"] == 333 and CAROL["id"] not in settings.approver_ids
    assert settings.critical_namespaces == ["payments"]
    assert settings.alert_webhook_token.get_secret_value() == "tok"
    monkeypatch.setenv("CRITICAL_NAMESPACES", "prod,shop")
    assert sandbox_settings("http://127.0.0.1:1", "1:X", 0, tmp_path).critical_namespaces == [
        "prod", "shop"]
