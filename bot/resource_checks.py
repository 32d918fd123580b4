"""What this machine must give opsgate: a database file it can open and write, a free
port to listen on, and (if REDIS_URL is set) a Redis that parses and answers.
Nothing is created, bound for good or migrated here."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

from bot.checks import Check, fail, ok
from storage.db import SchemaTooNew, known_schema_version


def _blocking_ancestor(path: Path) -> Path | None:
    """The first ancestor of `path` that exists and is not a directory, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def database_check(path_text: str, name: str = "DATABASE_PATH", fix_path: str = "") -> Check:
    """The database opens, can be written and has a schema this version knows. Nothing is
    created or migrated here; `run` migrates at start-up."""
    fix_path = fix_path or f"point {name} at a file in a directory this user can write"
    if path_text == ":memory:":
        return ok(name, "in memory (nothing survives a restart)")
    path = Path(path_text)
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        return fail(name, f"{path}: {blocker} is a file, not a directory", fix_path)
    if path.is_dir():
        return fail(name, f"{path} is a directory", "name the database file, e.g. data/opsgate.db")
    if not path.exists():
        existing = next(p for p in path.parents if p.exists())
        probe = existing / f".opsgate-write-test-{path.name}"
        try:
            probe.touch()
            probe.unlink()
        except OSError as exc:
            return fail(name, f"cannot create {path}: {exc.strerror or exc}", fix_path)
        return ok(name, f"{path} will be created (schema {known_schema_version()})")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
    except sqlite3.Error as exc:
        return fail(name, f"cannot open {path}: {exc}", fix_path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        return fail(name, f"cannot write {path}: {exc}",
                    "check the file is an opsgate database, not locked by another program, "
                    "and on a writable disk")
    finally:
        conn.close()
    known = known_schema_version()
    if version > known:
        return fail(name, str(SchemaTooNew(path, version, known)), SchemaTooNew.FIX)
    pending = f", {known - version} migration(s) run at start-up" if version < known else ""
    return ok(name, f"{path}: schema {version}{pending}")


def port_check(host: str, port: int, name: str = "HTTP_PORT") -> Check:
    if port == 0:
        return ok(name, f"{host}: any free port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail("HTTP_HOST", f"{host!r}: {exc.strerror}", "use an address, e.g. 127.0.0.1")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return fail(name, bind_problem(host, port, exc), bind_fix(name))
    return ok(name, f"{host}:{port} is free")


def bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{host}:{port} is already in use"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def bind_fix(name: str) -> str:
    return f"stop what listens there or choose another port ({name}; the sandbox: --port N)"


def redis_url_check(url: str) -> Check:
    from redis.asyncio import Redis

    if not url:
        return ok("REDIS_URL", "not set: short-lived state stays in this process")
    try:
        Redis.from_url(url)
    except ValueError as exc:
        return fail("REDIS_URL", f"{url!r}: {exc}", "write it like redis://127.0.0.1:6379/0")
    return ok("REDIS_URL", f"{url} parses")


async def redis_check(url: str) -> Check:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    parsed = redis_url_check(url)
    if not url or not parsed.ok:
        return parsed
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()  # type: ignore[misc]
    except (RedisError, OSError) as exc:
        return fail("REDIS_URL", f"nobody answers at {url}: {exc}",
                    "start Redis or clear REDIS_URL (`run` starts on in-process state "
                    "and switches to Redis when it answers)", run_continues=True)
    finally:
        await client.aclose()
    return ok("REDIS_URL", f"{url} answers")
