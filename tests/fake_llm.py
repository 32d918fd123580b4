"""A local OpenAI-compatible server for tests: chat completions (with tools) and embeddings.

By default it answers every chat request with `content`. A test that needs a
conversation sets `respond`: a function from the request body to the assistant
message (a dict with "content" and/or "tool_calls"), or None to answer `content`
(`investigator` builds one that calls a tool and answers only once it has seen the
result). `hang` holds every request, `hang_models` only those for the models named,
`hang_if` those it returns True for; `latency` makes every chat answer take that many
seconds (a model's thinking time, for benchmarks).
Every request body is kept as parsed JSON (`requests`) and as raw text (`raw`), so a
test can prove what did and did not leave the bot. `in_flight` counts the chat requests
under way (arrived, neither answered nor given up by the client), `max_in_flight` the most
there ever were at once.
"""

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from standins import serve

EMBED_DIM = 256

Responder = Callable[[dict[str, Any]], dict[str, Any] | None]


def embed_text(text: str) -> list[float]:
    """A deterministic bag-of-words vector (hashed words), unit length."""
    vec = [0.0] * EMBED_DIM
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        h = int(hashlib.sha256(word.encode()).hexdigest(), 16)
        vec[h % EMBED_DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m.get("role") == "tool"]


def investigator(
    calls: list[dict[str, Any]], must_see: Callable[[], list[str]], answer: dict[str, Any]
) -> Responder:
    """A model that first asks for `calls` (tool_call dicts), then answers `answer` only
    when its next request carries tool results holding every string of `must_see()`
    (e.g. the fresh nonce the kubectl stand-in printed); otherwise it answers prose, which
    the bot must drop as unusable."""

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        results = tool_messages(body)
        if not results:
            return {"content": "", "tool_calls": calls}
        seen = "\n".join(str(m.get("content", "")) for m in results)
        wanted = must_see()
        if wanted and all(w in seen for w in wanted):
            return {"content": json.dumps(answer)}
        return {"content": "I could not see the tool results."}

    return respond


class FakeLlm:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.content: str = "{}"
        self.status = 200
        self.hang = False
        self.hang_models: set[str] = set()
        self.hang_if: Callable[[dict[str, Any]], bool] | None = None
        self.refuse_tools = False  # answer 400 to a request that carries `tools`
        self.respond: Responder | None = None
        self.release = asyncio.Event()  # set by a test to let held requests go; teardown does
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""

    def answer(self, obj: Any) -> None:
        self.content = obj if isinstance(obj, str) else json.dumps(obj)

    def model_requests(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("model") == model]

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.raw.append(text)
        body = json.loads(text)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if (self.hang or body.get("model") in self.hang_models
                or (self.hang_if is not None and self.hang_if(body))):
            await self.release.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.status != 200:
            return web.Response(status=self.status, text="upstream exploded")
        if self.refuse_tools and "tools" in body:
            return web.json_response({"error": {"message": "tools are not supported"}},
                                     status=400)
        message = self.respond(body) if self.respond else None
        if message is None:
            message = {"content": self.content}
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", **message}}]}
        )

    async def embeddings(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.raw.append(text)
        body = json.loads(text)
        self.embedding_requests.append(body)
        if self.hang:
            await self.release.wait()
        if self.status != 200:
            return web.Response(status=self.status, text="upstream exploded")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"data": [
            {"index": i, "embedding": embed_text(t)} for i, t in enumerate(inputs)
        ]})


@asynccontextmanager
async def fake_llm_server() -> AsyncIterator[FakeLlm]:
    fake = FakeLlm()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    app.router.add_post("/v1/embeddings", fake.embeddings)
    async with serve(app, handler_cancellation=True) as base:
        fake.url = base + "/v1"
        try:
            yield fake
        finally:
            fake.release.set()  # let a hung handler return so cleanup does not wait on it
