"""POST /alerts/{alertmanager,grafana,generic}: authenticate, parse, store, 2xx.

The answer is given only after the alerts and the promise of their card are
committed; analysis and Telegram happen afterwards, driven from the database.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.alerts import ingest, payloads
from bot.alerts.intake import Intake
from bot.alerts.signature import GrafanaSigning, signature_problem
from bot.health import Readiness
from bot.metrics import CONTENT_TYPE, Metrics
from bot.polling import YieldTo
from storage.db import Database, StorageUnavailable

log = logging.getLogger(__name__)

DB = web.AppKey("db", Database)
INTAKE = web.AppKey("intake", Intake)
CLOCK = web.AppKey[Callable[[], datetime]]("clock")
TOKEN = web.AppKey("token", str)  # ALERT_WEBHOOK_TOKEN; empty: no authentication
MAX_BODY = web.AppKey("max_body", int)
READ_TIMEOUT = web.AppKey("read_timeout", float)  # seconds (WEBHOOK_READ_TIMEOUT)
METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness", Readiness)
GRAFANA_SIGNING = web.AppKey("grafana_signing", GrafanaSigning)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _hang_up(status: int, message: str) -> web.Response:
    # No keep-alive after a body we did not read (aiohttp drains it briefly, then closes).
    response = _error(status, message)
    response.force_close()
    return response


def _json_content_type(request: web.Request) -> str | None:
    """Why the declared type is not JSON, or None. No Content-Type at all is taken
    as JSON: Alertmanager and Grafana always send one, simple scripts often omit it."""
    if "Content-Type" not in request.headers:
        return None
    mime = request.content_type
    if mime != "application/json" and not (mime.startswith("application/")
                                            and mime.endswith("+json")):
        return f"Content-Type must be application/json, not {mime}"
    charset = request.charset
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return f"JSON must be UTF-8, not charset={charset}"
    return None


def _authorized(request: web.Request, token: str) -> bool:
    """Bearer TOKEN (Alertmanager's authorization, Grafana's Authorization header), or
    HTTP Basic with TOKEN as the password (Grafana's basic authentication option)."""
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        credentials = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


async def _receive(request: web.Request, kind: str) -> web.Response:
    app = request.app
    if not _authorized(request, app[TOKEN]):
        return _error(401, "missing or wrong token in the Authorization header "
                           "(Bearer or Basic password = ALERT_WEBHOOK_TOKEN)")
    limit = app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        return _hang_up(413, f"body larger than {limit} bytes")
    wrong_type = _json_content_type(request)
    if wrong_type is not None:
        return _hang_up(415, wrong_type)
    timeout = app[READ_TIMEOUT]
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _hang_up(413, f"body larger than {limit} bytes")
    except TimeoutError:
        return _hang_up(408, f"body not received within {timeout:g} s (WEBHOOK_READ_TIMEOUT)")
    except ConnectionError as exc:
        # The sender went away mid-body: nothing to answer, nothing stored.
        log.debug("webhook client %s dropped the connection mid-body: %s", request.remote, exc)
        return _hang_up(400, "connection lost")
    now = app[CLOCK]()
    if kind == "grafana":
        problem = signature_problem(app[GRAFANA_SIGNING], request.headers, raw, now)
        if problem is not None:
            return _error(401, problem)
    try:
        group = payloads.parse(kind, raw, now)
    except payloads.PayloadError as exc:
        return web.json_response(exc.body(), status=400)
    try:
        result = await app[INTAKE].accept(group, now, size=len(raw))
    except StorageUnavailable as exc:
        log.error("cannot store alerts (answering 503 so the sender retries): %s", exc)
        return web.json_response(
            {"error": "storage unavailable, retry later"}, status=503,
            headers={"Retry-After": "30"},
        )
    app[METRICS].alerts_stored.labels(kind).inc(result.alerts)
    return web.json_response({"status": "accepted", **result.summary()})


def _intake_result(status: int) -> str:
    if status < 300:
        return "accepted"
    return {401: "unauthorized", 503: "unavailable"}.get(status, "refused")


async def _counted(request: web.Request, kind: str) -> web.Response:
    response = await _receive(request, kind)
    request.app[METRICS].alerts_received.labels(kind, _intake_result(response.status)).inc()
    return response


async def alertmanager(request: web.Request) -> web.Response:
    return await _counted(request, "alertmanager")


async def grafana(request: web.Request) -> web.Response:
    return await _counted(request, "grafana")


async def generic(request: web.Request) -> web.Response:
    return await _counted(request, "generic")


async def healthz(request: web.Request) -> web.Response:
    # Alive and serving: no database, no Telegram (a supervisor restarts on failure).
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    status, body = await request.app[READINESS].check()
    return web.json_response(body, status=status)


async def scrape(request: web.Request) -> web.Response:
    app = request.app
    body = await app[READINESS].metrics_text(app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup_routes(
    app: web.Application, *, db: Database, ingest_ctx: ingest.IngestContext,
    clock: Callable[[], datetime], token: str, max_body_bytes: int, read_timeout: float,
    metrics: Metrics, readiness: Readiness, grafana_signing: GrafanaSigning | None = None,
    yield_to: YieldTo | None = None,
) -> None:
    app[DB] = db
    app[INTAKE] = Intake(db, ingest_ctx, yield_to=yield_to)
    app[CLOCK] = clock
    app[TOKEN] = token
    app[MAX_BODY] = max_body_bytes
    app[READ_TIMEOUT] = read_timeout
    app[METRICS] = metrics
    app[READINESS] = readiness
    app[GRAFANA_SIGNING] = grafana_signing or GrafanaSigning(secret="")
    app.router.add_post("/alerts/alertmanager", alertmanager)
    app.router.add_post("/alerts/grafana", grafana)
    app.router.add_post("/alerts/generic", generic)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
