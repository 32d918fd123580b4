"""A local OpenAI-compatible chat-completions server for tests."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


class FakeLlm:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.content: str = "{}"
        self.status = 200
        self.hang = False
        self.release = asyncio.Event()  # tests never set it; teardown does
        self.url = ""

    def answer(self, obj: Any) -> None:
        self.content = obj if isinstance(obj, str) else json.dumps(obj)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.hang:
            await self.release.wait()
        if self.status != 200:
            return web.Response(status=self.status, text="upstream exploded")
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": self.content}}]}
        )


@asynccontextmanager
async def fake_llm_server() -> AsyncIterator[FakeLlm]:
    fake = FakeLlm()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield fake
    finally:
        fake.release.set()  # let a hung handler return so cleanup does not wait on it
        await runner.cleanup()
