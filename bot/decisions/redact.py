"""Redaction of secrets from everything sent to a model or embeddings server.

Built-in patterns catch the usual leaks (bearer tokens, passwords in URLs, AWS-style
keys, private-key blocks, `password=...` style assignments); `LLM_REDACT_PATH` adds the
team's own, one regular expression a line (blank lines and lines starting with # are
skipped). A match is replaced by REDACTED; for patterns with a group named `keep`,
that group stays (so "Bearer" or "password=" still say what was removed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REDACTED = "[REDACTED]"

BUILTIN_PATTERNS = (
    r"(?P<keep>(?i:bearer)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
    r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(?=@)",
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
    r"(?P<keep>(?i:aws_secret_access_key)\s*[=:]\s*)\S+",
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    r"(?P<keep>(?i:(?:password|passwd|pwd|secret|token|api[_-]?key)\b)[\"']?\s*[=:]\s*[\"']?)"
    r"[^\s\"',;&]{4,}",
)


class RedactFileError(ValueError):
    """LLM_REDACT_PATH cannot be read or holds a bad pattern; the message says which line."""


def load_patterns(path: str | Path | None) -> list[str]:
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RedactFileError(f"{path}: {exc.strerror or exc}") from exc
    patterns = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            re.compile(line)
        except re.error as exc:
            raise RedactFileError(f"{path}:{number}: {exc}") from exc
        patterns.append(line)
    return patterns


class Redactor:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.patterns = [re.compile(p) for p in (*BUILTIN_PATTERNS, *extra)]

    @classmethod
    def from_path(cls, path: str | Path | None) -> Redactor:
        return cls(load_patterns(path))

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            keeps = "keep" in pattern.groupindex
            value = pattern.sub(
                (lambda m: (m.group("keep") or "") + REDACTED) if keeps else REDACTED, value
            )
        return value

    def obj(self, value: Any) -> Any:
        """Every string inside a JSON-like value redacted (dict keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value
