"""Sandbox lifecycle: run, lazy start, wait, wait_until_complete, stop, get_status, list, from_id,
delete, context managers."""

from __future__ import annotations

import pytest

from fake_sbxd import S
from sbx import (
    Sandbox,
    SandboxDefaults,
    SandboxFailedError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxStatus,
    SandboxTerminatedError,
    SandboxTimeoutError,
)


def test_run_returns_once_accepted(fake):
    sb = Sandbox.run()
    try:
        assert sb.sandbox_id.startswith("sbx-")
        assert sb.status is SandboxStatus.PENDING
        assert repr(sb) == f"<Sandbox id={sb.sandbox_id} status=pending>"
        (create,) = fake.service.calls_of("CreateSandbox")
        container = create.sandbox.spec.containers[0]
        assert container.image == "python:3.11"
        assert container.command == "/bin/sh"
        assert list(container.args) == ["-c", 'trap "exit 0" TERM INT; sleep infinity & wait']
        assert create.sandbox.spec.max_lifetime_seconds == 43200
        assert create.request_id
        assert sb.wait() is sb
        assert sb.status is SandboxStatus.RUNNING
        assert sb.started_at is not None and sb.runner_id == "fake-runner"
    finally:
        sb.stop().result()


def test_constructor_is_lazy(fake):
    sb = Sandbox(container_image="python:3.12")
    assert sb.sandbox_id is None and sb.status is None
    assert repr(sb) == "<Sandbox id=None status=not_started>"
    assert fake.service.calls == []
    with pytest.raises(SandboxNotRunningError, match="not been started"):
        sb.get_status()
    sb.start().result()
    sb.start().result()  # idempotent
    assert len(fake.service.calls_of("CreateSandbox")) == 1
    sb.stop().result()


def test_first_operation_starts_the_sandbox(fake):
    sb = Sandbox()
    assert sb.exec(["echo", "x"]).result().stdout == "x\n"
    assert sb.status is SandboxStatus.RUNNING
    sb.stop().result()


def test_main_command_completes(fake):
    sb = Sandbox.run("sh", "-c", "echo hello; exit 0")
    assert sb.wait_until_complete().result() is sb
    assert sb.status is SandboxStatus.COMPLETED
    assert sb.returncode == 0
    assert sb.state_reason.startswith("EXITED")


def test_main_command_failure(fake):
    sb = Sandbox.run("sh", "-c", "exit 3")
    with pytest.raises(SandboxFailedError, match="exit code 3") as info:
        sb.wait_until_complete().result()
    assert info.value.reason == "EXITED"
    assert sb.status is SandboxStatus.FAILED
    assert sb.returncode == 3


def test_wait_returns_for_a_quickly_completed_sandbox(fake):
    sb = Sandbox.run("true")
    sb.wait_until_complete().result()
    assert sb.wait() is sb


def test_wait_on_failed_start(fake):
    sb = Sandbox.run(container_image="missing:latest")
    with pytest.raises(SandboxFailedError, match="IMAGE_PULL_FAILED") as info:
        sb.wait()
    assert info.value.reason == "IMAGE_PULL_FAILED"
    with pytest.raises(SandboxFailedError):
        sb.exec(["echo"]).result()


def test_a_wait_that_times_out_in_pending_names_what_the_sandbox_waits_for(fake):
    fake.service.start_delay = 5
    fake.service.pending_reason = (
        "WAITING_FOR_CAPACITY: waiting for CPU: 2000m of 2000m reserved, it needs 500m"
    )
    sb = Sandbox.run()
    with pytest.raises(SandboxTimeoutError) as info:
        sb.wait(timeout=0.2)
    assert "PENDING: WAITING_FOR_CAPACITY: waiting for CPU: 2000m of 2000m" in str(info.value)
    assert info.value.reason == "WAITING_FOR_CAPACITY"
    sb.stop().result()


def test_wait_timeout(fake):
    fake.service.start_delay = 5
    sb = Sandbox.run()
    with pytest.raises(SandboxTimeoutError, match="did not become ready within 0.2s"):
        sb.wait(timeout=0.2)
    with pytest.raises(SandboxTimeoutError, match="Timed out waiting"):
        sb.wait_until_complete(timeout=0.2).result()
    sb.stop().result()


def test_stop_sends_grace_and_reaches_terminated(fake):
    sb = Sandbox.run()
    sb.wait()
    assert sb.stop(graceful_shutdown_seconds=2.5).result() is None
    (delete,) = fake.service.calls_of("DeleteSandbox")
    assert delete.grace_period_seconds == 3
    assert sb.status is SandboxStatus.TERMINATED
    assert sb.returncode == 0
    with pytest.raises(SandboxTerminatedError):
        sb.wait_until_complete().result()
    assert sb.wait_until_complete(raise_on_termination=False).result() is sb
    with pytest.raises(SandboxTerminatedError):
        sb.wait()
    with pytest.raises(SandboxNotRunningError):
        sb.exec(["echo"]).result()
    sb.stop().result()  # no-op once terminal
    assert len(fake.service.calls_of("DeleteSandbox")) == 1


def test_stop_during_creation(fake):
    fake.service.start_delay = 0.2
    sb = Sandbox.run()
    sb.stop().result()
    assert sb.status is SandboxStatus.TERMINATED
    assert fake.service.sandboxes[sb.sandbox_id].state == S.STATE_TERMINATED


