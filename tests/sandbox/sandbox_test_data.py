"""Shared ids and users for the emulator tests (a plain module: conftest is not importable)."""

TOKEN = "123456:SANDBOX"
GROUP = -1001000000001
FORUM = -1001000000002
ALICE = {"id": 111, "first_name": "Alice", "username": "alice"}
BOB = {"id": 222, "first_name": "Bob", "username": "bob"}
