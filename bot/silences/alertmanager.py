"""A small client for Alertmanager's v2 silences API (api/v2/openapi.yaml).

Silences made in chat are stored locally first; this mirrors them to Alertmanager so that
other receivers go quiet too. Every failure surfaces as AlertmanagerUnavailable with a
message fit for the chat ("… — silenced locally only").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from bot.models import Matcher


class AlertmanagerUnavailable(Exception):
    """Alertmanager could not be reached or refused the request; the text says which."""


@dataclass
class RemoteSilence:
    id: str
    matchers: list[Matcher]
    created_by: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    # Negative matchers (isEqual=false) have no local equivalent: they are left out of
    # `matchers`, so such a silence must not be applied locally.
    has_negative_matchers: bool = False


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("silence times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime:
    # Go writes RFC3339Nano ("…:05.123456789Z"); Python 3.11 keeps microseconds.
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _error_text(response: httpx.Response) -> str:
    """Alertmanager answers errors as a JSON string, go-openapi as {"code", "message"}."""
    body = response.text.strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = body
    if isinstance(data, dict) and "message" in data:
        data = data["message"]
    text = str(data).strip() or response.reason_phrase
    return text if len(text) <= 300 else text[:299] + "…"


class AlertmanagerSilences:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Alertmanager URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        # user:password@ in the URL is sent as basic auth, but never shown in messages.
        parts = urlsplit(self.base_url)
        self._shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.timeout = timeout

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        # A client per call: chat commands are rare, and nothing outlives the request.
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.request(method, self.base_url + path, json=body)
        except httpx.TimeoutException:
            raise AlertmanagerUnavailable(
                f"Alertmanager at {self._shown} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise AlertmanagerUnavailable(
                f"Alertmanager at {self._shown} is unreachable: {detail}"
            ) from None
        return response

    def _refused(self, method: str, path: str, response: httpx.Response) -> AlertmanagerUnavailable:
        return AlertmanagerUnavailable(
            f"Alertmanager answered {response.status_code} to {method} {path}: "
            f"{_error_text(response)}"
        )

    def _json(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerUnavailable(
                f"Alertmanager sent an unreadable answer to {method} {path}"
            ) from None

    async def create(
        self,
        matchers: list[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """POST /api/v2/silences; returns Alertmanager's silence id."""
        path = "/api/v2/silences"
        body = {
            "matchers": [
                {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": True}
                for m in matchers
            ],
            "startsAt": _rfc3339(starts_at),
            "endsAt": _rfc3339(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        response = await self._request("POST", path, body)
        if not response.is_success:
            raise self._refused("POST", path, response)
        data = self._json("POST", path, response)
        silence_id = data.get("silenceID") if isinstance(data, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerUnavailable(f"Alertmanager's answer to POST {path} has no silenceID")
        return silence_id

    async def expire(self, silence_id: str) -> None:
        """DELETE /api/v2/silence/{id}. Unknown ids (404: expired and collected, or deleted
        by hand) count as done: the silence is gone either way."""
        path = "/api/v2/silence/" + quote(silence_id, safe="")
        response = await self._request("DELETE", path)
        if response.status_code == 404:
            return
        if not response.is_success:
            raise self._refused("DELETE", path, response)

    async def list_active(self) -> list[RemoteSilence]:
        """GET /api/v2/silences, keeping only state "active" (not pending, not expired)."""
        path = "/api/v2/silences"
        response = await self._request("GET", path)
        if not response.is_success:
            raise self._refused("GET", path, response)
        data = self._json("GET", path, response)
        if not isinstance(data, list):
            raise AlertmanagerUnavailable(f"Alertmanager's answer to GET {path} is not a list")
        try:
            return [
                _remote(item)
                for item in data
                if (item.get("status") or {}).get("state") == "active"
            ]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AlertmanagerUnavailable(
                f"Alertmanager's answer to GET {path} is malformed: {exc!r}"
            ) from None


def _remote(item: dict[str, Any]) -> RemoteSilence:
    raw = item["matchers"]
    positive = [m for m in raw if m.get("isEqual", True)]
    return RemoteSilence(
        id=str(item["id"]),
        matchers=[
            Matcher(name=m["name"], value=m["value"], is_regex=bool(m["isRegex"]))
            for m in positive
        ],
        created_by=str(item.get("createdBy", "")),
        comment=str(item.get("comment", "")),
        starts_at=_parse_time(item["startsAt"]),
        ends_at=_parse_time(item["endsAt"]),
        has_negative_matchers=len(positive) != len(raw),
    )
