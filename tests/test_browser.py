"""The sandbox's chat page in a real headless Chromium, used only by clicking and typing.

`python -m bot sandbox` runs as a subprocess; Playwright drives Debian's Chromium
(``playwright install`` cannot download here). Checks read the emulator's API only.
Screenshots go to $OPSGATE_ARTIFACTS (default: <tmp>/opsgate-artifacts); with
OPSGATE_SCREENSHOT_README=1 the desktop one is also written to docs/sandbox.png.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import in_ci
from sandbox_process import ROOT, SandboxProcess, sandbox_process

from sandbox.run import SANDBOX_CHAT_ID

CHROMIUM = os.environ.get("OPSGATE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("OPSGATE_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "opsgate-artifacts")
README_SHOT = os.environ.get("OPSGATE_SCREENSHOT_README") == "1"
WAIT_MS = 30_000  # the bot shares two cores with the rest of the suite

try:
    from playwright.async_api import Browser, Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _need_browser() -> None:
    missing = []
    if async_playwright is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        missing.append(f"{CHROMIUM} (apt-get install chromium fonts-noto-color-emoji "
                       "fonts-noto-cjk)")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _need_browser()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _messages(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    url = f"{sandbox.page_url}_control/chats/{SANDBOX_CHAT_ID}/messages"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return json.loads(await resp.text())


def _card(page: Page, *texts: str) -> Locator:
    found = page.locator(".msg.bot")
    for text in texts:
        found = found.filter(has_text=text)
    return found


async def _pinned(page: Page, found: Locator) -> tuple[Locator, int]:
    """The one message ``found`` matches now, by id: its text changes as it is edited."""
    message_id = int(await found.get_attribute("data-message-id") or 0)
    return page.locator(f'.msg[data-message-id="{message_id}"]'), message_id


async def _act_as(page: Page, name: str) -> None:
    button = page.locator("#people button", has_text=name)
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")


async def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path))
    return path


async def test_sandbox_page_in_a_real_browser(browser: Browser, tmp_path: Path) -> None:
    async with sandbox_process(tmp_path) as sandbox:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(sandbox.page_url)
        icon = await page.evaluate(
            "fetch(document.querySelector('link[rel=icon]').href)"
            ".then(r => [r.status, r.headers.get('content-type')])")
        assert icon == [200, "image/svg+xml"]

        # a sample from the panel: its card appears without a reload
        await page.get_by_role("button", name="💥 Crash loop", exact=True).click()
        first = _card(page, "KubePodCrashLooping", "shop/cart")
        await expect(first).to_contain_text("Awaiting approval", timeout=WAIT_MS)
        card, card_id = await _pinned(page, first)

        # Carol is not an approver: she is told so, and nothing changes
        await _act_as(page, "Carol")
        await card.get_by_role("button", name="Approve").click()
        toast = page.locator("#toast")
        await expect(toast).to_contain_text("not allowed to approve", timeout=WAIT_MS)
        await expect(toast).to_contain_text("333")
        await expect(card).to_contain_text("Awaiting approval")
        # typing: Carol asks who she is
        text = page.locator("#send input[name=text]")
        await text.fill("/whoami")
        await text.press("Enter")
        whoami = _card(page, "User id: 333")
        await expect(whoami).to_contain_text("Approver: no", timeout=WAIT_MS)

        # Alice approves: the card is edited in place and the outcome is threaded under it
        await _act_as(page, "Alice")
        await card.get_by_role("button", name="Approve").click()
        await expect(card).to_contain_text("Done (dry-run)", timeout=WAIT_MS)
        await expect(card.locator(".meta")).to_contain_text("edited")
        outcome = page.locator(".msg.bot", has=page.locator(".reply", has_text=f"#{card_id} "))
        await expect(outcome.filter(has_text="Done (dry-run: nothing was changed)")).to_have_count(
            1, timeout=WAIT_MS)

        # two approvers in the critical namespace: Alice, then Bob
        await page.get_by_role("button", name="🔐 Payments (two approvers)").click()
        critical = _card(page, "payments is a critical namespace")
        await expect(critical).to_contain_text("0/2", timeout=WAIT_MS)
        payments, _ = await _pinned(page, critical)
        await payments.get_by_role("button", name="Approve").click()
        await expect(payments).to_contain_text("1/2", timeout=WAIT_MS)
        await _act_as(page, "Bob")
        await payments.get_by_role("button", name="Approve").click()
        await expect(payments).to_contain_text("Done (dry-run)", timeout=WAIT_MS)
        if README_SHOT:
            await expect(toast).to_be_hidden(timeout=WAIT_MS)
        await payments.scroll_into_view_if_needed()
        desktop = await _screenshot(page, "sandbox-desktop.png")
        if README_SHOT:
            shutil.copyfile(desktop, ROOT / "docs" / "sandbox.png")

        # Bob takes another incident: the card says who is on it, the thread gets a note
        await page.get_by_role("button", name="💾 Disk full").click()
        disk_found = _card(page, "KubePersistentVolumeFillingUp")
        await expect(disk_found.get_by_role("button", name="Ack")).to_be_visible(timeout=WAIT_MS)
        disk, disk_id = await _pinned(page, disk_found)
        await disk.get_by_role("button", name="Ack").click()
        await expect(toast).to_contain_text("Acknowledged", timeout=WAIT_MS)
        await expect(disk).to_contain_text("Acknowledged by @bob", timeout=WAIT_MS)
        await expect(disk.get_by_role("button", name="Unack")).to_be_visible(timeout=WAIT_MS)
        ack_note = page.locator(".msg.bot", has=page.locator(".reply", has_text=f"#{disk_id} "))
        await expect(ack_note.filter(has_text="@bob acknowledged at")).to_have_count(
            1, timeout=WAIT_MS)

        # hostile text is shown as text, and a long label does not widen the page
        await page.get_by_role("button", name="☣️ Hostile text").click()
        hostile = _card(page, "<script>alert('x')</script>")
        await expect(hostile).to_be_visible(timeout=WAIT_MS)
        assert await page.locator("#messages script, #messages img").count() == 0
        # its Details list every label, the 600-character one too
        await hostile.get_by_role("button", name="Details").click()
        long_label = page.locator(".msg.bot", has_text="very-long-label-xxxx")
        await expect(long_label.first).to_be_visible(timeout=WAIT_MS)
        await long_label.first.scroll_into_view_if_needed()
        await _screenshot(page, "sandbox-hostile.png")

        # a phone: nothing scrolls sideways
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.locator("#samplesToggle").click()
        await expect(page.get_by_role("button", name="💥 Crash loop", exact=True)).to_be_visible()
        widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"horizontal scroll at 390x844: {widths}"
        # and nothing is merely clipped: no message or pane is wider than its box
        too_wide = await page.evaluate(
            "[...document.querySelectorAll('#messages, #messages .msg, header, #toolbar, #send')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className || e.id)")
        assert too_wide == []
        await _screenshot(page, "sandbox-phone.png")
        await context.close()
        assert errors == []

        # the emulator's log agrees with what the page showed
        messages = {m["message_id"]: m for m in await _messages(sandbox)}
        assert messages[card_id]["edit_count"] >= 1
        assert any((m.get("reply_to_message") or {}).get("message_id") == card_id
                   and "Done (dry-run" in m["text"] for m in messages.values())
        assert "Acknowledged by @bob" in messages[disk_id]["text"]
