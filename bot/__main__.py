"""python -m bot [run | sandbox | check-config | discover | playbooks ... | kb ... | backup FILE |
copy-db --to URL]"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from bot import logs
from bot.config import LoggingSettings, Settings, describe_validation_error

log = logging.getLogger("opsgate")


_S = TypeVar("_S", bound=LoggingSettings)


def _load(cls: type[_S], **overrides: object) -> _S:
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(f"opsgate: bad configuration: {describe_validation_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


def _settings(**overrides: object) -> Settings:
    return _load(Settings, **overrides)


def _configure_logging() -> None:
    wanted = _load(LoggingSettings)
    logs.configure(wanted.log_format, wanted.log_level)


def cmd_run(_: argparse.Namespace) -> int:
    settings = _settings()
    problems = settings.problems_for_run()
    if problems:
        for problem in problems:
            print(f"opsgate: {problem}", file=sys.stderr)
        return 2
    from bot.config_checks import startup_checks

    # The offline checks first, so most fatal problems are reported before aiogram's import
    # (seconds of CPU) has started; App.start repeats them and logs the warnings once.
    for check in startup_checks(settings)[0]:
        if not check.ok and not check.run_continues:
            print(f"opsgate: cannot start: {check.line()}", file=sys.stderr)
            return 1
    from bot.app import serve_until_signal

    return asyncio.run(serve_until_signal(settings))


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.checks import table
    from bot.config_checks import all_checks

    settings = _settings()
    checks = asyncio.run(all_checks(settings, offline=args.offline))
    print(table(checks))
    failed = [c for c in checks if not c.ok]
    for check in failed:
        print(f"opsgate: {check.line()}", file=sys.stderr)
    if failed:
        return 2
    print("configuration OK" + (" (Telegram not checked: --offline)" if args.offline else ""))
    return 0


def cmd_discover(_: argparse.Namespace) -> int:
    from bot.checks import require
    from bot.config_checks import token_check
    from bot.telegram.discover import discover

    settings = _settings()
    require([token_check(settings)])
    try:
        return asyncio.run(discover(settings))
    except KeyboardInterrupt:
        return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.run import run_sandbox

    return asyncio.run(run_sandbox(http_port=args.port, emulator_port=args.emulator_port,
                                   data_dir=Path(args.data_dir)))


def cmd_playbooks(args: argparse.Namespace) -> int:
    from bot.checks import require
    from bot.decisions.cli import playbooks_command
    from bot.resource_checks import database_check

    settings = _settings()
    if not settings.database_url.get_secret_value():
        require([database_check(settings.database_path)])
    return asyncio.run(playbooks_command(settings, args.action, args.file))


def cmd_kb(args: argparse.Namespace) -> int:
    from bot.decisions.cli import kb_command

    return asyncio.run(kb_command(_settings(), args.action))


def cmd_backup(args: argparse.Namespace) -> int:
    from storage.backup import BackupError, backup

    settings = _settings()
    if settings.database_url.get_secret_value():
        # PostgreSQL's own tool makes a consistent dump while the replicas run.
        print(f"opsgate: backup: the database is PostgreSQL ({settings.database_shown}): "
              "back it up with pg_dump, e.g. pg_dump --format=custom "
              "--file=opsgate.dump \"$DATABASE_URL\"", file=sys.stderr)
        return 1
    source = settings.database_path
    try:
        info = backup(source, args.file)
    except BackupError as exc:
        print(f"opsgate: backup: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{table} {count}" for table, count in info.rows.items())
    print(f"backup: {info.path} (schema {info.schema_version}, {info.size} bytes) "
          f"from {source}: {rows}")
    return 0


def cmd_copy_db(args: argparse.Namespace) -> int:
    from storage.copy_db import CopyError, copy_db
    from storage.db import redacted

    source = _settings().database_path
    try:
        report = asyncio.run(copy_db(source, args.to))
    except CopyError as exc:
        print(f"opsgate: copy-db: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{table} {count}" for table, count in sorted(report.rows.items()))
    print(f"copy-db: {report.total} rows from {source} (schema {report.schema_version}) "
          f"into {redacted(args.to)}: {rows}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="opsgate")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run against Telegram (default)").set_defaults(fn=cmd_run)
    sb = sub.add_parser("sandbox", help="run against the local Telegram emulator")
    sb.add_argument("--port", type=int, default=8080, help="alert webhook port")
    sb.add_argument("--emulator-port", type=int, default=8081, help="emulator and chat page")
    sb.add_argument("--data-dir", default="data", help="where the SQLite file goes")
    sb.set_defaults(fn=cmd_sandbox)
    cc = sub.add_parser("check-config", help="make every check `run` makes, print a table")
    cc.add_argument("--offline", action="store_true",
                    help="skip the Telegram checks (getMe, getChat, the bot's rights)")
    cc.set_defaults(fn=cmd_check_config)
    sub.add_parser(
        "discover", help="print chat and user ids of messages the bot receives (set-up)"
    ).set_defaults(fn=cmd_discover)
    pb = sub.add_parser("playbooks", help="list, import or export playbooks")
    pb.add_argument("action", choices=["list", "import", "export"])
    pb.add_argument("file", nargs="?", help="TOML file (import: read, export: write; - = stdout)")
    pb.set_defaults(fn=cmd_playbooks)
    kb = sub.add_parser("kb", help="knowledge index: reindex (rebuild) or status")
    kb.add_argument("action", choices=["reindex", "status"])
    kb.set_defaults(fn=cmd_kb)
    bk = sub.add_parser("backup", help="copy the database to FILE while the bot runs "
                                       "(SQLite online backup; FILE must not exist)")
    bk.add_argument("file", help="the new file (on the same machine as DATABASE_PATH)")
    bk.set_defaults(fn=cmd_backup)
    cp = sub.add_parser("copy-db", help="copy the SQLite database (DATABASE_PATH, the bot "
                                        "stopped) into an empty PostgreSQL database")
    cp.add_argument("--to", required=True, metavar="URL", help="postgresql://user:pass@host/db")
    cp.set_defaults(fn=cmd_copy_db)
    args = parser.parse_args(argv)
    _configure_logging()
    fn = getattr(args, "fn", cmd_run)
    from bot.checks import StartupError

    try:
        return int(fn(args))
    except StartupError as exc:
        print(f"opsgate: cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
