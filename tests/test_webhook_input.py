"""The alert webhook at the HTTP level: content types, slow and vanishing senders."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from harness import AppFactory, Harness, fixture_bytes

from sandbox.emulator import wait_for


def _alert_rows(h: Harness) -> list[tuple[object, ...]]:
    return h.rows("SELECT * FROM alerts ORDER BY fingerprint, starts_at")


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [
        ("text/plain", "Content-Type must be application/json, not text/plain"),
        ("application/x-www-form-urlencoded", "not application/x-www-form-urlencoded"),
        ("application/json; charset=utf-16", "JSON must be UTF-8, not charset=utf-16"),
        ("", "not application/octet-stream"),
    ],
)
async def test_other_content_types_get_415(app: Harness, tmp_path: Path, content_type: str,
                                           problem: str) -> None:
    status, body = await app.post("/alerts/alertmanager", fixture_bytes("single-firing.json"),
                                  headers={"Content-Type": content_type})
    assert status == 415 and problem in body["error"]
    assert _alert_rows(app) == []


@pytest.mark.parametrize("content_type", [None, "application/json; charset=UTF-8",
                                          "application/vnd.alert+json"])
async def test_json_and_a_missing_content_type_are_accepted(
        app: Harness, tmp_path: Path, content_type: str | None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.app.port)
    body = fixture_bytes("single-firing.json")
    head = (f"POST /alerts/alertmanager HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n")
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"200"
    assert len(_alert_rows(app)) == 1


async def test_a_slow_body_is_cut_off_with_408(start_app: AppFactory, tmp_path: Path) -> None:
    h = await start_app(webhook_read_timeout="300ms")
    reader, writer = await asyncio.open_connection("127.0.0.1", h.app.port)
    body = fixture_bytes("single-firing.json")
    writer.write(b"POST /alerts/alertmanager HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:20])
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    answer = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head
    assert b"WEBHOOK_READ_TIMEOUT" in answer
    assert _alert_rows(h) == []
    # Other senders are unaffected.
    status, _ = await h.post("/alerts/alertmanager", body)
    assert status == 200


async def test_a_sender_that_hangs_up_mid_body_is_one_debug_line(
        app: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, writer = await asyncio.open_connection("127.0.0.1", app.app.port)
    writer.write(b"POST /alerts/alertmanager HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"alerts\":")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await wait_for(lambda: [r for r in caplog.records if "mid-body" in r.getMessage()], 10,
                   message="the dropped connection was not logged")
    dropped = [r for r in caplog.records if "mid-body" in r.getMessage()]
    assert [(r.name, r.levelno, r.exc_info) for r in dropped] == [
        ("handlers.alerts", logging.DEBUG, None)]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert _alert_rows(app) == []


async def test_an_unterminated_string_is_refused_at_once(app: Harness) -> None:
    status, body = await app.post("/alerts/alertmanager", b'{"receiver": "' + b"x" * 5000)
    assert status == 400, body
