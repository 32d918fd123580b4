"""Which links may become URL buttons.

Telegram refuses a whole message when one button URL is unacceptable, so only
http(s) links to a dotted public host become buttons; the rest are shown as text.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
# Special-use and private names (RFC 2606, 6761, 6762, 8375, ICANN .internal) and
# Kubernetes service suffixes: never reachable from a phone, often refused.
_PRIVATE_SUFFIXES = (
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "private",
    "test",
    "invalid",
    "example",
    "home.arpa",
    "svc",
    "cluster.local",
)
MAX_URL_LEN = 2048


def button_url_ok(url: str) -> bool:
    """True when `url` can be an inline URL button (http/https, dotted public host)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LEN:
        return False
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    if parts.username is not None or parts.password is not None:
        return False  # credentials in a link shown to a whole chat: no
    return _host_ok(host)


def _host_ok(host: str) -> bool:
    host = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return ip.is_global  # public IPs are accepted; private/loopback are not
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.split(".")
    if len(labels) < 2 or len(ascii_host) > 253:
        return False
    if not all(_LABEL.match(label) for label in labels):
        return False
    if not _TLD.match(labels[-1]):
        return False  # also rules out dotted-number hosts such as 10.0.0
    return not any(ascii_host == s or ascii_host.endswith("." + s) for s in _PRIVATE_SUFFIXES)
