"""Webhook ingestion throughput: the bot's real webhook against two ceilings, in one run.

    ./dev bench ingest_throughput [--runs 3] [--seconds 3]

Three servers, each its own process, driven by the same load generator (wrk with a Lua
script that makes every request's body; an aiohttp client when wrk is not installed):
  bare   aiohttp that parses the JSON (`await request.json()`) and answers 200
  naive  the same, then one SQLite transaction per request inserting each alert (aiosqlite,
         one statement per alert, the bot's PRAGMAs: WAL, synchronous=NORMAL)
  bot    `python -m bot run` on a SQLite file, Telegram pointed at the emulator (pacing on)
Alertmanager payloads of 1 and 25 alerts, from 1, 8 and 32 concurrent senders, either with
new fingerprints in one growing group ("grow") or with a new group per request ("new").
Each cell is --runs short runs of --seconds, the three servers side by side in each; the
table gives median alerts/s (2xx answers x alerts per payload) and the median of each
run's ratio bot/bare and bot/naive. The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiosqlite
from aiohttp import web

from benchmarks.common import ALICE, BOB, CHAT
from sandbox.server import start_emulator

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 25)
SENDERS = (1, 8, 32)
SHAPES = ("grow", "new")  # new fingerprints in one group / a new group per request
SERVERS = ("bare", "naive", "bot")
STARTS_AT = "2026-11-27T13:07:56.436Z"


# --- the two ceilings, run as `python -m benchmarks.ingest_throughput serve NAME PORT DB` --

async def _bare(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"status": "accepted"})


_NAIVE_SCHEMA = """CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL, group_key TEXT NOT NULL,
    status TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
    received_at REAL NOT NULL, PRIMARY KEY (fingerprint, starts_at))"""
_NAIVE_UPSERT = """INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (fingerprint, starts_at) DO UPDATE SET status = excluded.status,
    labels = excluded.labels, annotations = excluded.annotations,
    received_at = excluded.received_at"""


def _naive_app(conn: aiosqlite.Connection) -> web.Application:
    lock = asyncio.Lock()

    async def naive(request: web.Request) -> web.Response:
        data = await request.json()
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for a in data["alerts"]:
                    await conn.execute(_NAIVE_UPSERT, (
                        a["fingerprint"], a["startsAt"], data["groupKey"], a["status"],
                        json.dumps(a["labels"]), json.dumps(a["annotations"]), time.time()))
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        return web.json_response({"status": "accepted"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/alerts/alertmanager", naive)
    return app


async def serve(name: str, port: int, db_path: str) -> None:
    if name == "bare":
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/alerts/alertmanager", _bare)
    else:
        conn = await aiosqlite.connect(db_path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON",
                       "synchronous=NORMAL"):
            await conn.execute(f"PRAGMA {pragma}")
        await conn.execute(_NAIVE_SCHEMA)
        app = _naive_app(conn)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# --- load ---------------------------------------------------------------------------------

def _alert_json(group: str, fingerprint: str) -> str:
    return json.dumps({
        "status": "firing",
        "labels": {"alertname": "KubePodCrashLooping", "namespace": group,
                   "deployment": "cart", "pod": f"cart-{fingerprint}", "severity": "warning"},
        "annotations": {"summary": f"Pod {group}/cart is crash looping",
                        "description": f"Pod {group}/cart-{fingerprint} restarted 5 times."},
        "startsAt": STARTS_AT, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus-0:9090/graph", "fingerprint": fingerprint,
    })


def _head_json(group: str) -> str:
    """The payload up to its alerts list (which the generator appends, then closes)."""
    body = json.dumps({
        "version": "4", "groupKey": f'{{}}:{{namespace="{group}"}}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "opsgate",
        "groupLabels": {"namespace": group},
        "commonLabels": {"alertname": "KubePodCrashLooping", "namespace": group},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example.com",
        "alerts": [],
    })
    return body[: -len("[]}")] + "["


def body(tag: str, n: int, shape: str, request_no: int) -> bytes:
    """Request `request_no`'s payload (the aiohttp client's; wrk's Lua makes the same)."""
    group = tag if shape == "grow" else f"{tag}-{request_no}"
    alerts = ",".join(_alert_json(group, f"{tag}{request_no:08x}{i:04x}") for i in range(n))
    return (_head_json(group) + alerts + "]}").encode()


