"""Unit-test fixtures: the SDK from the source tree (stubs generated on the fly) and a fake sbxd."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[2]
SRC = PYTHON_DIR / "src"


def _prepare_stubs() -> None:
    sys.path.insert(0, str(PYTHON_DIR))
    try:
        import _sbx_build
    finally:
        sys.path.remove(str(PYTHON_DIR))
    _sbx_build.generate_stubs(SRC / "sbx" / "_proto")


_prepare_stubs()
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # seed_snippets

from fake_sbxd import FakeServer  # noqa: E402

from sbx import _channel, _loop  # noqa: E402

for name in ("SBX_BASE_URL", "CWSANDBOX_BASE_URL", "SBX_API_KEY", "CWSANDBOX_API_KEY", "WANDB_API_KEY"):
    os.environ.pop(name, None)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    # Unix socket paths are limited to ~108 bytes, so keep the directory short.
    tmp = tempfile.mkdtemp(prefix="sbx-")
    server = FakeServer(os.path.join(tmp, "sbxd.sock")).start()
    monkeypatch.setenv("SBX_BASE_URL", server.base_url)
    try:
        yield server
    finally:
        _loop.run_sync(_channel.close_all(), timeout=10)
        server.stop()
        try:
            os.unlink(server.socket_path)
        except FileNotFoundError:
            pass
        os.rmdir(tmp)


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Polls ``condition`` until it is truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def eventually():
    return wait_for
