"""Stand-ins for outside programs, shared by unit and end-to-end tests."""

import json
import sys
from pathlib import Path

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
