import asyncio
import hashlib
import hmac
import json
import shlex
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web

from bot.execution.executor import (
    SIGNATURE_HEADER,
    Executor,
    ExecutorConfig,
    bounded,
    describe,
    kubectl_argv,
)
from bot.execution.names import InvalidAction
from bot.models import Action, Verb

RESTART = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop")
KUBECTL = ExecutorConfig(backend="kubectl", timeout=10)


def test_argv_per_verb() -> None:
    cfg = ExecutorConfig(kubectl_context="prod-eu")
    assert kubectl_argv(RESTART, cfg) == [
        "kubectl", "rollout", "restart", "deployment/cart",
        "--namespace", "shop", "--context", "prod-eu",
    ]  # fmt: skip
    undo = Action(
        verb=Verb.ROLLOUT_UNDO, target_kind="statefulset", target_name="db", namespace="x"
    )
    assert kubectl_argv(undo, ExecutorConfig()) == [
        "kubectl", "rollout", "undo", "statefulset/db", "--namespace", "x",
    ]  # fmt: skip
    scale = Action(
        verb=Verb.SCALE,
        target_name="api",
        namespace="x",
        params={"replicas": 5, "current_replicas": 3},
    )
    assert kubectl_argv(scale, ExecutorConfig()) == [
        "kubectl", "scale", "deployment/api", "--replicas=5", "--current-replicas=3",
        "--namespace", "x",
    ]  # fmt: skip
    pod = Action(verb=Verb.DELETE_POD, target_kind="pod", target_name="api-7f-abc", namespace="x")
    assert kubectl_argv(pod, ExecutorConfig()) == [
        "kubectl", "delete", "pod", "api-7f-abc", "--namespace", "x",
    ]  # fmt: skip


def test_argv_refuses_invalid_names() -> None:
    bad = Action(verb=Verb.ROLLOUT_RESTART, target_name="api; rm -rf /", namespace="shop")
    with pytest.raises(InvalidAction):
        kubectl_argv(bad, ExecutorConfig())
    with pytest.raises(InvalidAction):
        describe(bad, ExecutorConfig())


def test_describe_is_the_exact_command() -> None:
    assert describe(RESTART, ExecutorConfig()) == (
        "kubectl rollout restart deployment/cart --namespace shop"
    )


def test_describe_http() -> None:
    cfg = ExecutorConfig(backend="http", http_url="http://127.0.0.1:9/run", http_secret="s")
    text = describe(RESTART, cfg)
    first, body = text.split("\n", 1)
    assert first == "POST http://127.0.0.1:9/run"
    assert json.loads(body)["action"]["target_name"] == "cart"


def test_config_refuses_http_without_url_or_secret() -> None:
    with pytest.raises(ValueError, match="http_url and http_secret"):
        ExecutorConfig(backend="http", http_url="http://x")
    with pytest.raises(ValueError, match="unknown executor backend"):
        ExecutorConfig(backend="shell")  # type: ignore[arg-type]


def test_bounded_marker() -> None:
    assert bounded("abcdef", 4) == "abcd… (2 more characters)"
    assert bounded("abc", 4) == "abc"


async def test_dry_run_runs_nothing(fake_kubectl) -> None:
    result = await Executor(ExecutorConfig()).run(RESTART)
    assert result.ok and result.dry_run
    assert result.argv == [
        "kubectl",
        "rollout",
        "restart",
        "deployment/cart",
        "--namespace",
        "shop",
    ]
    assert result.output == f"dry-run: would run {shlex.join(result.argv)}"
    assert fake_kubectl.calls() == []


async def test_kubectl_runs_the_argv(fake_kubectl) -> None:
    result = await Executor(KUBECTL).run(RESTART)
    assert result.ok, result
    assert not result.dry_run
    assert result.exit_code == 0
    assert fake_kubectl.calls() == [
        ["rollout", "restart", "deployment/cart", "--namespace", "shop"]
    ]
    assert "deployment.apps/cart restarted" in result.output
    assert "warning on stderr" in result.output


