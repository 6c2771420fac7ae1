"""gRPC error translation (AIP-193 trailers) and the errors users see for common failures."""

from __future__ import annotations

import os
from datetime import timedelta

import grpc
import grpc.aio
import pytest

from fake_sbxd import Abort
from sbx import (
    CWSandboxAuthenticationError,
    CWSandboxError,
    FieldViolation,
    Sandbox,
    SandboxCommandTimeoutError,
    SandboxError,
    SandboxFileError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxRequestTimeoutError,
    SandboxResourceExhaustedError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    SandboxValidationError,
    SnapshotNotFoundError,
)
from sbx import _errors
from sbx._channel import parse_base_url


def rpc_error(code, message="details", **abort_kwargs) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if abort_kwargs:
        trailing.add("grpc-status-details-bin", Abort(code, message, **abort_kwargs).trailer())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message)


def translate(err, **kwargs):
    return _errors.translate(err, operation="Op", **kwargs)


def test_hierarchy():
    assert issubclass(SandboxUnavailableError, SandboxNotRunningError)
    assert issubclass(SandboxRequestTimeoutError, SandboxTimeoutError)
    assert issubclass(SandboxCommandTimeoutError, SandboxTimeoutError)
    assert issubclass(SandboxValidationError, SandboxError)
    assert issubclass(SandboxError, CWSandboxError)
    assert issubclass(CWSandboxAuthenticationError, CWSandboxError)


@pytest.mark.parametrize(
    "reason,cls",
    [
        ("CWSANDBOX_FILE_NOT_FOUND", SandboxFileError),
        ("CWSANDBOX_SANDBOX_NOT_FOUND", SandboxNotFoundError),
        ("CWSANDBOX_COMMAND_TIMEOUT", SandboxCommandTimeoutError),
        ("CWSANDBOX_RUNNER_UNAVAILABLE", SandboxUnavailableError),
        ("CWSANDBOX_BACKEND_UNAVAILABLE", SandboxUnavailableError),
        ("CWSANDBOX_FSS_NOT_FOUND", SnapshotNotFoundError),
    ],
)
def test_reasons_decide_first(reason, cls):
    # The status code says INTERNAL; the ErrorInfo reason wins.
    error = translate(rpc_error(grpc.StatusCode.INTERNAL, reason=reason, metadata={"filepath": "/f"}))
    assert type(error) is cls
    assert error.reason == reason
    assert error.metadata == {"filepath": "/f"}


def test_file_error_path_comes_from_metadata():
    error = translate(rpc_error(grpc.StatusCode.NOT_FOUND, reason="CWSANDBOX_FILE_NOT_FOUND", metadata={"filepath": "/x"}))
    assert isinstance(error, SandboxFileError) and error.filepath == "/x"


@pytest.mark.parametrize(
    "code,cls",
    [
        (grpc.StatusCode.NOT_FOUND, SandboxNotFoundError),
        (grpc.StatusCode.CANCELLED, SandboxNotRunningError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, SandboxRequestTimeoutError),
        (grpc.StatusCode.UNAVAILABLE, SandboxUnavailableError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, SandboxResourceExhaustedError),
        (grpc.StatusCode.INVALID_ARGUMENT, SandboxValidationError),
        (grpc.StatusCode.UNAUTHENTICATED, CWSandboxAuthenticationError),
        (grpc.StatusCode.PERMISSION_DENIED, CWSandboxAuthenticationError),
        (grpc.StatusCode.INTERNAL, SandboxError),
        (grpc.StatusCode.FAILED_PRECONDITION, SandboxNotRunningError),
        (grpc.StatusCode.UNIMPLEMENTED, SandboxError),
    ],
)
def test_status_codes(code, cls):
    error = translate(rpc_error(code))
    assert type(error) is cls
    assert error.reason is None


def test_auth_messages():
    assert str(translate(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "bad key"))) == "Authentication failed: bad key"
    assert str(translate(rpc_error(grpc.StatusCode.PERMISSION_DENIED, "nope"))) == "Permission denied: nope"


