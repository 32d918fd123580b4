"""Stand-ins for outside programs, shared by unit and end-to-end tests."""

import json
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

# A stand-in kubectl: records its argv as one JSON line, then behaves as told by
# the environment (note its pid, print a fresh nonce and note it, print given text, sleep
# past the timeout, print a lot, fail).
FAKE_KUBECTL = f"""#!{sys.executable}
import json, os, secrets, sys, time
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("FAKE_KUBECTL_PIDS"):
    with open(os.environ["FAKE_KUBECTL_PIDS"], "a") as out:
        out.write(str(os.getpid()) + "\\n")
if os.environ.get("FAKE_KUBECTL_NONCES"):
    nonce = secrets.token_hex(8)
    with open(os.environ["FAKE_KUBECTL_NONCES"], "a") as out:
        out.write(nonce + "\\n")
    print("nonce " + nonce)
if os.environ.get("FAKE_KUBECTL_PRINT"):
    print(os.environ["FAKE_KUBECTL_PRINT"])
if os.environ.get("FAKE_KUBECTL_SLEEP"):
    time.sleep(float(os.environ["FAKE_KUBECTL_SLEEP"]))
if os.environ.get("FAKE_KUBECTL_BIG"):
    sys.stdout.write("x" * 100_000)
print("deployment.apps/cart restarted")
print("warning on stderr", file=sys.stderr)
sys.exit(int(os.environ.get("FAKE_KUBECTL_EXIT", "0")))
"""


class FakeKubectl:
    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        self.log = log

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def install_fake_kubectl(bindir: Path, log: Path) -> FakeKubectl:
    """Write the stand-in as `bindir/kubectl`; it logs to FAKE_KUBECTL_LOG."""
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / "kubectl"
    path.write_text(FAKE_KUBECTL)
    path.chmod(0o755)
    return FakeKubectl(path, log)


@asynccontextmanager
async def serve(app: web.Application, *, handler_cancellation: bool = False
                ) -> AsyncIterator[str]:
    """Run `app` on an ephemeral loopback port; its base URL. With `handler_cancellation` a
    handler ends when its client goes away (a request the client gave up on stops counting)."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class FakePrometheus:
    """The Prometheus HTTP API's instant query (/api/v1/query), answering a vector whose
    value is a fresh nonce per query, so a test can tell the model saw this answer."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.nonces: list[str] = []
        self.url = ""

    async def query(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        nonce = str(secrets.randbelow(10**9) + 10**9)
        self.nonces.append(nonce)
        return web.json_response({"status": "success", "data": {
            "resultType": "vector",
            "result": [{"metric": {"namespace": "shop", "deployment": "cart"},
                        "value": [float(request.query.get("time", "0")), nonce]}],
        }})


@asynccontextmanager
async def fake_prometheus_server() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.query)
    async with serve(app) as fake.url:
        yield fake
