"""Read-only investigation tools the model may call (OpenAI-style `tools`).

The allowlist is small and fixed: kubectl get / describe (resource kinds from KINDS,
never secrets or configmaps), logs --tail, get events, rollout history, all in the
incident's namespace, and a Prometheus instant query when PROMETHEUS_URL is set.
Arguments are validated like an action's (Kubernetes name rules, ALLOWED_NAMESPACES),
the argv is built from fixed words and run without a shell, with a timeout and an
output cap. Anything else is refused, and the refusal is the tool's answer: the model
reads it, nothing runs. Output is untrusted text; it is redacted before the model or
Details sees it, and it can only become an action through the proposal's validation
and a human's approval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bot.allowlist import is_dns1123_label, is_dns1123_subdomain
from bot.decisions.redact import Redactor
from bot.decisions.wire import client
from bot.execution.process import run_bounded
from bot.models import Incident, ToolRecord

# Resource kinds `get` and `describe` accept, with the short names kubectl knows.
KINDS: dict[str, str] = {
    "pods": "pods", "pod": "pods", "po": "pods",
    "deployments": "deployments", "deployment": "deployments", "deploy": "deployments",
    "replicasets": "replicasets", "replicaset": "replicasets", "rs": "replicasets",
    "statefulsets": "statefulsets", "statefulset": "statefulsets", "sts": "statefulsets",
    "daemonsets": "daemonsets", "daemonset": "daemonsets", "ds": "daemonsets",
    "services": "services", "service": "services", "svc": "services",
    "endpoints": "endpoints", "ep": "endpoints",
    "events": "events", "event": "events", "ev": "events",
    "nodes": "nodes", "node": "nodes", "no": "nodes",
    "horizontalpodautoscalers": "horizontalpodautoscalers",
    "horizontalpodautoscaler": "horizontalpodautoscalers", "hpa": "horizontalpodautoscalers",
}  # fmt: skip
CLUSTER_SCOPED = frozenset({"nodes"})
ROLLOUT_KINDS = {"deployment": "deployment", "deployments": "deployment",
                 "deploy": "deployment", "statefulset": "statefulset",
                 "statefulsets": "statefulset", "sts": "statefulset",
                 "daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset"}
QUERY_MAX = 1000  # characters of a PromQL expression


class Refused(ValueError):
    """A call outside the allowlist; the message is what the model reads."""


@dataclass(frozen=True)
class ToolConfig:
    kubectl_path: str = "kubectl"
    kubectl_context: str | None = None
    kubectl: bool = True  # offer the kubectl tools
    allowed_namespaces: frozenset[str] | None = None
    prometheus_url: str = ""
    timeout: float = 10.0  # per call
    output_max: int = 4000  # characters of a result the model reads
    excerpt_max: int = 600  # characters of a result kept for Details
    max_calls: int = 5  # per analysis
    log_tail_max: int = 200


def _schema(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


_STR = {"type": "string"}
_KIND = {"type": "string", "enum": sorted(set(KINDS.values()))}

SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "kubectl_get": (
        "kubectl get KIND [NAME] -o wide in the incident's namespace (read-only).",
        _schema({"kind": _KIND, "name": _STR, "namespace": _STR}, ["kind"]),
    ),
    "kubectl_describe": (
        "kubectl describe KIND NAME in the incident's namespace (read-only).",
        _schema({"kind": _KIND, "name": _STR, "namespace": _STR}, ["kind", "name"]),
    ),
    "kubectl_logs": (
        "kubectl logs POD --tail=N (optionally one container, or the previous instance).",
        _schema({"pod": _STR, "container": _STR, "tail": {"type": "integer"},
                 "previous": {"type": "boolean"}, "namespace": _STR}, ["pod"]),
    ),
    "kubectl_events": (
        "kubectl get events in the incident's namespace, oldest first.",
        _schema({"namespace": _STR}, []),
    ),
    "rollout_history": (
        "kubectl rollout history of a deployment, statefulset or daemonset.",
        _schema({"kind": {"type": "string", "enum": ["deployment", "statefulset", "daemonset"]},
                 "name": _STR, "namespace": _STR}, ["kind", "name"]),
    ),
    "prometheus_query": (
        "A Prometheus instant query (PromQL), evaluated now.",
        _schema({"query": _STR}, ["query"]),
    ),
}


def _text(args: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise Refused(f"argument {key!r} must be a non-empty string")
    return value


def _name(args: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = _text(args, key, required)
    if value is not None and not is_dns1123_subdomain(value):
        raise Refused(f"{key} {json.dumps(value)[:80]} is not a valid Kubernetes name")
    return value


class ToolBox:
    def __init__(self, cfg: ToolConfig, redactor: Redactor,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.redactor = redactor
        self.clock = clock

    @property
    def names(self) -> list[str]:
        names = [n for n in SPECS if n != "prometheus_query"] if self.cfg.kubectl else []
        if self.cfg.prometheus_url:
            names.append("prometheus_query")
        return names

    def specs(self) -> list[dict[str, Any]]:
        """The `tools` value of a chat-completions request."""
        return [
            {"type": "function",
             "function": {"name": n, "description": SPECS[n][0], "parameters": SPECS[n][1]}}
            for n in self.names
        ]

    async def call(self, name: str, raw_args: Any, incident: Incident) -> tuple[str, ToolRecord]:
        """(what the model reads, what is stored): a result or a refusal, never an error."""
        args: dict[str, Any] = {}
        try:
            args = self._arguments(raw_args)
            if name not in self.names:
                raise Refused(f"tool {name!r} is not available; use one of "
                              f"{', '.join(self.names)}")
            if name == "prometheus_query":
                ok, output = await self._prometheus(args)
            else:
                ok, output = await self._kubectl(self.argv(name, args, incident))
        except Refused as exc:
            reason = f"refused: {exc}"
            return reason, ToolRecord(tool=name[:64], arguments=self.redactor.obj(args),
                                      excerpt=reason[: self.cfg.excerpt_max], refused=True,
                                      ok=False)
        output = self.redactor.text(output)
        excerpt = output if len(output) <= self.cfg.excerpt_max else (
            output[: self.cfg.excerpt_max - 1] + "…")
        return output, ToolRecord(tool=name, arguments=self.redactor.obj(args), excerpt=excerpt,
                                  ok=ok)

    @staticmethod
    def _arguments(raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict):
            return raw
        try:
            value = json.loads(raw or "{}")
        except (TypeError, ValueError) as exc:
            raise Refused("arguments are not a JSON object") from exc
        if not isinstance(value, dict):
            raise Refused("arguments are not a JSON object")
        return value

    def _namespace(self, args: dict[str, Any], incident: Incident) -> str:
        namespace = incident.namespace
        asked = args.get("namespace")
        if asked not in (None, "", namespace):
            raise Refused(f"only the incident's namespace {namespace!r} may be read")
        if not namespace or not is_dns1123_label(namespace):
            raise Refused("the incident has no valid namespace")
        allowed = self.cfg.allowed_namespaces
        if allowed is not None and namespace not in allowed:
            raise Refused(f"namespace {namespace!r} is not in the allowed namespaces")
        return namespace

    def argv(self, name: str, args: dict[str, Any], incident: Incident) -> list[str]:
        """The allowlisted kubectl argv for a call. Raises Refused."""
        spec = SPECS.get(name)
        if spec is None:
            raise Refused(f"unknown tool {name!r}")
        extra = set(args) - set(spec[1]["properties"])
        if extra:
            raise Refused(f"unexpected argument(s): {', '.join(sorted(extra))[:120]}")
        base = [self.cfg.kubectl_path]
        if name in ("kubectl_get", "kubectl_describe"):
            raw_kind = _text(args, "kind")
            kind = KINDS.get(str(raw_kind).lower())
            if kind is None:
                raise Refused(f"kind {json.dumps(raw_kind)[:60]} is not allowed; allowed: "
                              f"{', '.join(sorted(set(KINDS.values())))}")
            target = _name(args, "name", required=name == "kubectl_describe")
            verb = "get" if name == "kubectl_get" else "describe"
            argv = [*base, verb, kind] + ([target] if target else [])
            if verb == "get":
                argv += ["-o", "wide"]
            if kind not in CLUSTER_SCOPED:
                argv += ["--namespace", self._namespace(args, incident)]
            elif args.get("namespace"):
                raise Refused("nodes have no namespace")
        elif name == "kubectl_logs":
            pod = _name(args, "pod")
            container = _text(args, "container", required=False)
            if container is not None and not is_dns1123_label(container):
                raise Refused("container is not a valid Kubernetes name")
            tail = args.get("tail", 50)
            if isinstance(tail, bool) or not isinstance(tail, int) or not (
                1 <= tail <= self.cfg.log_tail_max
            ):
                raise Refused(f"tail must be a whole number from 1 to {self.cfg.log_tail_max}")
            argv = [*base, "logs", str(pod), f"--tail={tail}"]
            if container:
                argv += ["--container", container]
            if args.get("previous") is True:
                argv.append("--previous")
            argv += ["--namespace", self._namespace(args, incident)]
        elif name == "kubectl_events":
            argv = [*base, "get", "events", "--sort-by=.lastTimestamp",
                    "--namespace", self._namespace(args, incident)]
        elif name == "rollout_history":
            kind = ROLLOUT_KINDS.get(str(args.get("kind", "")).lower())
            if kind is None:
                raise Refused("kind must be deployment, statefulset or daemonset")
            argv = [*base, "rollout", "history", f"{kind}/{_name(args, 'name')}",
                    "--namespace", self._namespace(args, incident)]
        else:
            raise Refused(f"tool {name!r} does not run kubectl")
        argv.append(f"--request-timeout={max(1, int(self.cfg.timeout))}s")
        if self.cfg.kubectl_context:
            argv += ["--context", self.cfg.kubectl_context]
        return argv

    async def _kubectl(self, argv: list[str]) -> tuple[bool, str]:
        run = await run_bounded(argv, limit=self.cfg.output_max, seconds=self.cfg.timeout)
        if run.start_error:
            return False, run.start_error
        if run.timed_out:
            return False, f"{run.output}\n(timed out after {self.cfg.timeout:g}s)".strip()
        if run.returncode:
            return False, f"{run.output}\n(exit code {run.returncode})".strip()
        return True, run.output

    async def _prometheus(self, args: dict[str, Any]) -> tuple[bool, str]:
        extra = set(args) - {"query"}
        if extra:
            raise Refused(f"unexpected argument(s): {', '.join(sorted(extra))[:120]}")
        query = _text(args, "query")
        assert query is not None
        if len(query) > QUERY_MAX:
            raise Refused(f"the query is longer than {QUERY_MAX} characters")
        url = self.cfg.prometheus_url.rstrip("/") + "/api/v1/query"
        try:
            async with client(self.cfg.timeout) as http:
                resp = await http.get(url, params={"query": query, "time": f"{self.clock():.3f}"})
        except httpx.HTTPError as exc:
            return False, f"Prometheus unreachable: {exc}"
        text = resp.text
        if len(text) > self.cfg.output_max:
            text = text[: self.cfg.output_max] + f"… ({len(resp.text) - self.cfg.output_max} more)"
        return resp.status_code == 200, text
