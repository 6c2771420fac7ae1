"""Translation of gRPC errors (AIP-193) into the SDK's exception classes.

Order, as in the hosted SDK: a ``google.rpc.ErrorInfo`` of domain ``cwsandbox.com`` decides first
(file, not-found, command-timeout, unavailable and snapshot reasons); then the status code
(NOT_FOUND, CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, and — an sbx
addition — FAILED_PRECONDITION as "not running"); then
INVALID_ARGUMENT (with ``BadRequest`` field violations), UNAUTHENTICATED and PERMISSION_DENIED;
anything else is a ``SandboxError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from . import exceptions as exc
from ._channel import ServerAddress
from ._proto import sbx_rpc_pb2

DOMAIN = "cwsandbox.com"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_TYPE_PREFIX = "type.googleapis.com/"

FILE_REASONS = frozenset(
    {
        "CWSANDBOX_FILE_NOT_FOUND",
        "CWSANDBOX_FILE_IS_DIRECTORY",
        "CWSANDBOX_FILE_IO_FAILED",
        "CWSANDBOX_FILE_PERMISSION_DENIED",
        "CWSANDBOX_FILE_TOO_LARGE",
        "CWSANDBOX_FILE_TRUNCATED",
    }
)
_UNAVAILABLE_REASONS = frozenset({"CWSANDBOX_RUNNER_UNAVAILABLE", "CWSANDBOX_BACKEND_UNAVAILABLE"})
_SNAPSHOT_REASONS: dict[str, type[exc.SandboxError]] = {
    "CWSANDBOX_FSS_NOT_FOUND": exc.SnapshotNotFoundError,
    "CWSANDBOX_FSS_NOT_READY": exc.SnapshotNotReadyError,
    "CWSANDBOX_FSS_NOT_SUPPORTED": exc.SnapshotNotSupportedError,
    "CWSANDBOX_FSS_SIZE_EXCEEDED": exc.SnapshotSizeExceededError,
    "CWSANDBOX_FSS_QUOTA_EXCEEDED": exc.SnapshotQuotaExceededError,
    "CWSANDBOX_FSS_BUCKET_MISMATCH": exc.SnapshotBucketMismatchError,
    "CWSANDBOX_FSS_BACKEND_THROTTLED": exc.SnapshotBackendThrottledError,
    "CWSANDBOX_FSS_WAIT_TIMEOUT": exc.SnapshotWaitTimeoutError,
}


@dataclass
class RpcErrorDetails:
    """What an RPC error carries: code, message and the decoded AIP-193 details."""

    code: grpc.StatusCode
    message: str
    reason: str | None = None
    domain: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[exc.FieldViolation, ...] = ()
    retry_delay: timedelta | None = None

    @property
    def cwsandbox_reason(self) -> str | None:
        return self.reason if self.domain == DOMAIN else None


def _trailer_bytes(err: grpc.RpcError) -> bytes | None:
    try:
        trailers = err.trailing_metadata()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - some error objects carry no metadata
        return None
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY:
            return value if isinstance(value, bytes) else None
    return None


def details_of(err: grpc.RpcError) -> RpcErrorDetails:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[union-attr]
    message = (err.details() if hasattr(err, "details") else None) or ""  # type: ignore[union-attr]
    out = RpcErrorDetails(code=code or grpc.StatusCode.UNKNOWN, message=message)
    raw = _trailer_bytes(err)
    if not raw:
        return out
    status = sbx_rpc_pb2.Status()
    try:
        status.ParseFromString(raw)
    except Exception:  # noqa: BLE001 - a malformed trailer leaves only the status code
        return out
    if status.message and not out.message:
        out.message = status.message
    for any_msg in status.details:
        type_name = any_msg.type_url.rsplit("/", 1)[-1]
        try:
            if type_name == "google.rpc.ErrorInfo" and out.reason is None:
                info = sbx_rpc_pb2.ErrorInfo.FromString(any_msg.value)
                out.reason, out.domain = info.reason or None, info.domain or None
                out.metadata = dict(info.metadata)
            elif type_name == "google.rpc.BadRequest":
                bad = sbx_rpc_pb2.BadRequest.FromString(any_msg.value)
                out.field_violations += tuple(
                    exc.FieldViolation(v.field, v.description) for v in bad.field_violations
                )
            elif type_name == "google.rpc.RetryInfo":
                retry = sbx_rpc_pb2.RetryInfo.FromString(any_msg.value)
                out.retry_delay = retry.retry_delay.ToTimedelta()
        except Exception:  # noqa: BLE001 - ignore one undecodable detail, keep the rest
            continue
    return out


def unavailable_message(endpoint: ServerAddress | None, detail: str) -> str:
    if endpoint is None:
        return f"sbxd is unavailable: {detail}"
    where = endpoint.base_url
    if endpoint.unix_path is not None:
        if not os.path.exists(endpoint.unix_path):
            return (
                f"cannot connect to sbxd at {where}: the socket {endpoint.unix_path} does not "
                "exist. sbxd must be running (start it, or set SBX_BASE_URL to the address "
                "it listens on)"
            )
        if "ermission denied" in detail:
            return (
                f"cannot connect to sbxd at {where}: permission denied on {endpoint.unix_path} "
                "(the socket is guarded by file permissions; run as a user allowed to use it)"
            )
    return (
        f"cannot connect to sbxd at {where} ({detail or 'unavailable'}). sbxd must be running "
        "and listening there (set SBX_BASE_URL to use another address)"
    )


def translate(
    err: grpc.RpcError,
    *,
    operation: str,
    endpoint: ServerAddress | None = None,
    sandbox_id: str | None = None,
    filepath: str | None = None,
) -> exc.CWSandboxError:
    """The SDK exception for a failed RPC."""
    d = details_of(err)
    common = {"reason": d.reason, "metadata": d.metadata, "retry_delay": d.retry_delay}
    text = d.message or d.code.name
    reason = d.cwsandbox_reason

    if reason is not None:
        if reason in FILE_REASONS:
            path = filepath or d.metadata.get("filepath")
            return exc.SandboxFileError(f"{operation} failed: {text}", filepath=path, **common)
        if reason == "CWSANDBOX_SANDBOX_NOT_FOUND":
            sid = sandbox_id or d.metadata.get("sandbox_id")
            return exc.SandboxNotFoundError(f"{operation} failed: {text}", sandbox_id=sid, **common)
        if reason == "CWSANDBOX_COMMAND_TIMEOUT":
            return exc.SandboxCommandTimeoutError(f"{operation} failed: {text}", **common)
        if reason in _UNAVAILABLE_REASONS:
            return exc.SandboxUnavailableError(f"{operation} failed: {text}", **common)
        if reason.startswith("CWSANDBOX_FSS_"):
            cls = _SNAPSHOT_REASONS.get(reason, exc.SandboxSnapshotError)
            return cls(f"{operation} failed: {text}", **common)

    code = d.code
    if code == grpc.StatusCode.NOT_FOUND:
        return exc.SandboxNotFoundError(
            f"{operation} failed: {text}", sandbox_id=sandbox_id, **common
        )
    if code == grpc.StatusCode.CANCELLED:
        return exc.SandboxNotRunningError(f"{operation} was cancelled: {text}", **common)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        # sbxd's answer to an operation on a sandbox that is not running (any more).
        return exc.SandboxNotRunningError(f"{operation} failed: {text}", **common)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return exc.SandboxRequestTimeoutError(f"{operation} timed out: {text}", **common)
    if code == grpc.StatusCode.UNAVAILABLE:
        if d.reason is None:
            return exc.SandboxUnavailableError(unavailable_message(endpoint, d.message), **common)
        return exc.SandboxUnavailableError(f"{operation} failed: {text}", **common)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return exc.SandboxResourceExhaustedError(f"{operation} failed: {text}", **common)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        message = f"{operation} failed: {text}"
        if d.field_violations:
            listed = "; ".join(f"{v.field}: {v.description}" for v in d.field_violations)
            if listed not in message:
                message = f"{message} ({listed})"
        return exc.SandboxValidationError(message, field_violations=d.field_violations, **common)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return exc.CWSandboxAuthenticationError(f"Authentication failed: {text}", **common)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return exc.CWSandboxAuthenticationError(f"Permission denied: {text}", **common)
    return exc.SandboxError(f"{operation} failed: {text}", **common)
