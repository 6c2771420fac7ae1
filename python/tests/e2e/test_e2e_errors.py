"""Server errors arrive as the right exception classes."""

from __future__ import annotations

import pytest

from sbx import (
    Sandbox,
    SandboxExecutionError,
    SandboxFileError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxResourceExhaustedError,
    SandboxUnavailableError,
    SandboxValidationError,
    Secret,
)


def test_unknown_sandbox(tag):
    with pytest.raises(SandboxNotFoundError) as info:
        Sandbox.from_id("sbx-00000000-unknown").result()
    assert info.value.reason == "CWSANDBOX_SANDBOX_NOT_FOUND"
    with pytest.raises(SandboxNotFoundError):
        Sandbox.delete("sbx-00000000-unknown").result()
    Sandbox.delete("sbx-00000000-unknown", missing_ok=True).result()


def test_invalid_image_reference(defaults):
    with pytest.raises(SandboxValidationError) as info:
        Sandbox.run(container_image="Not A Valid Reference!!", defaults=defaults)
    assert info.value.field_violations


def test_request_that_can_never_fit(defaults):
    with pytest.raises(SandboxResourceExhaustedError):
        sb = Sandbox.run(defaults=defaults, resources={"cpu": "100000", "memory": "1Ei"})
        sb.wait(timeout=60)


def test_missing_secret(defaults):
    with pytest.raises(SandboxValidationError, match="SBX_E2E_NO_SUCH_SECRET"):
        Sandbox.run(defaults=defaults, secrets=[Secret(name="SBX_E2E_NO_SUCH_SECRET")])


def test_operations_on_a_stopped_sandbox(sandbox):
    sandbox.stop().result(timeout=60)
    with pytest.raises(SandboxNotRunningError):
        sandbox.exec(["true"]).result()
    with pytest.raises(SandboxNotRunningError):
        sandbox.read_file("/etc/hostname").result()


def test_file_and_exec_errors(sandbox):
    with pytest.raises(SandboxFileError):
        sandbox.read_file("/definitely/missing").result()
    with pytest.raises(SandboxExecutionError):
        sandbox.exec(["false"], check=True).result()


def test_unreachable_daemon(tmp_path):
    with pytest.raises(SandboxUnavailableError, match="sbxd must be running"):
        Sandbox.run(base_url=f"unix://{tmp_path}/absent.sock")
