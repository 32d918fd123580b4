"""`python -m bot playbooks list | import FILE | export [FILE]`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import Settings
from bot.decisions.playbooks import PlaybookFileError, export_toml, import_toml
from storage.db import Database
from storage.playbooks import PlaybookRepo


async def playbooks_command(settings: Settings, action: str, file: str | None) -> int:
    db = Database(settings.database_path)
    await db.open()
    try:
        repo = PlaybookRepo(db)
        if action == "list":
            for pb in await repo.list_all():
                rate = pb.success_rate
                rate_text = "never run" if rate is None else f"{rate:.0%} of {pb.runs} runs"
                print(f"{pb.id:>4}  {pb.name}  [{pb.action.verb}, risk {pb.risk}, {rate_text}]")
            return 0
        if action == "import":
            if not file:
                print("usage: python -m bot playbooks import FILE", file=sys.stderr)
                return 2
            try:
                text = await asyncio.to_thread(Path(file).read_text, encoding="utf-8")
                count = await import_toml(repo, text)
            except (OSError, PlaybookFileError) as exc:
                print(f"opsgate: cannot import {file}: {exc}", file=sys.stderr)
                return 1
            print(f"imported {count} playbook(s) from {file}")
            return 0
        text = await export_toml(repo)
        if file and file != "-":
            await asyncio.to_thread(Path(file).write_text, text, encoding="utf-8")
            print(f"exported to {file}")
        else:
            sys.stdout.write(text)
        return 0
    finally:
        await db.close()
