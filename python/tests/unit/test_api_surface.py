"""The public names and signatures match the hosted SDK's (cwsandbox 1.x as re-exported by
wandb.sandbox): every name the hosted SDK exports imports from ``sbx``, including those of
features sbx does not provide (they fail at use, see test_hosted_only.py)."""

from __future__ import annotations

import inspect

import pytest

import sbx

HOSTED_EXPORTS = """
AsyncFunctionError CWSandboxAuthenticationError CWSandboxError CWSandboxValidationError
DiscoveryError DiscoveryValidationError EgressRule Endpoint EndpointAuth EndpointKind FieldViolation
FileSystemSnapshot FileSystemSnapshotBucketConfig FileSystemSnapshotBucketMode
FileSystemSnapshotOptions FileSystemSnapshotStatus FileSystemSnapshotTrigger FunctionError
ImagePullCredentials get_runner list_runners NetworkOptions OperationRef PlacementMode
PlacementSpillover Process ProcessResult RemoteFunction ResourceOptions Runner RunnerNotFoundError
RunnerResources ScratchVolumeOptions Secret Service ServiceProtocol ServiceVisibility Sandbox
SandboxCommandTimeoutError SandboxDefaults SandboxError SandboxExecutionError SandboxFailedError
SandboxFileError SandboxNotFoundError SandboxNotRunningError SandboxRequestTimeoutError
SandboxResourceExhaustedError SandboxSnapshotError SandboxStatus SandboxStreamBackpressureError
SandboxStreamTruncatedError SandboxTerminalStateUnavailableError SandboxTerminatedError
SandboxTimeoutError SandboxUnavailableError SandboxValidationError SnapshotBackendThrottledError
SnapshotBucketMismatchError SnapshotNotFoundError SnapshotNotReadyError SnapshotNotSupportedError
SnapshotOnStopConflictError SnapshotQuotaExceededError SnapshotSizeExceededError
SnapshotWaitTimeoutError Session StreamReader StreamWriter TerminalResult TerminalSession Waitable
format_bytes format_cpu results wait __version__
""".split()


def params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]


@pytest.mark.parametrize("name", HOSTED_EXPORTS)
def test_every_hosted_name_imports_from_sbx(name):
    namespace: dict[str, object] = {}
    exec(f"from sbx import {name}", namespace)
    assert namespace[name] is getattr(sbx, name)
    assert name in sbx.__all__


def test_all_names_exist():
    for name in sbx.__all__:
        assert hasattr(sbx, name), name


def test_signatures():
    S = sbx.Sandbox
    assert params(S.exec) == ["command", "cwd", "check", "timeout_seconds", "stdin"]
    assert params(S.shell) == ["command", "width", "height"]
    assert params(S.read_file) == ["filepath", "timeout_seconds"]
    assert params(S.write_file) == ["filepath", "contents", "timeout_seconds"]
    assert params(S.read_file_streaming) == ["filepath", "timeout_seconds"]
    assert params(S.write_file_streaming) == ["filepath", "source", "timeout_seconds"]
    assert params(S.stream_logs) == ["follow", "tail_lines", "since_time", "timestamps", "timeout_seconds"]
    assert params(S.stop) == ["snapshot_on_stop", "graceful_shutdown_seconds", "missing_ok", "wait_for_ready", "request_id"]
    assert params(S.wait) == ["timeout"]
    assert params(S.wait_until_complete) == ["timeout", "raise_on_termination"]
    assert params(S.delete) == ["sandbox_id", "base_url", "timeout_seconds", "missing_ok"]
    assert params(S.from_id)[:3] == ["sandbox_id", "base_url", "timeout_seconds"]
    assert params(S.list)[:2] == ["tags", "status"] and "show_terminated" in params(S.list)
    assert params(sbx.Session.list)[-2:] == ["show_terminated", "adopt"]
    assert params(sbx.Session.from_id) == ["sandbox_id", "adopt"]
    assert inspect.signature(sbx.Session.from_id).parameters["adopt"].default is True
    assert params(sbx.Session) == ["defaults", "report_to"]
    assert params(sbx.wait) == ["waitables", "num_returns", "timeout"]
    for name in ("command", "args", "defaults", "container_image", "tags", "base_url",
                 "request_timeout_seconds", "max_lifetime_seconds", "resources", "mounted_files",
                 "network", "services", "environment_variables", "annotations", "secrets"):
        assert name in params(S), name


def test_hosted_only_signatures():
    S = sbx.Sandbox
    assert params(S.snapshot) == ["wait_for_ready", "request_id"]
    assert params(S.get_snapshot) == ["file_system_snapshot_id", "base_url", "timeout_seconds"]
    assert params(S.list_snapshots) == ["source_sandbox_id", "status", "base_url", "timeout_seconds"]
    assert params(S.delete_snapshot) == ["file_system_snapshot_id", "base_url", "timeout_seconds", "missing_ok"]
    assert params(S.get_snapshot_bucket_config) == ["base_url", "timeout_seconds"]
    assert params(S.set_snapshot_bucket_config) == ["bucket_name", "region", "base_url", "timeout_seconds"]
    assert params(S.run_from_template)[:3] == ["template_id", "args", "command"]
    assert params(sbx.Session.log_metrics) == ["step", "reset"]
    assert params(sbx.Session.get_metrics) == []
    assert params(sbx.list_runners) == [
        "runner_group_id", "gpu_type", "architecture", "healthy_only", "include_resources",
        "min_available_cpu_millicores", "min_available_memory_bytes", "min_available_gpu_count",
        "service_visibility"]
    assert params(sbx.get_runner) == ["runner_id", "organization_id"]
    assert params(sbx.RemoteFunction.remote) == ["args", "kwargs"]
    assert params(sbx.RemoteFunction.map) == ["items"]
    assert params(sbx.ScratchVolumeOptions) == ["name", "mount_path", "size", "restore_from_snapshot_id"]
    assert params(sbx.FileSystemSnapshotOptions) == ["mount_path", "size", "file_system_snapshot_id", "name"]
    assert params(sbx.ImagePullCredentials) == ["registry", "store", "name", "field"]
    assert [m.value for m in sbx.PlacementMode] == ["unspecified", "serverless", "cks"]
    assert [m.value for m in sbx.PlacementSpillover] == ["strict", "cks_then_serverless", "serverless_then_cks"]
    assert [m.value for m in sbx.FileSystemSnapshotStatus] == ["unspecified", "creating", "ready", "failed", "deleting"]
    assert [m.value for m in sbx.FileSystemSnapshotTrigger] == ["unspecified", "on_delete", "manual"]
    assert [m.value for m in sbx.FileSystemSnapshotBucketMode] == ["unspecified", "cw_managed", "bring_your_own"]


def test_properties():
    for name in ("sandbox_id", "status", "status_updated_at", "returncode", "runner_id",
                 "runner_group_id", "started_at", "service_urls", "exposed_ports",
                 "dns_egress_names", "resource_requests", "resource_limits", "resource_gpu",
                 "file_system_snapshot_id", "exec_stats"):
        assert isinstance(getattr(sbx.Sandbox, name), property), name
