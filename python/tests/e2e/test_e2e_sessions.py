"""Sessions: close stops everything; a crashed client's sandboxes are adopted by tag; program
exit and signals stop a session's sandboxes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from e2e_support import IMAGE, sbx_env
from sbx import Sandbox, SandboxDefaults, SandboxStatus, Session

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from sbx import SandboxDefaults, Session

    tag, image, mode = sys.argv[1:4]
    session = Session(SandboxDefaults(container_image=image, max_lifetime_seconds=900, tags=(tag,)))
    sandboxes = [session.sandbox() for _ in range(3)]
    for sb in sandboxes:
        sb.wait(timeout=300)
    print(" ".join(sb.sandbox_id for sb in sandboxes), flush=True)
    if mode == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(600)
    """
)


def start_child(tag: str, mode: str) -> tuple[subprocess.Popen, list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, tag, IMAGE, mode],
        env=sbx_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ids = child.stdout.readline().split()
    if len(ids) != 3:
        child.kill()
        raise AssertionError(f"child failed: {child.stderr.read()}")
    return child, ids


def status_of(sandbox_id: str) -> SandboxStatus:
    return Sandbox.from_id(sandbox_id).result(timeout=60).status


@pytest.mark.smoke
def test_close_stops_all(defaults):
    with Session(defaults) as session:
        sandboxes = [session.sandbox() for _ in range(4)]
        for sb in sandboxes:
            sb.start().result()
        assert sandboxes[0].exec(["echo", "x"]).result(timeout=300).stdout == "x\n"
        assert session.sandbox_count == 4
    for sb in sandboxes:
        assert status_of(sb.sandbox_id) is SandboxStatus.TERMINATED


def test_orphans_are_adopted_by_tag_after_a_crash(tag):
    child, ids = start_child(tag, "hang")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert all(status_of(i) is SandboxStatus.RUNNING for i in ids)
    with Session(SandboxDefaults(tags=(tag,))) as recovery:
        adopted = recovery.list(adopt=True).result(timeout=60)
        assert sorted(sb.sandbox_id for sb in adopted) == sorted(ids)
        assert recovery.sandbox_count == 3
    assert all(status_of(i) is SandboxStatus.TERMINATED for i in ids)


def test_sigterm_stops_the_sessions_sandboxes(tag):
    child, ids = start_child(tag, "sigterm")
    child.communicate(timeout=120)
    assert child.returncode == -signal.SIGTERM
    assert all(status_of(i) is SandboxStatus.TERMINATED for i in ids)