async def test_kubectl_path_is_used(fake_kubectl, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = await Executor(replace(KUBECTL, kubectl_path=str(fake_kubectl.path))).run(RESTART)
    assert result.ok
    assert result.argv is not None and result.argv[0] == str(fake_kubectl.path)


async def test_kubectl_failure_exit_code(fake_kubectl, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_EXIT", "3")
    result = await Executor(KUBECTL).run(RESTART)
    assert not result.ok
    assert result.exit_code == 3
    assert result.error == "kubectl exited with code 3"


async def test_kubectl_missing_binary(tmp_path) -> None:
    cfg = replace(KUBECTL, kubectl_path=str(tmp_path / "no-kubectl"))
    result = await Executor(cfg).run(RESTART)
    assert not result.ok
    assert result.error is not None and result.error.startswith("cannot start")


async def test_kubectl_timeout_kills(fake_kubectl, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_SLEEP", "60")
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await Executor(replace(KUBECTL, timeout=0.5)).run(RESTART)
    assert loop.time() - started < 10
    assert not result.ok
    assert result.error == "timed out after 0.5s"
    assert result.exit_code is not None and result.exit_code < 0  # killed by a signal


async def test_kubectl_output_is_bounded(fake_kubectl, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_BIG", "1")
    result = await Executor(replace(KUBECTL, output_limit=3000)).run(RESTART)
    assert result.ok
    head, marker = result.output.split("… (", 1)
    assert head == "x" * 3000
    # 100 000 x's + "deployment.apps/cart restarted\n" + "warning on stderr\n"
    assert marker == f"{100_000 - 3000 + 31 + 18} more characters)"


@pytest.mark.parametrize(
    "evil",
    [
        {"target_name": "api; rm -rf /"},
        {"target_name": "$(reboot)"},
        {"namespace": "../x"},
        {"target_name": "cart\n--all"},
        {"target_name": "a" * 300},
    ],
)
async def test_no_unvalidated_value_reaches_kubectl(fake_kubectl, evil: dict[str, str]) -> None:
    action = RESTART.model_copy(update=evil)
    result = await Executor(KUBECTL).run(action)
    assert not result.ok
    assert result.argv is None
    assert "is not a valid Kubernetes name" in (result.error or "")
    assert fake_kubectl.calls() == []


async def test_namespace_allowlist_blocks_run(fake_kubectl) -> None:
    cfg = replace(KUBECTL, allowed_namespaces=frozenset({"payments"}))
    result = await Executor(cfg).run(RESTART)
    assert not result.ok
    assert "not in the allowed namespaces" in (result.error or "")
    assert fake_kubectl.calls() == []


# --- http backend ---------------------------------------------------------

SECRET = "s3cret"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        self.reply = "accepted"
        self.release = asyncio.Event()
        self.hang = False


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            return web.Response(status=401, text="bad signature")
        state.bodies.append(json.loads(body))
        if state.hang:
            await state.release.wait()
        return web.Response(status=state.status, text=state.reply)

    app = web.Application()
    app.router.add_post("/run", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}/run"
    state.release.set()  # let a hung handler finish so cleanup does not wait for it
    await runner.cleanup()


def http_cfg(url: str, **overrides) -> ExecutorConfig:
    fields = {"backend": "http", "http_url": url, "http_secret": SECRET, "timeout": 5}
    return ExecutorConfig(**(fields | overrides))


async def test_http_signed_post(receiver) -> None:
    state, url = receiver
    result = await Executor(http_cfg(url)).run(RESTART, incident_id="INC-1", decision_id=7)
    assert result.ok, result
    assert result.status_code == 200
    assert result.output == "accepted"
    assert state.bodies == [
        {
            "action": {
                "kind": "kubectl",
                "verb": "rollout-restart",
                "target_kind": "deployment",
                "target_name": "cart",
                "namespace": "shop",
                "params": {},
            },
            "incident_id": "INC-1",
            "decision_id": 7,
        }
    ]
    assert result.request is not None and result.request["body"] == state.bodies[0]


async def test_http_wrong_secret_is_refused_by_receiver(receiver) -> None:
    _, url = receiver
    cfg = ExecutorConfig(backend="http", http_url=url, http_secret="wrong", timeout=5)
    result = await Executor(cfg).run(RESTART)
    assert not result.ok
    assert result.status_code == 401
    assert result.error == "HTTP 401"


async def test_http_error_status(receiver) -> None:
    state, url = receiver
    state.status, state.reply = 500, "y" * 5000
    result = await Executor(http_cfg(url, output_limit=100)).run(RESTART)
    assert not result.ok
    assert result.status_code == 500
    assert result.output == "y" * 100 + "… (4900 more characters)"


async def test_http_timeout(receiver) -> None:
    state, url = receiver
    state.hang = True
    result = await Executor(http_cfg(url, timeout=0.3)).run(RESTART)
    assert not result.ok
    assert result.error == "timed out after 0.3s"


async def test_http_invalid_action_never_sent(receiver) -> None:
    state, url = receiver
    bad = RESTART.model_copy(update={"target_name": "$(reboot)"})
    result = await Executor(http_cfg(url)).run(bad)
    assert not result.ok
    assert state.bodies == []


async def test_http_unreachable() -> None:
    result = await Executor(http_cfg("http://127.0.0.1:9/run")).run(RESTART)
    assert not result.ok
    assert result.error is not None and result.error.startswith("request failed")
