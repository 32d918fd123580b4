import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import CRASHLOOP, alert, incident_for, playbook

from bot.decisions.playbooks import (
    PlaybookFileError,
    auto_approve_eligible,
    best_match,
    create_from_decision,
    dump_toml,
    export_toml,
    import_toml,
    incident_symptoms,
    parse_toml,
    playbook_action,
    similarity,
)
from bot.models import Action, Risk, Verb
from bot.playbook_types import ActionTemplate, Symptoms
from storage.db import Database
from storage.playbooks import PlaybookRepo


def observed(alertname="KubePodCrashLooping", service="cart-svc", ns="shop", sev="warning"):
    return {"alertname": alertname, "service": service, "namespace": ns, "severity": sev}


@pytest.fixture
async def repo(tmp_path) -> AsyncIterator[PlaybookRepo]:
    db = Database(tmp_path / "t.db")
    await db.open()
    yield PlaybookRepo(db)
    await db.close()


# --- the worked examples of the module docstring (pasted into the README) ---


def test_worked_example_1_full_match() -> None:
    assert similarity(playbook().symptoms, observed()) == 1.0


def test_worked_example_2_other_namespace_is_at_threshold() -> None:
    assert similarity(playbook().symptoms, observed(ns="shop-staging", sev="critical")) == 0.85


def test_worked_example_3_other_service_is_below() -> None:
    assert similarity(playbook().symptoms, observed(service="checkout")) == 0.80


def test_similarity_bounds_and_case() -> None:
    assert similarity(Symptoms(), observed()) == 1.0  # all wildcards
    assert similarity(playbook().symptoms, observed("Other", "x", "y")) == 0.15
    assert similarity(playbook().symptoms, observed("kubepodcrashlooping", "CART-SVC")) == 1.0


def incident(labels=None):
    alerts = [alert(labels or CRASHLOOP)]
    return incident_for(alerts), alerts


def test_incident_symptoms_use_service_label_then_target() -> None:
    inc, alerts = incident()
    assert incident_symptoms(inc, alerts)["service"] == "cart-svc"
    no_service = {k: v for k, v in CRASHLOOP.items() if k != "service"}
    inc, alerts = incident(no_service)
    assert incident_symptoms(inc, alerts)["service"] == "cart"  # the incident target


def test_threshold_boundary_used_and_just_below_not() -> None:
    inc, alerts = incident()
    at = playbook(
        symptoms=Symptoms(
            alertnames=["LabPodCrashLooping"], services=["cart-svc"], namespaces=["other"]
        )
    )
    assert best_match([at], inc, alerts) == (at, 0.85)
    below = playbook(symptoms=Symptoms(alertnames=["LabPodCrashLooping"], services=["other"]))
    assert best_match([below], inc, alerts) is None


@pytest.mark.parametrize(
    ("runs", "successes", "used"),
    [(0, 0, True), (5, 4, True), (10, 8, True), (10, 7, False), (5, 3, False)],
)
def test_success_rate_boundary(runs: int, successes: int, used: bool) -> None:
    inc, alerts = incident()
    pb = playbook(
        symptoms=Symptoms(alertnames=["LabPodCrashLooping"]), runs=runs, successes=successes
    )
    assert (best_match([pb], inc, alerts) is not None) is used


def test_best_match_prefers_higher_similarity_then_record() -> None:
    inc, alerts = incident()
    loose = playbook(
        id=1, name="a", symptoms=Symptoms(alertnames=["LabPodCrashLooping"], namespaces=["x"])
    )
    exact = playbook(id=2, name="b", symptoms=Symptoms(alertnames=["LabPodCrashLooping"]))
    assert best_match([loose, exact], inc, alerts) == (exact, 1.0)
    better = playbook(id=3, name="c", symptoms=exact.symptoms, runs=10, successes=10)
    assert best_match([exact, better], inc, alerts) == (better, 1.0)


def test_playbook_action_takes_target_from_incident_or_fixed() -> None:
    inc, alerts = incident()
    assert playbook_action(playbook(), inc, alerts) == Action(
        verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop"
    )
    fixed = playbook(
        action=ActionTemplate(
            verb=Verb.SCALE, target_name="cart-web", namespace="web", params={"replicas": 4}
        )
    )
    assert playbook_action(fixed, inc, alerts) == Action(
        verb=Verb.SCALE, target_name="cart-web", namespace="web", params={"replicas": 4}
    )
    no_target = {"alertname": "X", "namespace": "shop"}
    inc, alerts = incident(no_target)
    assert playbook_action(playbook(), inc, alerts) is None


