"""Redis is optional in fact: a private redis-server (never the shared one) is killed
mid-run; presses and commands are still answered on in-process state, the log says so once,
/readyz reports it, and the bot goes back to Redis, with what it kept, when it returns."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from harness import ALICE, BOB, CHAT, AppFactory, Harness, in_ci

from bot.models import DecisionState
from sandbox.emulator import wait_for
from storage.state import build_state


class PrivateRedis:
    """redis-server on an ephemeral loopback port, without persistence, owned by the test."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_for(self.answers, 15, message="private redis-server did not start")

    async def answers(self) -> bool:
        client = aioredis.Redis.from_url(self.url)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.ConnectionError):
            return False
        finally:
            await client.aclose()

    async def ttls(self) -> dict[bytes, int]:
        """Every opsgate key with its time to live in ms (-1: none)."""
        client = aioredis.Redis.from_url(self.url)
        try:
            return {key: await client.pttl(key) for key in await client.keys("opsgate:*")}
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("redis-server is required in CI")
        pytest.skip("no redis-server on PATH")
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def readyz(h: Harness) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(h.url + "/readyz") as resp:
            assert resp.status == 200
            return dict(await resp.json())


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "storage.state" and "does not answer" in r.getMessage()]


async def test_presses_and_commands_survive_redis_going_away(
    start_app: AppFactory, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage.state")
    # Approvers come from the chat's admins, cached in the short-lived state: every press
    # and command below reads it.
    app = await start_app(approver_ids=[], approvers_from_chat_admins=True,
                          redis_url=private_redis.url)
    body = await app.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await app.settled()
    card = await app.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    assert "redis" not in (await readyz(app))["degraded"]

    await private_redis.kill()
    qid = await app.press(card["message_id"], "Reject", BOB)
    assert app.em.callback_answer(qid)["text"].startswith("Rejected")
    app.em.user_sends(CHAT, ALICE, "/help")
    await wait_for(lambda: any("/silence" in m["text"] for m in app.bot_messages()), 15,
                   message="/help not answered without Redis")
    await app.press(card["message_id"], "Details", ALICE)
    await app.settled()
    assert (await app.decision(inc)).state is DecisionState.REJECTED
    assert len(fallback_lines(caplog)) == 1, fallback_lines(caplog)
    degraded = (await readyz(app))["degraded"]
    assert f"127.0.0.1:{private_redis.port}" in degraded["redis"]

    # Redis comes back: the bot returns to it, with the "waiting for a reason" it kept.
    await private_redis.start()

    async def back() -> bool:
        return "redis" not in (await readyz(app))["degraded"]

    await wait_for(back, 15, message="the bot did not go back to Redis")
    # What was kept meanwhile is in Redis now, still with its expiry.
    kept = await private_redis.ttls()
    assert kept and all(ttl > 0 for ttl in kept.values()), kept
    assert any("answers again" in r.getMessage() for r in caplog.records)
    prompt = next(r for r in app.replies_to(card["message_id"]) if "add a reason" in r["text"])
    app.em.user_sends(CHAT, BOB, "rolled back by hand", reply_to_message_id=prompt["message_id"])
    await wait_for(lambda: "rolled back by hand"
                   in app.em.message(CHAT, card["message_id"])["text"], 15)
    assert (await app.decision(inc)).reason == "rolled back by hand"
    assert len(fallback_lines(caplog)) == 1


async def test_start_with_redis_down(start_app: AppFactory, private_redis: PrivateRedis) -> None:
    await private_redis.kill()
    app = await start_app(redis_url=private_redis.url)
    assert "redis" in (await readyz(app))["degraded"]
    body = await app.alert("crashloop-firing.json")
    await app.settled()
    card = await app.wait_card(lambda m: body["opened"][0] in m["text"])
    qid = await app.press(card["message_id"], "Approve", ALICE)
    assert app.em.callback_answer(qid)["text"]
    await private_redis.start()

    async def back() -> bool:
        return "redis" not in (await readyz(app))["degraded"]

    await wait_for(back, 15, message="the bot did not go back to Redis")


async def test_no_password_in_what_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody answers there
    state = build_state(f"redis://:hunter2@127.0.0.1:{port}/0")
    try:
        await state.open()
        await state.set("k", {"v": 1}, 60)
        assert await state.get("k") == {"v": 1}
        problem = state.problem()
        assert problem is not None and f"127.0.0.1:{port}" in problem
        assert "hunter2" not in problem and "hunter2" not in caplog.text
    finally:
        await state.close()
