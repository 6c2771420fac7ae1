"""Fixtures of the adversarial suite: tests/support/sbxd_harness.py, re-exported for pytest and for the
tests' own imports."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from sbxd_harness import *  # noqa: E402,F401,F403
from sbxd_harness import (  # noqa: E402,F401
    API_KEY_A, API_KEY_B, API_KEY_OPERATOR, QUOTA_B, ROOT, Daemon, _become_subreaper, auth,
    daemon_running, forget, free_port, own_daemon, run, spawn)
