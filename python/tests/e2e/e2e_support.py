"""Helpers shared by the end-to-end tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

TESTS_DIR = Path(__file__).resolve().parents[1]
PYTHON_DIR = TESTS_DIR.parent
SRC = PYTHON_DIR / "src"
IMAGE = os.environ.get("SBX_E2E_IMAGE", "python:3.11")


def sbx_env() -> dict[str, str]:
    """The environment for child processes that use the SDK."""
    env = dict(os.environ)
    if str(SRC) in sys.path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
