"""Sessions' sandboxes are stopped at interpreter exit and on SIGINT/SIGTERM; after a SIGKILL
they are orphans that a new session adopts by tag."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fake_sbxd import SRC
from fake_sbxd import S
from sbx import SandboxDefaults, Session

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from sbx import Sandbox, SandboxDefaults, Session

    mode = sys.argv[1]
    session = Session(SandboxDefaults(tags=("cleanup-test",)))
    sandboxes = [session.sandbox() for _ in range(3)]
    for sb in sandboxes:
        sb.start().result()
    standalone = Sandbox.run(tags=["standalone"])
    print(" ".join(sb.sandbox_id for sb in sandboxes), standalone.sandbox_id, flush=True)
    if mode == "exit":
        sys.exit(0)
    if mode == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    if mode == "sigint":
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    if mode == "hang":
        time.sleep(60)
    if mode == "no-session":
        print(standalone.exec(["echo", "bye"]).result().stdout, end="", flush=True)
    """
)


def run_child(fake, mode: str) -> tuple[subprocess.Popen, list[str], str]:
    env = dict(os.environ, PYTHONPATH=str(SRC), SBX_BASE_URL=fake.base_url)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = child.stdout.readline().split()
    assert len(line) == 4, child.stderr.read()
    return child, line[:3], line[3]


def states(fake, ids):
    return [fake.service.sandboxes[i].state for i in ids]


@pytest.mark.parametrize("mode,expected_rc", [("exit", 0), ("sigterm", -signal.SIGTERM), ("sigint", 3)])
def test_session_sandboxes_are_stopped_when_the_program_ends(fake, mode, expected_rc):
    child, ids, standalone = run_child(fake, mode)
    out, err = child.communicate(timeout=60)
    assert child.returncode == expected_rc, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if mode == "sigint":
        assert "interrupted" in out
    assert states(fake, ids) == [S.STATE_TERMINATED] * 3
    # a sandbox outside any session keeps running, as in the hosted product
    assert fake.service.sandboxes[standalone].state != S.STATE_TERMINATED


def test_orphans_are_adopted_after_a_crash(fake):
    child, ids, standalone = run_child(fake, "hang")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert S.STATE_TERMINATED not in states(fake, ids)
    with Session(SandboxDefaults(tags=("cleanup-test",))) as recovery:
        adopted = recovery.list(adopt=True).result()
        assert sorted(sb.sandbox_id for sb in adopted) == sorted(ids)
    assert states(fake, ids) == [S.STATE_TERMINATED] * 3


def test_a_program_without_sessions_exits_cleanly(fake):
    child, ids, standalone = run_child(fake, "no-session")
    out, err = child.communicate(timeout=30)
    assert (child.returncode, out, err) == (0, "bye\n", "")