def test_template_refuses_unsafe_values() -> None:
    with pytest.raises(ValueError, match="not a valid Kubernetes name"):
        ActionTemplate(verb=Verb.ROLLOUT_RESTART, target_name="$(reboot)")
    with pytest.raises(ValueError, match="cannot target"):
        ActionTemplate(verb=Verb.DELETE_POD, target_kind="deployment")
    with pytest.raises(ValueError, match="does not take"):
        ActionTemplate(verb=Verb.ROLLOUT_RESTART, params={"replicas": 2})


# --- auto-approve, one condition at a time ---

ELIGIBLE = {"runs": 6, "successes": 6, "recent": "SSSSSS"}


def test_auto_approve_when_all_conditions_hold() -> None:
    ok, why = auto_approve_eligible(playbook(**ELIGIBLE), Risk.LOW)
    assert ok, why
    assert why == "low risk, 6 successful runs, no failure in the last 5"


@pytest.mark.parametrize("risk", [Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL])
def test_auto_approve_only_low_risk(risk: Risk) -> None:
    ok, why = auto_approve_eligible(playbook(**ELIGIBLE), risk)
    assert not ok
    assert why == f"risk is {risk}; only low-risk playbooks auto-approve"


def test_auto_approve_needs_min_successes() -> None:
    pb = playbook(runs=4, successes=4, recent="SSSS")
    assert auto_approve_eligible(pb, Risk.LOW) == (
        False,
        "4 successful runs; auto-approve needs 5",
    )
    assert auto_approve_eligible(pb, Risk.LOW, min_runs=4)[0]


def test_auto_approve_no_failure_in_window() -> None:
    pb = playbook(runs=10, successes=9, recent="SSSSFSSSSS")
    assert auto_approve_eligible(pb, Risk.LOW) == (
        True,
        "low risk, 9 successful runs, no failure in the last 5",
    )
    assert auto_approve_eligible(pb, Risk.LOW, window=6) == (
        False,
        "a failure in the last 6 runs (FSSSSS)",
    )


# --- storage ---


async def test_repo_add_get_and_idempotent_name(repo: PlaybookRepo) -> None:
    added = await repo.add(playbook())
    assert added is not None and added.id is not None
    assert await repo.get(added.id) == added
    assert await repo.add(playbook()) is None  # same name
    assert await repo.list_all() == [added]
    assert await repo.delete(added.id)
    assert await repo.get(added.id) is None


async def test_stats_after_success_failure_and_dry_run(repo: PlaybookRepo) -> None:
    pb = await repo.add(playbook())
    assert pb is not None and pb.id is not None
    after = await repo.record_execution(pb.id, success=True, dry_run=False)
    assert after is not None and (after.runs, after.successes, after.recent) == (1, 1, "S")
    after = await repo.record_execution(pb.id, success=False, dry_run=False)
    assert after is not None and (after.runs, after.successes, after.recent) == (2, 1, "SF")
    for success in (True, False):
        after = await repo.record_execution(pb.id, success=success, dry_run=True)
        assert after is not None and (after.runs, after.successes, after.recent) == (2, 1, "SF")


async def test_recent_keeps_last_ten(repo: PlaybookRepo) -> None:
    pb = await repo.add(playbook())
    assert pb is not None and pb.id is not None
    for success in [False] + [True] * 10:
        after = await repo.record_execution(pb.id, success=success, dry_run=False)
    assert after is not None
    assert (after.runs, after.successes, after.recent) == (11, 10, "S" * 10)


async def test_create_from_decision(repo: PlaybookRepo) -> None:
    inc, alerts = incident()
    action = Action(
        verb=Verb.SCALE,
        target_name="cart",
        namespace="shop",
        params={"replicas": 5, "current_replicas": 3},
    )
    pb = await create_from_decision(repo, inc, action, Risk.LOW, "Scale cart up", "alice", alerts)
    assert pb.id is not None
    assert pb.symptoms == Symptoms(
        alertnames=["LabPodCrashLooping"], services=["cart-svc"], namespaces=["shop"]
    )
    # target and namespace stay templated, current_replicas is dropped
    assert pb.action == ActionTemplate(verb=Verb.SCALE, params={"replicas": 5})
    assert pb.created_by == "alice"
    again = await create_from_decision(repo, inc, action, Risk.LOW, "dup", "bob", alerts)
    assert again.id == pb.id
    assert len(await repo.list_all()) == 1
    # and it matches the incident it came from
    assert best_match(await repo.list_all(), inc, alerts) == (pb, 1.0)


