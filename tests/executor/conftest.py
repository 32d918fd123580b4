from pathlib import Path

import pytest
from standins import FakeKubectl, install_fake_kubectl


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    bindir = tmp_path / "bin"
    log = tmp_path / "kubectl-calls.jsonl"
    fake = install_fake_kubectl(bindir, log)
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    return fake
