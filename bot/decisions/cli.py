"""`python -m bot playbooks list | import FILE | export [FILE]` and `python -m bot kb reindex`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import Settings
from bot.decisions.playbooks import PlaybookFileError, export_toml, import_toml
from storage import knowledge as kb_store
from storage.backends import database_for
from storage.playbooks import PlaybookRepo

NO_PLAYBOOKS = ("no playbooks yet: press \"Save as playbook\" on a fixed incident's card, or "
                "python -m bot playbooks import FILE (format: docs/playbooks.md)")


async def playbooks_command(settings: Settings, action: str, file: str | None) -> int:
    db = database_for(settings.database)
    await db.open()
    try:
        repo = PlaybookRepo(db)
        if action == "list":
            playbooks = await repo.list_all()
            if not playbooks:
                print(NO_PLAYBOOKS)
            for pb in playbooks:
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
            except OSError as exc:
                print(f"opsgate: cannot import {file}: {exc.strerror or exc}", file=sys.stderr)
                return 1
            except PlaybookFileError as exc:
                count = len(exc.errors)
                print(f"opsgate: cannot import {file}, nothing was imported "
                      f"({count} problem{'s' if count != 1 else ''}):", file=sys.stderr)
                for line in exc.errors:
                    print(f"  {file}: {line}", file=sys.stderr)
                return 1
            print(f"imported {count} playbook(s) from {file}")
            return 0
        text = await export_toml(repo)
        if not text:
            # Nothing written, not even an empty file: an export must never look like a backup.
            print(f"opsgate: nothing to export — {NO_PLAYBOOKS}", file=sys.stderr)
            return 0
        if file and file != "-":
            await asyncio.to_thread(Path(file).write_text, text, encoding="utf-8")
            print(f"exported to {file}")
        else:
            sys.stdout.write(text)
        return 0
    finally:
        await db.close()


async def kb_command(settings: Settings, action: str) -> int:
    """`python -m bot kb reindex`: rebuild the knowledge index from the database and KB_PATH."""
    from bot.decisions.factory import build_knowledge
    from bot.decisions.redact import RedactFileError, Redactor

    try:
        redactor = Redactor.from_path(settings.llm_redact_path or None)
    except RedactFileError as exc:
        print(f"opsgate: {exc}", file=sys.stderr)
        return 2
    if settings.kb_path and not await asyncio.to_thread(Path(settings.kb_path).is_dir):
        print(f"opsgate: KB_PATH {settings.kb_path} is not a folder", file=sys.stderr)
        return 2
    db = database_for(settings.database)
    await db.open()
    try:
        knowledge = build_knowledge(settings, db, redactor)
        if action == "reindex":
            counts = await knowledge.reindex()
            print(f"indexed {counts['incidents']} incident(s) and {counts['runbooks']} "
                  f"runbook section(s); {counts['embedded']} embedded")
        async with db.read() as conn:
            stored = await kb_store.count(conn)
        print(f"knowledge index: {stored.get('incident', 0)} incident(s), "
              f"{stored.get('runbook', 0)} runbook section(s)")
        return 0
    finally:
        await db.close()
