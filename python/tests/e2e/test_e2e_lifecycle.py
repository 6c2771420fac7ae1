"""Lifecycle states and their reasons, listing, from_id, delete."""

from __future__ import annotations

import pytest

from e2e_support import IMAGE
from sbx import (
    Sandbox,
    SandboxError,
    SandboxFailedError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxStatus,
    SandboxTerminatedError,
    SandboxValidationError,
    pull_image,
)


@pytest.mark.smoke
def test_run_wait_stop(defaults):
    sb = Sandbox.run(defaults=defaults)
    assert sb.status in (SandboxStatus.PENDING, SandboxStatus.CREATING, SandboxStatus.RUNNING)
    assert sb.wait(timeout=300) is sb
    assert sb.status is SandboxStatus.RUNNING and sb.get_status() is SandboxStatus.RUNNING
    assert sb.started_at is not None
    sb.stop(graceful_shutdown_seconds=5).result(timeout=60)
    assert sb.status is SandboxStatus.TERMINATED
    assert sb.state_reason.startswith("USER_STOPPED")
    with pytest.raises(SandboxTerminatedError):
        sb.wait_until_complete().result()
    with pytest.raises(SandboxNotRunningError):
        sb.exec(["true"]).result()
    assert Sandbox.from_id(sb.sandbox_id).result().status is SandboxStatus.TERMINATED


def test_main_process_exit_zero_completes(defaults):
    sb = Sandbox.run("sh", "-c", "echo done", defaults=defaults)
    sb.wait_until_complete(timeout=300).result()
    assert sb.status is SandboxStatus.COMPLETED
    assert sb.returncode == 0
    assert sb.state_reason.startswith("EXITED")
    assert list(sb.stream_logs()) == ["done\n"]


def test_main_process_failure(defaults):
    sb = Sandbox.run("sh", "-c", "exit 3", defaults=defaults)
    with pytest.raises(SandboxFailedError):
        sb.wait_until_complete(timeout=300).result()
    assert sb.status is SandboxStatus.FAILED and sb.returncode == 3


def test_main_process_killed_by_a_signal(defaults):
    sb = Sandbox.run("sh", "-c", "kill -9 $$", defaults=defaults)
    with pytest.raises(SandboxFailedError):
        sb.wait_until_complete(timeout=300).result()
    assert sb.status is SandboxStatus.FAILED
    assert sb.returncode not in (None, 0)


def test_stop_with_a_grace_period_and_a_stubborn_main_process(defaults):
    # The main process ignores SIGTERM: stop must still end it after the grace period.
    sb = Sandbox.run("sh", "-c", "trap '' TERM; while true; do sleep 1; done", defaults=defaults)
    sb.wait(timeout=300)
    sb.stop(graceful_shutdown_seconds=1).result(timeout=60)
    assert sb.status is SandboxStatus.TERMINATED


def test_lifetime_limit(defaults):
    sb = Sandbox.run(defaults=defaults.with_overrides(max_lifetime_seconds=3))
    with pytest.raises(SandboxTerminatedError):
        sb.wait_until_complete(timeout=120).result()
    assert sb.status is SandboxStatus.TERMINATED
    assert sb.state_reason.startswith("LIFETIME_EXCEEDED")


def test_image_pull_failure(defaults):
    sb = Sandbox.run(container_image="sbx-e2e/does-not-exist:1", defaults=defaults)
    with pytest.raises(SandboxFailedError) as info:
        sb.wait(timeout=300)
    assert info.value.reason == "IMAGE_PULL_FAILED"


def test_lazy_start(defaults):
    sb = Sandbox(defaults=defaults)
    assert sb.sandbox_id is None
    assert sb.exec(["echo", "lazy"]).result(timeout=300).stdout == "lazy\n"
    assert sb.sandbox_id is not None
    sb.stop().result(timeout=60)


def test_list_from_id_delete(tag, defaults):
    a = Sandbox.run(defaults=defaults, tags=["a"])
    b = Sandbox.run(defaults=defaults)
    a.wait(timeout=300)
    b.wait(timeout=300)
    assert {s.sandbox_id for s in Sandbox.list(tags=[tag]).result()} == {a.sandbox_id, b.sandbox_id}
    assert [s.sandbox_id for s in Sandbox.list(tags=[tag, "a"]).result()] == [a.sandbox_id]
    running = Sandbox.list(tags=[tag], status="running").result()
    assert len(running) == 2
    attached = Sandbox.from_id(a.sandbox_id).result()
    assert attached.exec(["echo", "attached"]).result().stdout == "attached\n"
    Sandbox.delete(b.sandbox_id).result()
    b.wait_until_complete(timeout=60, raise_on_termination=False).result()
    assert b.status.is_terminal
    assert b.sandbox_id not in {s.sandbox_id for s in Sandbox.list(tags=[tag]).result()}
    assert b.sandbox_id in {s.sandbox_id for s in Sandbox.list(tags=[tag], show_terminated=True).result()}
    with pytest.raises(SandboxNotFoundError):
        Sandbox.from_id("sbx-does-not-exist").result()
    a.stop().result(timeout=60)


def test_context_manager_stops_on_error(defaults):
    with pytest.raises(RuntimeError):
        with Sandbox.run(defaults=defaults) as sb:
            raise RuntimeError("user error")
    assert sb.status is SandboxStatus.TERMINATED


def test_default_image_is_python_3_11(tag):
    with Sandbox.run(tags=[tag]) as sb:
        assert sb.exec(["python", "--version"]).result(timeout=300).stdout.startswith("Python 3.11")
    assert IMAGE


def test_expiry_shown_and_lifetime_extended(defaults):
    sb = Sandbox.run(defaults=defaults.with_overrides(max_lifetime_seconds=600))
    sb.wait(timeout=300)
    first = sb.expires_at
    assert first is not None and first > sb.started_at
    later = sb.extend_lifetime(3600).result(timeout=60)
    assert (later - first).total_seconds() == pytest.approx(3600, abs=0.001)
    assert sb.expires_at == later
    # The server's view agrees.
    again = Sandbox.from_id(sb.sandbox_id).result()
    assert again.expires_at == later
    with pytest.raises(SandboxValidationError) as info:
        sb.extend_lifetime(365 * 86400).result(timeout=60)
    assert "max_lifetime_seconds" in str(info.value)
    sb.stop().result(timeout=60)
    assert sb.expires_at is None
    with pytest.raises(SandboxNotRunningError):
        sb.extend_lifetime(60).result(timeout=60)


def test_pull_image_ahead_with_progress():
    batches = []
    image = pull_image(IMAGE, progress=batches.append).result(timeout=300)
    assert image.digest.startswith("sha256:") and image.size_bytes > 0
    assert batches, "a pull reports its layers"
    phases = {layer.phase for batch in batches for layer in batch}
    assert phases <= {"waiting", "downloading", "verifying", "unpacking", "done", "cached"}
    assert {"done", "cached"} & phases
    quiet = []
    same = pull_image(IMAGE, if_missing=True, progress=quiet.append).result(timeout=60)
    assert same.digest == image.digest and quiet == []
    with pytest.raises(SandboxError):
        pull_image("sbx-e2e/does-not-exist:1").result(timeout=300)
