"""The one door to OpenAI-compatible servers (chat completions, embeddings).

Everything posted goes through the redactor first, so no caller can forget it.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

from bot.decisions.redact import Redactor


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every request: building one reads the CA bundle, which costs
    about as much as a whole local model round trip (./dev bench proposals)."""
    return httpx.create_ssl_context()


def client(seconds: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=seconds, verify=tls_context())


class WireError(Exception):
    """The server answered with an error status; `status` says which."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status = status


async def post_json(
    url: str,
    body: dict[str, Any],
    *,
    redactor: Redactor,
    api_key: str | None = None,
    seconds: float = 30,
) -> dict[str, Any]:
    """POST `body` (redacted) as JSON; the decoded JSON object of the answer.

    Raises WireError for a non-2xx answer, httpx errors for transport problems and
    ValueError when the answer is not a JSON object.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with client(seconds) as http:
        resp = await http.post(url, json=redactor.obj(body), headers=headers)
    if resp.status_code >= 300:
        raise WireError(resp.status_code, resp.text)
    data = resp.json()
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data
