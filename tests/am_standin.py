"""A stand-in for Alertmanager's v2 silences API, on 127.0.0.1 and an ephemeral port.

It follows Alertmanager (api/v2/api.go, silence/silence.go) where the bot can tell:
schema errors are 422 {"code", "message"} (go-openapi), semantic errors 400 with a JSON
string body, unknown ids 404, expiring an expired silence is a no-op, status is computed
from the clock (pending / active / expired).

    standin = await start_am_standin()
    AlertmanagerSilences(standin.url) ...
    standin.silences[silence_id]["comment"]
    standin.fail_next(500, "boom")     # the next request gets this answer
    await standin.close()
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

_STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


@dataclass
class StandIn:
    url: str = ""
    silences: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, body
    failures: list[tuple[int, Any]] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (timeouts)
    clock: Callable[[], datetime] = _now
    runner: web.AppRunner | None = None

    def fail_next(self, status: int, body: Any = "", times: int = 1) -> None:
        """Answer the next `times` requests with `status` and `body` (JSON-encoded)."""
        self.failures.extend([(status, body)] * times)

    def state(self, silence: dict[str, Any]) -> str:
        now = self.clock()
        if now < _time(silence["startsAt"]):
            return "pending"
        if now > _time(silence["endsAt"]):
            return "expired"
        return "active"

    def active(self) -> list[dict[str, Any]]:
        return [s for s in self._refreshed() if s["status"]["state"] == "active"]

    def _refreshed(self) -> list[dict[str, Any]]:
        for silence in self.silences.values():
            silence["status"] = {"state": self.state(silence)}
        return list(self.silences.values())

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ------------------------------------------------------------ handlers

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.text()
            try:
                body = await request.json()
            except ValueError:
                body = raw
        self.requests.append((request.method, request.path, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            status, payload = self.failures.pop(0)
            return web.json_response(payload, status=status)
        return await handler(request)

    async def _list(self, request: web.Request) -> web.Response:
        silences = sorted(
            self._refreshed(), key=lambda s: (_STATE_ORDER[s["status"]["state"]], s["endsAt"])
        )
        return web.json_response(silences)

    async def _get(self, request: web.Request) -> web.Response:
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return web.Response(status=404)
        self._refreshed()
        return web.json_response(silence)

    async def _delete(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        try:
            uuid.UUID(sid)
        except ValueError:
            return _openapi_error(601, f'silenceID in path must be of type uuid: "{sid}"')
        silence = self.silences.get(sid)
        if silence is None:
            return web.Response(status=404)
        now, state = self.clock(), self.state(silence)
        if state == "active":
            silence["endsAt"] = _fmt(now)
        elif state == "pending":
            silence["startsAt"] = silence["endsAt"] = _fmt(now)
        if state != "expired":
            silence["updatedAt"] = _fmt(now)
        self._refreshed()
        return web.Response(status=200)

    async def _post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return _openapi_error(400, f'parsing silence body from "" failed, because {exc}')
        if (problem := _schema_problem(body)) is not None:
            return problem
        now = self.clock()
        starts, ends = _time(body["startsAt"]), _time(body["endsAt"])
        if starts >= ends:
            return _bad("Failed to create silence: start time must be before end time")
        if ends < now:
            return _bad("Failed to create silence: end time can't be in the past")
        if (invalid := _invalid_silence(body["matchers"])) is not None:
            return _bad(f"invalid silence: {invalid}")
        sid = body.get("id") or ""
        if sid and sid not in self.silences:
            return web.json_response("not found", status=404)
        sid = sid or str(uuid.uuid4())
        self.silences[sid] = {
            "id": sid,
            "status": {"state": "active"},
            "updatedAt": _fmt(now),
            "matchers": [
                {"name": m["name"], "value": m["value"], "isRegex": m["isRegex"],
                 "isEqual": m.get("isEqual", True)}
                for m in body["matchers"]
            ],
            "startsAt": _fmt(max(starts, now)),
            "endsAt": _fmt(ends),
            "createdBy": body["createdBy"],
            "comment": body["comment"],
        }
        self._refreshed()
        return web.json_response({"silenceID": sid})


def _bad(message: str) -> web.Response:
    return web.json_response(message, status=400)


def _openapi_error(code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=422 if code > 599 else code)


def _schema_problem(body: Any) -> web.Response | None:
    """What go-openapi checks before Alertmanager's handler runs."""
    if not isinstance(body, dict):
        return _openapi_error(400, "parsing silence body from \"\" failed: not an object")
    for name in ("matchers", "startsAt", "endsAt", "createdBy", "comment"):
        if body.get(name) is None:
            return _openapi_error(602, f"{name} in body is required")
    for name in ("createdBy", "comment"):
        if not isinstance(body[name], str):
            return _openapi_error(601, f"{name} in body must be of type string")
    for name in ("startsAt", "endsAt"):
        try:
            _time(body[name])
        except (TypeError, ValueError):
            return _openapi_error(601, f"{name} in body must be of type date-time: {body[name]!r}")
    matchers = body["matchers"]
    if not isinstance(matchers, list):
        return _openapi_error(601, "matchers in body must be of type array")
    if not matchers:
        return _openapi_error(604, "matchers in body should have at least 1 items")
    for i, m in enumerate(matchers):
        for name, kind in (("name", str), ("value", str), ("isRegex", bool)):
            if not isinstance(m, dict) or m.get(name) is None:
                return _openapi_error(602, f"matchers.{i}.{name} in body is required")
            if not isinstance(m[name], kind):
                return _openapi_error(601, f"matchers.{i}.{name} in body has the wrong type")
    return None


def _invalid_silence(matchers: list[dict[str, Any]]) -> str | None:
    """silence.validateSilence: label names, regexes, and not everything-matches-empty."""
    all_empty = True
    for i, m in enumerate(matchers):
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", m["name"]):
            return f'invalid label matcher {i}: invalid label name "{m["name"]}"'
        if m["isRegex"]:
            try:
                empty = re.fullmatch(m["value"], "") is not None
            except re.error as exc:
                pattern = m["value"]
                return f'invalid label matcher {i}: invalid regular expression "{pattern}": {exc}'
        else:
            empty = m["value"] == ""
        # only positive matchers can match the empty string (silence.matchesEmpty)
        all_empty = all_empty and empty and m.get("isEqual", True)
    if all_empty:
        return "at least one matcher must not match the empty string"
    return None


async def start_am_standin() -> StandIn:
    standin = StandIn()
    app = web.Application(middlewares=[standin._middleware])
    app.router.add_get("/api/v2/silences", standin._list)
    app.router.add_post("/api/v2/silences", standin._post)
    app.router.add_get("/api/v2/silence/{id}", standin._get)
    app.router.add_delete("/api/v2/silence/{id}", standin._delete)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    standin.runner = runner
    standin.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return standin
