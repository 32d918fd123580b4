"""Grafana's HMAC webhook signature (contact point → Optional settings → HMAC Signature).

Grafana (grafana/alerting, http/hmac.go) signs the raw body with HMAC-SHA256 of the shared
secret and sends the lowercase hex digest in a header: the one configured, or
X-Grafana-Alerting-Signature as the form suggests (X-Grafana-Alert-Signature when the field
is left empty, the code's default). With a timestamp header configured, it sends the Unix
time in seconds there and signs "<timestamp>:<body>"; that lets a receiver refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

SIGNATURE_HEADERS = ("X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature")


@dataclass(frozen=True)
class GrafanaSigning:
    secret: str  # GRAFANA_WEBHOOK_SECRET; empty: no signature required
    timestamp_header: str = ""  # GRAFANA_WEBHOOK_TIMESTAMP_HEADER; empty: body only
    max_skew: timedelta = timedelta(minutes=5)


def sign(secret: str, body: bytes, timestamp: str = "") -> str:
    signed = f"{timestamp}:".encode() + body if timestamp else body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_problem(
    cfg: GrafanaSigning, headers: Mapping[str, str], body: bytes, now: datetime
) -> str | None:
    """Why the request's signature is not acceptable, or None when it is (or none is needed)."""
    if not cfg.secret:
        return None
    given = next((headers[h] for h in SIGNATURE_HEADERS if h in headers), None)
    if given is None:
        return f"missing {SIGNATURE_HEADERS[0]} header (GRAFANA_WEBHOOK_SECRET is set)"
    timestamp = ""
    if cfg.timestamp_header:
        timestamp = headers.get(cfg.timestamp_header, "").strip()
        if not timestamp.isdigit():
            return f"missing or malformed {cfg.timestamp_header} header (Unix seconds)"
        skew = abs(now.timestamp() - int(timestamp))
        if skew > cfg.max_skew.total_seconds():
            return (f"{cfg.timestamp_header} is {skew:.0f} s away from this server's clock "
                    f"(at most {cfg.max_skew.total_seconds():.0f} s): replayed or clocks apart")
    expected = sign(cfg.secret, body, timestamp)
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        return "wrong HMAC signature (check GRAFANA_WEBHOOK_SECRET and the timestamp header)"
    return None