def test_concurrent_stops_share_one_request(fake):
    sb = Sandbox.run()
    sb.wait()
    refs = [sb.stop() for _ in range(5)]
    for ref in refs:
        ref.result()
    assert len(fake.service.calls_of("DeleteSandbox")) == 1


def test_stop_before_start_cancels_without_a_call(fake):
    sb = Sandbox()
    sb.stop().result()
    assert fake.service.calls == []
    with pytest.raises(SandboxNotRunningError, match="stopped"):
        sb.start().result()
    with pytest.raises(SandboxNotRunningError):
        sb.exec(["echo"]).result()
    with pytest.raises(SandboxNotRunningError):
        sb.get_status()


def test_stop_missing(fake):
    sb = Sandbox.run()
    sb.wait()
    fake.run(lambda: fake.service.sandboxes.pop(sb.sandbox_id))
    with pytest.raises(SandboxNotFoundError):
        sb.stop().result()
    sb.stop(missing_ok=True).result()
    assert sb.status is SandboxStatus.TERMINATED


def test_get_status(fake):
    sb = Sandbox.run()
    sb.wait()
    assert sb.get_status() is SandboxStatus.RUNNING
    sb.stop().result()
    before = len(fake.service.calls_of("GetSandbox"))
    assert sb.get_status() is SandboxStatus.TERMINATED
    assert len(fake.service.calls_of("GetSandbox")) == before  # cached once terminal


def test_context_manager_stops(fake):
    with Sandbox.run() as sb:
        assert sb.exec(["echo", "in"]).result().stdout == "in\n"
    assert sb.status is SandboxStatus.TERMINATED


def test_context_manager_stops_on_error_and_keeps_the_error(fake):
    with pytest.raises(RuntimeError, match="boom"):
        with Sandbox.run() as sb:
            raise RuntimeError("boom")
    assert sb.status is SandboxStatus.TERMINATED


def test_context_manager_on_lazy_sandbox_starts_it(fake):
    with Sandbox(command="sleep", args=["infinity"]) as sb:
        assert sb.sandbox_id is not None
    assert fake.service.sandboxes[sb.sandbox_id].state == S.STATE_TERMINATED


def test_from_id_and_list(fake):
    a = Sandbox.run(tags=["job-1", "x"])
    b = Sandbox.run(tags=["job-1"])
    c = Sandbox.run(tags=["job-2"])
    for sb in (a, b, c):
        sb.wait()
    same = Sandbox.from_id(a.sandbox_id).result()
    assert same.sandbox_id == a.sandbox_id and same.status is SandboxStatus.RUNNING
    assert same.tags == ["job-1", "x"]
    assert same.exec(["echo", "via from_id"]).result().stdout == "via from_id\n"

    ids = {sb.sandbox_id for sb in Sandbox.list(tags=["job-1"]).result()}
    assert ids == {a.sandbox_id, b.sandbox_id}
    assert {sb.sandbox_id for sb in Sandbox.list(tags=["job-1", "x"]).result()} == {a.sandbox_id}

    c.stop().result()
    live = {sb.sandbox_id for sb in Sandbox.list().result()}
    assert c.sandbox_id not in live and {a.sandbox_id, b.sandbox_id} <= live
    everything = {sb.sandbox_id for sb in Sandbox.list(show_terminated=True).result()}
    assert c.sandbox_id in everything
    terminated = Sandbox.list(status="terminated").result()
    assert [sb.sandbox_id for sb in terminated] == [c.sandbox_id]
    assert terminated[0].returncode is not None
    with pytest.raises(ValueError):
        Sandbox.list(status="sleeping").result()
    for sb in (a, b):
        sb.stop().result()


def test_list_paginates(fake):
    fake.service.page_size = 2
    sandboxes = [Sandbox.run(tags=["many"]) for _ in range(5)]
    found = Sandbox.list(tags=["many"]).result()
    assert sorted(s.sandbox_id for s in found) == sorted(s.sandbox_id for s in sandboxes)
    assert len(fake.service.calls_of("ListSandboxes")) == 3
    for sb in sandboxes:
        sb.stop().result()


def test_from_id_unknown(fake):
    with pytest.raises(SandboxNotFoundError) as info:
        Sandbox.from_id("sbx-nope").result()
    assert info.value.sandbox_id == "sbx-nope"
    assert info.value.reason == "CWSANDBOX_SANDBOX_NOT_FOUND"


def test_delete(fake):
    sb = Sandbox.run()
    sb.wait()
    assert Sandbox.delete(sb.sandbox_id).result() is None
    (delete,) = fake.service.calls_of("DeleteSandbox")
    assert delete.grace_period_seconds == 0
    with pytest.raises(SandboxNotFoundError):
        Sandbox.delete("sbx-nope").result()
    Sandbox.delete("sbx-nope", missing_ok=True).result()


def test_defaults_base_url_and_timeouts(fake, monkeypatch):
    monkeypatch.delenv("SBX_BASE_URL")
    d = SandboxDefaults(base_url=fake.base_url, request_timeout_seconds=12)
    with Sandbox.run(defaults=d) as sb:
        assert sb._config.request_timeout_seconds == 12
        assert sb.exec(["echo", "ok"]).result().stdout == "ok\n"


def test_unspecified_state_is_treated_as_completed(fake):
    sb = Sandbox.run()
    sb.wait()

    def forget():
        fake.service.sandboxes[sb.sandbox_id].state = S.STATE_UNSPECIFIED

    fake.run(forget)
    sb.wait_until_complete().result()
    assert sb.status is SandboxStatus.COMPLETED
