"""Built-in and configured redaction patterns."""

from pathlib import Path

import pytest

from bot.decisions.redact import REDACTED, RedactFileError, Redactor

CASES = [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9",
     "Bearer [REDACTED]"),
    ("dsn postgres://app:s3cr3t-pass@db:5432/app", "s3cr3t-pass", "postgres://app:[REDACTED]@db"),
    ("key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE", REDACTED),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI",
     "aws_secret_access_key = [REDACTED]"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----", "MIIEow",
     REDACTED),
    ("DB_PASSWORD=hunter2hunter2 PORT=5432", "hunter2hunter2", "PORT=5432"),
    ('{"token": "tok_live_12345678"}', "tok_live_12345678", '"token": "[REDACTED]'),
]


@pytest.mark.parametrize(("text", "secret", "kept"), CASES)
def test_builtin_patterns(text: str, secret: str, kept: str) -> None:
    out = Redactor().text(text)
    assert secret not in out
    assert kept in out


def test_plain_text_is_left_alone() -> None:
    text = "pod cart-5d8f restarted 3 times; see https://grafana.example.com/d/abc"
    assert Redactor().text(text) == text


def test_own_patterns_from_file(tmp_path: Path) -> None:
    path = tmp_path / "redact.txt"
    path.write_text("# customer ids\nCUST-\\d{6}\n\n")
    redactor = Redactor.from_path(path)
    assert redactor.text("order of CUST-123456 failed") == f"order of {REDACTED} failed"
    assert redactor.obj({"CUST-123456": ["CUST-654321", 3]}) == {REDACTED: [REDACTED, 3]}


def test_bad_pattern_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "redact.txt"
    path.write_text("ok\n(unclosed\n")
    with pytest.raises(RedactFileError, match=r"redact.txt:2"):
        Redactor.from_path(path)
