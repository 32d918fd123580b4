"""CRITICAL_NAMESPACES: four-eyes without rules, explained on the card, warned about at start."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from harness import ALICE, BOB, CHAT, AppFactory, Harness

from bot.alerts.routing import RouteTable, default_route, parse_routes
from bot.config_checks import critical_namespace_gaps
from bot.models import DecisionState
from storage import repo

ROOT = Path(__file__).resolve().parent.parent
WHY = "🔐 shop is a critical namespace: 2 different approvers needed"


async def test_critical_namespace_needs_two_approvers(start_app: AppFactory) -> None:
    app: Harness = await start_app(critical_namespaces=["shop"])
    inc = (await app.alert("crashloop-firing.json"))["opened"][0]
    await app.settled()
    card = await app.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    assert "risk critical" in card["text"] and WHY in card["text"]
    assert "0/2" in card["text"]
    await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    async with app.db.read() as conn:
        assert (await repo.current_decision(conn, inc)).state is DecisionState.PENDING
    await app.press(card["message_id"], "Approve", BOB)
    await app.settled()
    async with app.db.read() as conn:
        assert (await repo.current_decision(conn, inc)).state is DecisionState.SUCCEEDED
    assert WHY not in app.em.message(CHAT, card["message_id"])["text"]


async def test_other_namespaces_keep_one_approver(start_app: AppFactory) -> None:
    app: Harness = await start_app(critical_namespaces=["payments"])
    inc = (await app.alert("crashloop-firing.json"))["opened"][0]
    await app.settled()
    card = await app.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    assert "risk medium" in card["text"] and "critical namespace" not in card["text"]


async def test_startup_warns_when_a_critical_route_has_one_approver(
    start_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.checks"):
        await start_app(critical_namespaces=["payments"], approver_ids=[ALICE["id"]])
    warned = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith("CRITICAL_NAMESPACES")]
    assert len(warned) == 1, warned
    assert warned[0].startswith(
        f"CRITICAL_NAMESPACES: the default route (chat {CHAT}) can receive incidents in "
        "critical namespace payments but has 1 approver(s): their proposals need 2 different "
        "approvers and could never be approved there — add approvers"
    )


def _check_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": "1:x",
            "TELEGRAM_CHAT_ID": "-100", "DATABASE_PATH": str(tmp_path / "db.sqlite"),
            "HTTP_PORT": "0"}
    return subprocess.run([sys.executable, "-m", "bot", "check-config", "--offline"],
                          env=base | env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def test_check_config_warns_per_route(tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text('[[route]]\nname = "pay"\nmatch = { namespace = "payments" }\n'
                      "chat_id = -200\napprovers = [1]\n")
    result = _check_config(tmp_path, ROUTES_PATH=str(routes), APPROVER_IDS="1,2",
                           CRITICAL_NAMESPACES="payments,prod")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    rows = [r for r in result.stdout.splitlines() if r.startswith("CRITICAL_NAMESPACES")]
    assert len(rows) == 1, result.stdout
    assert rows[0].split()[1] == "warn"
    assert "route 1 (pay) (chat -200) can receive incidents in critical namespace payments" \
        in rows[0]
    fine = _check_config(tmp_path, ROUTES_PATH=str(routes), APPROVER_IDS="1,2",
                         CRITICAL_NAMESPACES="prod")
    assert fine.returncode == 0 and "CRITICAL_NAMESPACES" not in fine.stdout


def _table(toml: str, default_approvers: list[int]) -> RouteTable:
    return parse_routes(tomllib.loads(toml), default_route(-100, default_approvers))


def test_gaps_name_each_route_that_cannot_reach_two_approvers() -> None:
    routes = _table(
        """
        [[route]]
        name = "pay"
        match = { namespace = "payments" }
        chat_id = -200
        approvers = [1]
        [[route]]
        name = "prod-ish"
        match_regex = { namespace = "prod|staging" }
        match = { team = "web" }
        chat_id = -300
        approvers = [1, 2]
        """,
        [1],
    )
    gaps = critical_namespace_gaps(routes, {"payments", "prod"}, 2)
    # payments is taken whole by route 1, so only prod can reach the default chat.
    assert len(gaps) == 2, gaps
    assert gaps[0].startswith("route 1 (pay) (chat -200) can receive incidents in critical "
                              "namespace payments but has 1 approver(s)")
    assert gaps[1].startswith("the default route (chat -100)") and "namespace prod " in gaps[1]
    assert critical_namespace_gaps(routes, {"payments", "prod"}, 1) == []
    assert critical_namespace_gaps(routes, set(), 2) == []


def test_no_gap_when_every_route_into_the_namespace_has_enough_approvers() -> None:
    routes = _table(
        """
        [[route]]
        match = { namespace = "payments" }
        chat_id = -200
        approvers = [1, 2]
        """,
        [1],
    )
    assert critical_namespace_gaps(routes, {"payments"}, 2) == []
    assert len(critical_namespace_gaps(routes, {"payments"}, 3)) == 1
