"""The deployment files say what they promise: the image runs as a non-root user, has a
HEALTHCHECK on /healthz and installs the lock's pins with hashes; the runtime lock is the
lock's runtime part; the compose file sets only variables .env.example documents.

The image build itself is `./dev image` (needs a Docker daemon), not part of CI.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from harness import Harness
from packaging.requirements import Requirement

from bot.allowlist import ALLOWED_TARGET_KINDS
from bot.decisions.tools import CLUSTER_SCOPED, KINDS
from bot.models import Verb

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        word, _, rest = (pending + stripped).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert starts, "no FROM in the Dockerfile"
    return steps[starts[-1]:]


def test_instruction_parser_joins_continuations_and_skips_comments() -> None:
    steps = instructions("FROM x AS a\n# c\nRUN a \\\n  # inside\n  && b\nUSER 1\n")
    assert steps == [("FROM", "x AS a"), ("RUN", "a && b"), ("USER", "1")]


def test_image_runs_as_a_non_root_user() -> None:
    stage = final_stage(instructions((ROOT / "Dockerfile").read_text()))
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage sets no USER: the bot would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"
    # The named user exists in the image: it is created in the final stage.
    created = [args for word, args in stage if word == "RUN" and "useradd" in args]
    pattern = rf"--uid {user}\b" if user.isdigit() else rf"useradd\b.*\s{re.escape(user)}\b"
    assert any(re.search(pattern, c) for c in created), (
        f"USER {user} is not created in the final stage")


def test_image_healthcheck_asks_healthz() -> None:
    stage = final_stage(instructions((ROOT / "Dockerfile").read_text()))
    checks = [args for word, args in stage if word == "HEALTHCHECK"]
    assert len(checks) == 1, "the image needs exactly one HEALTHCHECK"
    assert checks[0] != "NONE"
    command = checks[0][checks[0].index("CMD"):]
    # The command is the script that asks /healthz (the image has no curl).
    script = re.search(r"deploy/healthcheck\.py", command)
    assert script, command
    assert "/healthz" in (DEPLOY / "healthcheck.py").read_text()


def test_image_installs_the_runtime_lock_with_hashes() -> None:
    steps = instructions((ROOT / "Dockerfile").read_text())
    installs = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert installs, "no pip install in the Dockerfile"
    for run in installs:
        for part in run.split("&&"):
            if "pip install" not in part:
                continue
            words = shlex.split(part)
            assert "--require-hashes" in words, part
            assert "-r" in words, f"pip install without the lock: {part}"
            lock = Path(words[words.index("-r") + 1]).name
            assert lock == "requirements-runtime.lock", part
    copied = [args for word, args in steps if word == "COPY"]
    assert any(args.startswith("requirements-runtime.lock ") for args in copied)


def _pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a pip-compile style lock."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    text = lock.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)(.*)$", line)
        if m:
            hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", m.group(3)))
            pins[_norm(m.group(1))] = (m.group(2), hashes)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_lock_is_the_locks_runtime_part() -> None:
    full = _pins(ROOT / "requirements.lock")
    runtime = _pins(ROOT / "requirements-runtime.lock")
    assert runtime, "requirements-runtime.lock holds no pins"
    for name, (version, hashes) in runtime.items():
        assert name in full, f"{name} is in the runtime lock but not in requirements.lock"
        assert full[name] == (version, hashes), (
            f"{name}: runtime lock pins {version} with other hashes than requirements.lock; "
            "regenerate it (command at its top)")
        assert hashes, f"{name} has no hash"

    # Everything the project needs at run time (and what that needs) is pinned there,
    # read from the installed packages' own metadata.
    needed: set[str] = set()
    todo = [Requirement(r) for r in metadata.requires("opsgate") or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _norm(req.name)
        extras = set(req.extras)
        if name in needed and not extras:
            continue
        needed.add(name)
        for sub in metadata.requires(req.name) or []:
            dep = Requirement(sub)
            if dep.marker is None or dep.marker.evaluate({"extra": ""}) or any(
                dep.marker.evaluate({"extra": e}) for e in extras
            ):
                todo.append(dep)
    missing = sorted(needed - runtime.keys())
    assert not missing, f"runtime dependencies missing from requirements-runtime.lock: {missing}"
    dev_only = {"pytest", "ruff", "mypy", "hypothesis", "import-linter", "pyyaml"}
    assert not dev_only & runtime.keys(), "dev tools in the image's lock"


def _env_example() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if m:
            names.add(m.group(1))
    return names


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def undocumented(compose: dict[str, Any], documented: set[str]) -> tuple[list[str], int]:
    """Variables the opsgate service sets that .env.example lacks, and how many it sets."""
    env = compose["services"]["opsgate"].get("environment") or {}
    keys = list(env) if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
    return sorted(set(keys) - documented), len(keys)


def test_compose_sets_only_documented_variables() -> None:
    unknown, checked = undocumented(_compose(), _env_example())
    assert checked, "the compose file sets no opsgate variables (nothing was checked)"
    assert not unknown, f"compose sets {unknown}, which .env.example does not list"


def test_compose_check_finds_an_undocumented_variable() -> None:
    compose = _compose()
    compose["services"]["opsgate"]["environment"]["OPSGATE_TYPO_PORT"] = "1"
    assert undocumented(compose, _env_example())[0] == ["OPSGATE_TYPO_PORT"]


def test_compose_keeps_the_database_in_a_volume_and_runs_redis() -> None:
    compose = _compose()
    opsgate = compose["services"]["opsgate"]
    db_dir = str(Path(opsgate["environment"]["DATABASE_PATH"]).parent)
    mounts = [str(v).split(":") for v in opsgate.get("volumes", [])]
    named = [m[0] for m in mounts if len(m) >= 2 and m[1] == db_dir]
    assert named, f"no volume mounted at {db_dir}, where DATABASE_PATH points"
    assert named[0] in (compose.get("volumes") or {}), f"{named[0]} is not a named volume"
    assert "redis" in compose["services"]
    assert opsgate["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_alertmanager_snippet_targets_the_webhook_route() -> None:
    snippet = yaml.safe_load((DEPLOY / "alertmanager.yaml").read_text())
    hooks = [w for r in snippet["receivers"] for w in r.get("webhook_configs", [])]
    assert hooks
    for hook in hooks:
        assert hook["url"].endswith("/alerts/alertmanager")
        assert hook["http_config"]["authorization"]["type"] == "Bearer"
        assert hook["send_resolved"] is True


def test_systemd_unit_runs_the_bot_unprivileged() -> None:
    unit = (DEPLOY / "opsgate.service").read_text()
    assert re.search(r"^User=(?!root$)\S+$", unit, re.M)
    assert re.search(r"^ExecStart=\S+ -m bot run$", unit, re.M)
    assert re.search(r"^Restart=on-failure$", unit, re.M)
    env_dir = re.search(r"^Environment=DATABASE_PATH=(\S+)/[^/]+$", unit, re.M)
    assert env_dir and f"ReadWritePaths={env_dir.group(1)}" in unit


async def _healthcheck(port: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(DEPLOY / "healthcheck.py"),
        env={"HTTP_HOST": "0.0.0.0", "HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_healthcheck_script_against_the_real_app(app: Harness) -> None:
    assert await _healthcheck(app.app.port) == 0
    with socket.socket() as unused:  # bound, never listening: connection refused
        unused.bind(("127.0.0.1", 0))
        assert await _healthcheck(unused.getsockname()[1]) == 1


# API group of each kind the tools and actions name (kubectl's resource names).
_GROUP = {
    "pods": "", "services": "", "endpoints": "", "events": "", "nodes": "",
    "deployments": "apps", "replicasets": "apps", "statefulsets": "apps", "daemonsets": "apps",
    "horizontalpodautoscalers": "autoscaling",
}  # fmt: skip


def _rbac() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes-rbac.yaml").read_text()) if d]


def _granted(kind: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) triples the example's rules of `kind` grant."""
    out = set()
    for doc in _rbac():
        if doc["kind"] != kind:
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out |= {(group, resource, verb) for verb in rule["verbs"]}
    return out


