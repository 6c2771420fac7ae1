"""End-to-end fixtures: the SDK against a real sbxd.

Skipped unless ``SBX_E2E=1``. The daemon test harness starts sbxd (with a local registry that
serves ``python:3.11`` and ``python:3.15``) and sets ``SBX_BASE_URL``; without it the SDK uses
the local socket ``unix:///run/sbx/sbxd.sock``. ``SBX_E2E_IMAGE`` overrides the test image.
The SDK is the installed one (``pip install ./python``) or, failing that, the source tree.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # e2e_support
from e2e_support import IMAGE, PYTHON_DIR, SRC, TESTS_DIR, wait_for  # noqa: E402

sys.path.insert(0, str(TESTS_DIR))  # seed_snippets
try:
    import sbx  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PYTHON_DIR))
    import _sbx_build

    sys.path.remove(str(PYTHON_DIR))
    _sbx_build.generate_stubs(SRC / "sbx" / "_proto")
    sys.path.insert(0, str(SRC))

from sbx import Sandbox, SandboxDefaults, Session  # noqa: E402

ENABLED = os.environ.get("SBX_E2E") == "1"
SKIP_REASON = (
    "end-to-end tests need a running sbxd: set SBX_E2E=1 (the daemon harness starts sbxd and sets "
    "SBX_BASE_URL)"
)
E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
def tag() -> str:
    """A tag unique to the test; whatever still carries it afterwards is stopped."""
    value = f"e2e-{uuid.uuid4().hex[:12]}"
    yield value
    try:
        leftovers = Sandbox.list(tags=[value]).result(timeout=60)
    except Exception:  # noqa: BLE001 - cleanup is best effort
        return
    for sb in leftovers:
        try:
            sb.stop(graceful_shutdown_seconds=0, missing_ok=True).result(timeout=60)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def defaults(tag: str) -> SandboxDefaults:
    return SandboxDefaults(container_image=IMAGE, max_lifetime_seconds=900, tags=(tag,))


@pytest.fixture
def sandbox(defaults: SandboxDefaults):
    sb = Sandbox.run(defaults=defaults)
    sb.wait(timeout=300)
    yield sb
    sb.stop(graceful_shutdown_seconds=0, missing_ok=True).result(timeout=60)


@pytest.fixture
def session(defaults: SandboxDefaults):
    with Session(defaults) as s:
        yield s


@pytest.fixture
def eventually():
    return wait_for