def test_bad_request_and_retry_info():
    error = translate(
        rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid sandbox",
            reason="CWSANDBOX_INVALID_REQUEST",
            violations=[("sandbox.spec.containers[0].image", "must not be empty")],
            retry_seconds=2.5,
        )
    )
    assert isinstance(error, SandboxValidationError)
    assert error.field_violations == (FieldViolation("sandbox.spec.containers[0].image", "must not be empty"),)
    assert error.retry_delay == timedelta(seconds=2.5)
    assert "must not be empty" in str(error)


def test_foreign_domain_reason_is_kept_but_not_mapped():
    trailing = grpc.aio.Metadata()
    from sbx._proto import sbx_rpc_pb2
    from google.protobuf import any_pb2

    status = sbx_rpc_pb2.Status(code=13, message="x")
    info = sbx_rpc_pb2.ErrorInfo(reason="CWSANDBOX_FILE_NOT_FOUND", domain="example.com")
    status.details.append(any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=info.SerializeToString()))
    trailing.add("grpc-status-details-bin", status.SerializeToString())
    err = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), trailing, details="x")
    error = translate(err)
    assert type(error) is SandboxError


def test_garbage_trailer_is_ignored():
    trailing = grpc.aio.Metadata()
    trailing.add("grpc-status-details-bin", b"\xff\xff\xff")
    err = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), trailing, details="x")
    assert type(translate(err)) is SandboxNotFoundError


def test_unavailable_names_the_address(tmp_path):
    address = parse_base_url(f"unix://{tmp_path}/missing.sock")
    error = translate(rpc_error(grpc.StatusCode.UNAVAILABLE, "connect failed"), endpoint=address)
    assert f"{tmp_path}/missing.sock" in str(error) and "sbxd must be running" in str(error)
    tcp = parse_base_url("http://127.0.0.1:1")
    error = translate(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"), endpoint=tcp)
    assert "http://127.0.0.1:1" in str(error) and "sbxd must be running" in str(error)


# -- end to end through the fake ---------------------------------------------------------------


def test_daemon_not_running(monkeypatch, tmp_path):
    monkeypatch.setenv("SBX_BASE_URL", f"unix://{tmp_path}/sbxd.sock")
    with pytest.raises(SandboxUnavailableError, match="does not exist. sbxd must be running"):
        Sandbox.run()
    with pytest.raises(SandboxUnavailableError):
        Sandbox().exec(["echo"]).result()


def test_daemon_not_listening_on_tcp(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SBX_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(SandboxUnavailableError, match=f"127.0.0.1:{port}"):
        Sandbox.run()


def test_validation_error_from_the_server(fake):
    with pytest.raises(SandboxValidationError) as info:
        Sandbox.run(container_image="invalid//image")
    assert info.value.field_violations[0].field == "sandbox.spec.containers[0].image"
    assert info.value.reason == "CWSANDBOX_INVALID_REQUEST"


def test_missing_secret(fake):
    from sbx import Secret

    with pytest.raises(SandboxValidationError, match="MISSING_TOKEN"):
        Sandbox.run(secrets=[Secret(name="MISSING_TOKEN")])


def test_quota(fake):
    fake.service.max_sandboxes = 1
    first = Sandbox.run()
    with pytest.raises(SandboxResourceExhaustedError) as info:
        Sandbox.run()
    assert info.value.retry_delay == timedelta(seconds=1.5)
    first.stop().result()


def test_authentication(fake, monkeypatch):
    fake.service.api_key = "secret-key"
    with pytest.raises(CWSandboxAuthenticationError):
        Sandbox.run()
    monkeypatch.setenv("SBX_API_KEY", "secret-key")
    with Sandbox.run() as sb:
        sb.exec(["true"]).result()
    assert fake.service.metadata[-1]["authorization"] == "Bearer secret-key"


def test_errors_leave_no_grpc_internals(fake):
    with pytest.raises(SandboxNotFoundError) as info:
        Sandbox.from_id("sbx-missing").result()
    assert info.value.__cause__ is None
    assert "sbx-missing" in str(info.value)


def test_error_names_are_importable_from_the_package():
    import sbx
    import sbx.exceptions

    for name in sbx.exceptions.__all__:
        assert getattr(sbx, name) is getattr(sbx.exceptions, name)
    assert os.environ.get("SBX_BASE_URL") is None
