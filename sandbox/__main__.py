"""Run the sandbox standalone: ``python -m sandbox --port 8081``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from sandbox.emulator import FloodLimits
from sandbox.server import start_emulator


async def _serve(args: argparse.Namespace) -> None:
    running = await start_emulator(
        host=args.host,
        port=args.port,
        token=args.token,
        rate_limits=args.rate_limits,
        flood_limits=FloodLimits().scaled(args.flood_speed),
    )
    emulator = running.emulator
    # a ready-made chat so the browser page has something to show
    emulator.add_chat(args.chat_id, title="On-call", is_forum=args.forum)
    print(f"sandbox Bot API: {running.base_url}  (TELEGRAM_API_BASE={running.base_url})")
    print(f"token: {args.token}  chat: {args.chat_id}  page: {running.base_url}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456:SANDBOX")
    parser.add_argument("--chat-id", type=int, default=-1001234567890)
    parser.add_argument("--forum", action="store_true", help="make the chat a forum")
    parser.add_argument("--rate-limits", action="store_true",
                        help="answer 429 over Telegram's flood limits, as Telegram does")
    parser.add_argument("--flood-speed", type=float, default=1.0,
                        help="with --rate-limits: divide every period of the limits by this")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
