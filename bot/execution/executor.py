"""Safe execution: an Action becomes an argv (kubectl) or a signed request (http).

- The action is validated before anything is built from it (`kubectl_argv`
  and `http_body` validate themselves, so no caller can skip it).
- argv comes from a fixed allowlist per verb and runs without a shell.
- Every backend has a timeout and returns bounded output for the thread.
- `describe` is the exact effect an approver approves; it is built from the
  same functions that run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import shlex
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from bot.execution.names import ActionLimits, InvalidAction
from bot.execution.process import BoundedText, bounded, run_bounded
from bot.models import Action, Verb

log = logging.getLogger(__name__)

Backend = Literal["dry-run", "kubectl", "http"]
SIGNATURE_HEADER = "X-Opsgate-Signature"


@dataclass(frozen=True)
class ExecutorConfig:
    backend: Backend = "dry-run"
    kubectl_path: str = "kubectl"
    kubectl_context: str | None = None
    allowed_namespaces: frozenset[str] | None = None  # None: any namespace
    replicas_min: int = 1
    replicas_max: int = 20
    timeout: float = 30
    output_limit: int = 3000  # characters kept for the thread
    http_url: str | None = None
    http_secret: str | None = None

    def __post_init__(self) -> None:
        # Config mistakes should stop start-up, not surface at the first approval.
        if self.backend not in ("dry-run", "kubectl", "http"):
            raise ValueError(f"unknown executor backend {self.backend!r}")
        if self.backend == "http" and not (self.http_url and self.http_secret):
            raise ValueError("the http executor needs both http_url and http_secret")
        if not 0 <= self.replicas_min <= self.replicas_max:
            raise ValueError("replicas_min must be between 0 and replicas_max")
        if self.timeout <= 0 or self.output_limit <= 0:
            raise ValueError("timeout and output_limit must be positive")

    @property
    def limits(self) -> ActionLimits:
        return ActionLimits(self.allowed_namespaces, self.replicas_min, self.replicas_max)


class ExecutionResult(BaseModel):
    ok: bool
    dry_run: bool
    backend: str
    argv: list[str] | None = None
    request: dict[str, Any] | None = None
    exit_code: int | None = None
    status_code: int | None = None
    output: str = ""
    error: str | None = None
    duration_ms: int = 0


def kubectl_argv(action: Action, cfg: ExecutorConfig) -> list[str]:
    """The allowlisted kubectl command for `action`. Raises InvalidAction."""
    cfg.limits.check(action)
    ref = f"{action.target_kind}/{action.target_name}"
    params = action.params
    match action.verb:
        case Verb.ROLLOUT_RESTART:
            argv = [cfg.kubectl_path, "rollout", "restart", ref]
        case Verb.ROLLOUT_UNDO:
            argv = [cfg.kubectl_path, "rollout", "undo", ref]
            if "to_revision" in params:
                argv.append(f"--to-revision={int(params['to_revision'])}")
        case Verb.SCALE:
            argv = [cfg.kubectl_path, "scale", ref, f"--replicas={int(params['replicas'])}"]
            if "current_replicas" in params:
                argv.append(f"--current-replicas={int(params['current_replicas'])}")
        case Verb.DELETE_POD:
            argv = [cfg.kubectl_path, "delete", "pod", action.target_name]
    argv += ["--namespace", action.namespace]
    if cfg.kubectl_context:
        argv += ["--context", cfg.kubectl_context]
    return argv


def http_payload(
    action: Action, incident_id: str | None = None, decision_id: int | None = None
) -> dict[str, Any]:
    return {
        "action": action.model_dump(mode="json"),
        "incident_id": incident_id,
        "decision_id": decision_id,
    }


def http_body(
    action: Action,
    cfg: ExecutorConfig,
    incident_id: str | None = None,
    decision_id: int | None = None,
) -> bytes:
    """The exact request body (validated first). The signature covers these bytes."""
    cfg.limits.check(action)
    payload = http_payload(action, incident_id, decision_id)
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def describe(
    action: Action,
    cfg: ExecutorConfig,
    *,
    incident_id: str | None = None,
    decision_id: int | None = None,
) -> str:
    """What approving runs: the command line, or the request. Raises InvalidAction."""
    if cfg.backend == "http":
        body = http_body(action, cfg, incident_id, decision_id).decode()
        return f"POST {cfg.http_url}\n{body}"
    return shlex.join(kubectl_argv(action, cfg))


class Executor:
    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg

    async def run(
        self,
        action: Action,
        *,
        incident_id: str | None = None,
        decision_id: int | None = None,
    ) -> ExecutionResult:
        """Run `action` once on the configured backend. Never raises for action problems."""
        started = time.monotonic()
        cfg = self.cfg
        try:
            if cfg.backend == "http":
                result = await self._run_http(action, incident_id, decision_id)
            else:
                argv = kubectl_argv(action, cfg)
                if cfg.backend == "dry-run":
                    result = ExecutionResult(
                        ok=True,
                        dry_run=True,
                        backend=cfg.backend,
                        argv=argv,
                        output=bounded(f"dry-run: would run {shlex.join(argv)}", cfg.output_limit),
                    )
                else:
                    result = await self._run_kubectl(argv)
        except InvalidAction as exc:
            result = ExecutionResult(
                ok=False, dry_run=cfg.backend == "dry-run", backend=cfg.backend, error=exc.reason
            )
        result.duration_ms = int((time.monotonic() - started) * 1000)
        log.info(
            "executed %s on %s: ok=%s error=%s", action.verb, cfg.backend, result.ok, result.error
        )
        return result

    async def _run_kubectl(self, argv: list[str]) -> ExecutionResult:
        cfg = self.cfg
        result = ExecutionResult(ok=False, dry_run=False, backend=cfg.backend, argv=argv)
        run = await run_bounded(argv, limit=cfg.output_limit, seconds=cfg.timeout)
        if run.start_error:
            result.error = run.start_error
            return result
        result.output = run.output
        result.exit_code = run.returncode
        if run.timed_out:
            result.error = f"timed out after {cfg.timeout:g}s"
        else:
            result.ok = run.returncode == 0
            if not result.ok:
                result.error = f"kubectl exited with code {run.returncode}"
        return result

    async def _run_http(
        self, action: Action, incident_id: str | None, decision_id: int | None
    ) -> ExecutionResult:
        cfg = self.cfg
        assert cfg.http_url and cfg.http_secret  # checked by ExecutorConfig
        body = http_body(action, cfg, incident_id, decision_id)
        result = ExecutionResult(
            ok=False,
            dry_run=False,
            backend=cfg.backend,
            request={"method": "POST", "url": cfg.http_url, "body": json.loads(body)},
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, cfg.http_secret),
        }
        output = BoundedText(cfg.output_limit)
        try:
            # httpx's timeout is per network operation; asyncio.timeout bounds the whole call.
            async with (
                asyncio.timeout(cfg.timeout),
                httpx.AsyncClient(timeout=cfg.timeout) as client,
            ):
                async with client.stream(
                    "POST", cfg.http_url, content=body, headers=headers
                ) as resp:
                    result.status_code = resp.status_code
                    async for chunk in resp.aiter_bytes():
                        output.feed(chunk)  # keeps only output_limit characters
        except (TimeoutError, httpx.TimeoutException):
            result.error = f"timed out after {cfg.timeout:g}s"
        except httpx.HTTPError as exc:
            result.error = f"request failed: {type(exc).__name__}: {exc}"
        output.feed(b"", final=True)
        result.output = output.text()
        if result.error is None and result.status_code is not None:
            result.ok = 200 <= result.status_code < 300
            if not result.ok:
                result.error = f"HTTP {result.status_code}"
        return result
