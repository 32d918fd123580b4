"""The chat page's side panel: who the page acts as, and sample alerts fired with one click.

The samples are the JSON files in ``sandbox/samples/`` (``index.json`` lists them in panel
order); each is an Alertmanager payload, or a list of payloads for a storm. Firing one posts
it to the bot's real alert webhook with its bearer token, as Alertmanager would, so the card
takes the same path as in production.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

SAMPLES = Path(__file__).resolve().parent / "samples"

ALICE: dict[str, Any] = {"id": 111, "first_name": "Alice", "username": "alice"}
BOB: dict[str, Any] = {"id": 222, "first_name": "Bob", "username": "bob"}
CAROL: dict[str, Any] = {"id": 333, "first_name": "Carol", "username": "carol"}
PEOPLE = (ALICE, BOB, CAROL)

# A storm is posted a few payloads at a time, as Alertmanager's parallel group flushes are.
_PARALLEL_POSTS = 8
_POST_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class Sample:
    name: str
    label: str
    hint: str
    payloads: tuple[dict[str, Any], ...]

    @property
    def alert_count(self) -> int:
        return sum(len(p.get("alerts", ())) for p in self.payloads)


def load_samples(folder: Path = SAMPLES) -> dict[str, Sample]:
    """The samples listed in ``index.json``, by name (the file name without ``.json``)."""
    index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    samples: dict[str, Sample] = {}
    for entry in index:
        path = folder / entry["file"]
        body = json.loads(path.read_text(encoding="utf-8"))
        payloads = tuple(body) if isinstance(body, list) else (body,)
        if not payloads or not all(isinstance(p, dict) for p in payloads):
            raise ValueError(f"{path}: expected a payload object or a non-empty list of them")
        samples[path.stem] = Sample(path.stem, entry["label"], entry.get("hint", ""), payloads)
    return samples


class PanelError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Webhook:
    url: str
    token: str


@dataclass
class SamplePanel:
    samples: dict[str, Sample] = field(default_factory=load_samples)
    people: list[dict[str, Any]] = field(
        default_factory=lambda: [{**p, "approver": None} for p in PEOPLE])
    webhook: Webhook | None = None
    # when each alert (by its labels) started firing, as Alertmanager remembers it
    _since: dict[str, str] = field(default_factory=dict)

    def attach(self, url: str, token: str, approver_ids: list[int]) -> None:
        """Point the panel at a running bot; from then on samples can be fired."""
        self.webhook = Webhook(url, token)
        self.people = [{**p, "approver": p["id"] in approver_ids} for p in PEOPLE]

    def fresh(self, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The payload as Alertmanager would send it now: an alert starts firing now (the
        card would otherwise say days ago) and keeps that start while it fires; a resolved
        one carries the start it fired with and ends now, so the bot matches the two."""
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        alerts = []
        for alert in payload.get("alerts", ()):
            key = json.dumps(alert.get("labels"), sort_keys=True)
            if alert.get("status") == "firing":
                alert = {**alert, "startsAt": self._since.setdefault(key, stamp)}
            elif alert.get("status") == "resolved":
                alert = {**alert, "startsAt": self._since.pop(key, alert.get("startsAt")),
                         "endsAt": stamp}
            alerts.append(alert)
        return {**payload, "alerts": alerts}

    def describe(self) -> dict[str, Any]:
        return {
            "firing": self.webhook is not None,
            "people": self.people,
            "samples": [{"name": s.name, "label": s.label, "hint": s.hint,
                         "alerts": s.alert_count, "posts": len(s.payloads)}
                        for s in self.samples.values()],
        }

    async def fire(self, name: str) -> dict[str, Any]:
        sample = self.samples.get(name)
        if sample is None:
            raise PanelError(404, f"no sample named {name!r}; known: {', '.join(self.samples)}")
        if self.webhook is None:
            raise PanelError(409, "no bot behind this emulator: start it with "
                                  "`python -m bot sandbox` to fire samples")
        webhook = self.webhook
        now = datetime.now(UTC)
        gate = asyncio.Semaphore(_PARALLEL_POSTS)
        headers = {"Authorization": f"Bearer {webhook.token}"}

        async def post(http: aiohttp.ClientSession, payload: dict[str, Any]) -> str | None:
            async with gate, http.post(webhook.url, json=self.fresh(payload, now),
                                       headers=headers) as resp:
                return None if resp.status < 300 else f"{resp.status}: {await resp.text()}"

        try:
            async with aiohttp.ClientSession(timeout=_POST_TIMEOUT) as http:
                refused = [r for r in await asyncio.gather(
                    *(post(http, p) for p in sample.payloads)) if r]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PanelError(502, f"the bot's webhook {webhook.url} did not answer: "
                                  f"{exc or type(exc).__name__}") from exc
        if refused:
            raise PanelError(502, f"the bot refused {len(refused)} of {len(sample.payloads)} "
                                  f"posts; first: {refused[0]}")
        return {"sample": name, "posts": len(sample.payloads), "alerts": sample.alert_count}