async def test_create_from_decision_fixes_a_different_target(repo: PlaybookRepo) -> None:
    inc, alerts = incident()
    action = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart-worker", namespace="jobs")
    pb = await create_from_decision(repo, inc, action, Risk.MEDIUM, "", "alice", alerts)
    assert (pb.action.target_name, pb.action.namespace) == ("cart-worker", "jobs")


# --- TOML ---

TRICKY = playbook(
    name='quotes "and" \\ back\nslash\ttab\x7f ünï',
    symptoms=Symptoms(alertnames=["A", "B"], severities=["critical"]),
    action=ActionTemplate(
        verb=Verb.SCALE, target_kind="statefulset", target_name="db", params={"replicas": 3}
    ),
    risk=Risk.LOW,
    description="multi\nline",
    runs=7,
    successes=6,
    recent="SSFSSSS",
    created_by="alice <a@x>",
    created_at=datetime(2026, 11, 27, 13, 7, 56, 436000, tzinfo=UTC),
)


def test_toml_round_trip_in_memory() -> None:
    text = dump_toml([TRICKY, playbook()])
    assert parse_toml(text) == [TRICKY, playbook()]
    assert dump_toml(parse_toml(text)) == text


async def test_toml_round_trip_through_the_database(repo: PlaybookRepo, tmp_path) -> None:
    assert await import_toml(repo, dump_toml([playbook(), TRICKY])) == 2
    exported = await export_toml(repo)
    other_db = Database(tmp_path / "other.db")
    await other_db.open()
    try:
        other = PlaybookRepo(other_db)
        assert await import_toml(other, exported) == 2
        assert await export_toml(other) == exported
        assert [p.model_copy(update={"id": None}) for p in await other.list_all()] == sorted(
            [playbook(), TRICKY], key=lambda p: p.name
        )
    finally:
        await other_db.close()


async def test_import_replaces_by_name(repo: PlaybookRepo) -> None:
    first = await repo.add(playbook())
    assert first is not None
    await import_toml(repo, dump_toml([playbook(description="updated")]))
    [only] = await repo.list_all()
    assert only.id == first.id and only.description == "updated"


@pytest.mark.parametrize(
    "text",
    [
        "not toml [",
        '[[playbook]]\nname = "x"\n',  # no action, risk, created_at
        dump_toml([playbook()]).replace('verb = "rollout-restart"', 'verb = "exec"'),
        dump_toml([playbook()]).replace(
            "[playbook.action]", '[playbook.action]\ntarget_name = "a;b"'
        ),
        dump_toml([playbook()]).replace("runs = 0", "runs = 0\nextra = 1"),
        dump_toml([playbook()]).replace('recent = ""', 'recent = "SX"'),
    ],
)
def test_bad_playbook_files_are_refused(text: str) -> None:
    with pytest.raises(PlaybookFileError):
        parse_toml(text)


async def test_failed_import_changes_nothing(repo: PlaybookRepo) -> None:
    with pytest.raises(PlaybookFileError):
        await import_toml(repo, dump_toml([playbook()]) + "\n[[playbook]]\nname = 1\n")
    assert await repo.list_all() == []


def test_the_documented_example_imports() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "playbooks.md").read_text("utf-8")
    (example,) = re.findall(r"```toml\n(.*?)```", doc, re.S)
    books = parse_toml(example)
    assert [b.name for b in books] == ["restart crash-looping cart", "scale checkout out"]
    assert books[1].action.params == {"replicas": 6} and books[0].symptoms.severities == []
    assert parse_toml(dump_toml(books)) == books


def test_every_problem_of_a_file_is_one_line() -> None:
    text = dump_toml([playbook()]).replace("runs = 0", "runs = 0\nextra = 1").replace(
        'recent = ""', 'recent = "SX"'
    )
    with pytest.raises(PlaybookFileError) as caught:
        parse_toml(text + '\n[[playbook]]\nname = "b"\nrisk = "extreme"\n')
    lines = caught.value.errors
    assert all("\n" not in line for line in lines)
    name = playbook().name
    assert any(line.startswith(f'playbook 1 "{name}": extra: unknown key') for line in lines)
    assert any(line.startswith(f'playbook 1 "{name}": recent: ') for line in lines)
    assert 'playbook 2 "b": risk: Input should be' in "\n".join(lines)
    assert 'playbook 2 "b": action: missing (required)' in lines
    assert len(lines) == 5, lines  # + created_at of playbook 2
