"""The image's HEALTHCHECK: exit 0 when /healthz answers 200 on this container's port.

Standard library only (the image has no curl). Reads HTTP_HOST and HTTP_PORT as the
bot does; a wildcard listen address is asked on loopback.
"""

import os
import sys
import urllib.request

host = os.environ.get("HTTP_HOST", "127.0.0.1")
if host in ("", "0.0.0.0", "::"):
    host = "127.0.0.1"
host = f"[{host}]" if ":" in host else host
port = os.environ.get("HTTP_PORT", "8080")
try:
    with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=4) as reply:
        sys.exit(0 if reply.status == 200 else 1)
except OSError as exc:
    print(f"healthz: {exc}", file=sys.stderr)
    sys.exit(1)