def test_rbac_example_grants_what_the_tools_and_actions_use() -> None:
    role, cluster = _granted("Role"), _granted("ClusterRole")
    for kind in set(KINDS.values()):
        grants = cluster if kind in CLUSTER_SCOPED else role
        for verb in ("get", "list"):
            assert (_GROUP[kind], kind, verb) in grants, f"tools read {kind}: {verb} missing"
    assert ("", "pods/log", "get") in role
    for verb, kinds in ALLOWED_TARGET_KINDS.items():
        for target in kinds:
            resource = f"{target}s"
            group = _GROUP[resource]
            if verb in (Verb.ROLLOUT_RESTART, Verb.ROLLOUT_UNDO):
                assert (group, resource, "patch") in role, f"{verb} {target}: patch missing"
            elif verb == Verb.SCALE:
                assert (group, f"{resource}/scale", "update") in role
    assert ("", "pods", "delete") in role


def test_rbac_example_grants_nothing_more() -> None:
    everything = _granted("Role") | _granted("ClusterRole")
    resources = {r for _, r, _ in everything}
    assert not resources & {"secrets", "configmaps", "pods/exec", "pods/attach", "*"}
    assert {v for _, _, v in everything} <= {"get", "list", "patch", "update", "delete"}
    writes = {(g, r, v) for g, r, v in everything if v not in ("get", "list")}
    assert writes == {
        ("apps", "deployments", "patch"), ("apps", "statefulsets", "patch"),
        ("apps", "deployments/scale", "update"), ("apps", "statefulsets/scale", "update"),
        ("apps", "deployments/scale", "patch"), ("apps", "statefulsets/scale", "patch"),
        ("", "pods", "delete"),
    }
    assert _granted("ClusterRole") == {("", "nodes", "get"), ("", "nodes", "list")}