def _lua_quote(text: str) -> str:
    return "[==[" + text + "]==]"


_GROUP, _FP = "@GROUP@", "@FP@"  # marks in the templates handed to wrk


def _template(text: str) -> tuple[list[str], list[str]]:
    """`text` cut at its holes (the group's and the fingerprint's marks): literal pieces,
    and which value goes between each two."""
    pieces = re.split(f"{_GROUP}|{_FP}", text)
    holes = ["group" if m == _GROUP else "fp" for m in re.findall(f"{_GROUP}|{_FP}", text)]
    return pieces, holes


def lua_script(tag: str, n: int, shape: str) -> str:
    """wrk's script: each request a new payload like body(); one JSON line when done."""
    head, head_holes = _template(_head_json(_GROUP))
    alert, alert_holes = _template(_alert_json(_GROUP, _FP))
    assert head_holes == ["group"] * len(head_holes)

    def lua_list(items: list[str]) -> str:
        return "{" + ", ".join(_lua_quote(x) for x in items) + "}"

    return f"""
local n, shape, tag = {n}, "{shape}", "{tag}"
local head, alert, holes = {lua_list(head)}, {lua_list(alert)}, {lua_list(alert_holes)}
local counter = 0
local threads = {{}}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

local function fill(pieces, kinds, values)
  local out = {{pieces[1]}}
  for k = 1, #pieces - 1 do
    out[#out + 1] = values[kinds and kinds[k] or "group"]
    out[#out + 1] = pieces[k + 1]
  end
  return table.concat(out)
end

request = function()
  counter = counter + 1
  local no = counter * 64 + (thread_no or 0)
  local group = tag
  if shape == "new" then group = tag .. "-" .. no end
  local alerts = {{}}
  for i = 1, n do
    local fp = string.format("%s%08x%04x", tag, no, i - 1)
    alerts[i] = fill(alert, holes, {{group = group, fp = fp}})
  end
  local b = fill(head, nil, {{group = group}}) .. table.concat(alerts, ",") .. "]}}"
  return wrk.format("POST", "/alerts/alertmanager",
                    {{["Content-Type"] = "application/json"}}, b)
end

done = function(summary, latency, requests)
  io.write(string.format(
    '\\n{{"requests": %d, "bad_status": %d, "socket_errors": %d, "seconds": %f, ' ..
    '"p50_ms": %f, "p99_ms": %f}}\\n',
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass
class Load:
    ok: int  # 2xx answers
    bad: int  # other answers and socket errors
    seconds: float
    p50_ms: float


async def wrk_load(port: int, tag: str, n: int, shape: str, senders: int, seconds: float,
                   workdir: Path) -> Load:
    script = workdir / f"{tag}.lua"
    script.write_text(lua_script(tag, n, shape))
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{senders}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
        f"http://127.0.0.1:{port}", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    line = next((x for x in text.splitlines() if x.startswith('{"requests"')), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed:\n{text}")
    got = json.loads(line)
    return Load(ok=got["requests"] - got["bad_status"],
                bad=got["bad_status"] + got["socket_errors"],
                seconds=got["seconds"], p50_ms=got["p50_ms"])


async def client_load(port: int, tag: str, n: int, shape: str, senders: int, seconds: float,
                      workdir: Path) -> Load:
    """The same load from aiohttp clients, when wrk is not installed (heavier per request)."""
    url = f"http://127.0.0.1:{port}/alerts/alertmanager"
    counter = iter(range(10**9))
    ok = bad = 0
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal ok, bad
        while time.perf_counter() < end:
            data = body(tag, n, shape, next(counter))
            t0 = time.perf_counter()
            async with http.post(url, data=data,
                                 headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status < 300:
                    ok += 1
                else:
                    bad += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(sender(http) for _ in range(senders)))
    return Load(ok=ok, bad=bad, seconds=time.perf_counter() - t0,
                p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port}")


async def start_servers(workdir: Path, emu_base: str, token: str
                        ) -> dict[str, tuple[int, asyncio.subprocess.Process]]:
    servers = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("bare", "naive"):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.ingest_throughput", "serve", name, str(port),
            str(workdir / f"{name}.db"), cwd=ROOT, env=env)
        servers[name] = (port, proc)
    port = free_port()
    bot_env = {
        **env, "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": emu_base,
        "TELEGRAM_CHAT_ID": str(CHAT), "APPROVER_IDS": f"{ALICE['id']},{BOB['id']}",
        "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
        "DATABASE_PATH": str(workdir / "bot.db"), "REDIS_URL": "", "LOG_LEVEL": "WARNING",
    }
    with (workdir / "bot.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=workdir, env=bot_env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
    servers["bot"] = (port, proc)
    for name, (port, proc) in servers.items():
        await _wait_listening(port, proc, name)
    return servers


Cell = tuple[int, int, str]  # alerts per payload, senders, shape


async def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench ingest_throughput")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default="", help="cells as N/senders/shape, comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    cells: list[Cell] = [(n, c, s) for s in SHAPES for n in SIZES for c in SENDERS]
    if args.only:
        wanted = {tuple(x.split("/")) for x in args.only.split(",")}
        cells = [cell for cell in cells if (str(cell[0]), str(cell[1]), cell[2]) in wanted]
    names = [name for name in SERVERS if name in args.servers.split(",")]
    load = wrk_load if shutil.which("wrk") else client_load
    print(f"load: {'wrk' if load is wrk_load else 'aiohttp client'}, "
          f"{args.runs} runs of {args.seconds:g} s per cell and server")
    emu = await start_emulator()
    emu.emulator.add_chat(CHAT, title="On-call", admins=[ALICE, BOB])
    rates: dict[tuple[Cell, str], list[float]] = {}
    p50s: dict[tuple[Cell, str], list[float]] = {}
    refused: dict[str, int] = dict.fromkeys(names, 0)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        servers = await start_servers(workdir, emu.base_url, emu.emulator.token)
        try:
            for name in names:  # warm up: imports, first connections, the first incident
                await load(servers[name][0], f"warm{name}", 25, "new", 8, 1.0, workdir)
            for run in range(args.runs):
                for cell in cells:
                    n, senders, shape = cell
                    for name in names:
                        tag = f"r{run}{name}{n}c{senders}{shape}"
                        got = await load(servers[name][0], tag, n, shape, senders,
                                         args.seconds, workdir)
                        rates.setdefault((cell, name), []).append(got.ok * n / got.seconds)
                        p50s.setdefault((cell, name), []).append(got.p50_ms)
                        refused[name] += got.bad
        finally:
            for _, proc in servers.values():
                if proc.returncode is None:
                    proc.terminate()
                await proc.wait()
            await emu.close()
    _print_table(cells, names, rates, p50s)
    print("non-2xx answers and socket errors: "
          + ", ".join(f"{name} {count}" for name, count in refused.items()))


def _ratio(rates: dict[tuple[Cell, str], list[float]], cell: Cell, a: str, b: str) -> str:
    if (cell, a) not in rates or (cell, b) not in rates:
        return "-"
    ratios = [x / y for x, y in zip(rates[(cell, a)], rates[(cell, b)], strict=True) if y]
    return f"{statistics.median(ratios):.3f}" if ratios else "-"


def _print_table(cells: list[Cell], names: list[str], rates: dict[tuple[Cell, str], list[float]],
                 p50s: dict[tuple[Cell, str], list[float]]) -> None:
    head = f"{'shape':>5} {'alerts':>6} {'senders':>7}"
    for name in names:
        head += f" {name + ' alerts/s':>15}"
    head += f" {'bot p50 ms':>10} {'bot/bare':>8} {'bot/naive':>9}"
    print(head)
    for cell in cells:
        n, senders, shape = cell
        line = f"{shape:>5} {n:>6} {senders:>7}"
        for name in names:
            line += f" {statistics.median(rates[(cell, name)]):>15.0f}"
        bot_p50 = p50s.get((cell, "bot"))
        line += f" {statistics.median(bot_p50):>10.1f}" if bot_p50 else f" {'-':>10}"
        line += f" {_ratio(rates, cell, 'bot', 'bare'):>8} {_ratio(rates, cell, 'bot', 'naive'):>9}"
        print(line)


def _serve_main(argv: list[str]) -> None:
    name, port, db_path = argv
    asyncio.run(serve(name, int(port), db_path))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve_main(sys.argv[2:])
    else:
        asyncio.run(main())
