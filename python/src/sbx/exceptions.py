"""The exception hierarchy, with the same class names as the hosted product's SDK.

Every error the SDK raises for a failed operation is a ``CWSandboxError``; errors about one
sandbox are ``SandboxError``. gRPC errors are translated in ``sbx._errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, from a ``google.rpc.BadRequest`` detail."""

    field: str
    description: str


class CWSandboxError(Exception):
    """Base class of every SDK error.

    ``reason`` is the machine-readable ``ErrorInfo.reason`` (e.g. ``CWSANDBOX_FILE_NOT_FOUND``) when
    the server sent one, ``metadata`` its key/value details, ``retry_delay`` the server's
    ``RetryInfo`` hint.
    """

    def __init__(
        self,
        message: str = "",
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_delay: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_delay = retry_delay


class CWSandboxAuthenticationError(CWSandboxError):
    """The server rejected the credentials (UNAUTHENTICATED or PERMISSION_DENIED)."""


class CWSandboxValidationError(CWSandboxError):
    """The request was invalid; ``field_violations`` names the offending fields."""

    def __init__(
        self,
        message: str = "",
        *,
        field_violations: tuple[FieldViolation, ...] | list[FieldViolation] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)


class SandboxError(CWSandboxError):
    """An operation on a sandbox failed."""


class SandboxValidationError(CWSandboxValidationError, SandboxError):
    """INVALID_ARGUMENT for a sandbox request."""


class DiscoveryError(CWSandboxError):
    """Runner discovery failed."""


class DiscoveryValidationError(CWSandboxValidationError, DiscoveryError):
    """Invalid runner discovery request."""


class RunnerNotFoundError(DiscoveryError):
    def __init__(self, message: str = "", *, runner_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.runner_id = runner_id


class FunctionError(CWSandboxError):
    """A remote function (``Session.function``) could not be made or run."""


class AsyncFunctionError(FunctionError):
    pass


class SandboxNotRunningError(SandboxError):
    """The sandbox is not running: never started, stopped, or already finished."""


class SandboxUnavailableError(SandboxNotRunningError):
    """The server (sbxd) or the sandbox's runner cannot be reached."""


class SandboxTimeoutError(SandboxError):
    """A wait, an exec or a request did not finish in time."""


class SandboxRequestTimeoutError(SandboxTimeoutError):
    """A request's gRPC deadline expired (DEADLINE_EXCEEDED)."""


class SandboxCommandTimeoutError(SandboxTimeoutError):
    """The server reported that a command timed out (``CWSANDBOX_COMMAND_TIMEOUT``)."""


class SandboxResourceExhaustedError(SandboxError):
    """A quota or the node's capacity was exhausted (RESOURCE_EXHAUSTED)."""


class SandboxTerminalStateUnavailableError(SandboxError):
    """A stop succeeded but the sandbox's final state could not be observed."""


class SandboxTerminatedError(SandboxError):
    """The sandbox was stopped (by this client, a user, or its lifetime limit)."""


class SandboxFailedError(SandboxError):
    """The sandbox failed: its main process exited non-zero, or it could not start."""


class SandboxNotFoundError(SandboxError):
    """No sandbox with that id (NOT_FOUND)."""

    def __init__(self, message: str = "", *, sandbox_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sandbox_id = sandbox_id


class SandboxExecutionError(SandboxError):
    """A command failed: non-zero exit with ``check=True``, or a broken exec stream.

    ``exec_result`` is the ``ProcessResult`` when the command ran to completion.
    """

    def __init__(
        self,
        message: str = "",
        *,
        exec_result: Any = None,
        exception_type: str | None = None,
        exception_message: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.exec_result = exec_result
        self.exception_type = exception_type
        self.exception_message = exception_message


class SandboxStreamBackpressureError(SandboxExecutionError):
    """The server dropped output because the reader was too slow (``STREAM_BACKPRESSURE``)."""

    stream_code = "STREAM_BACKPRESSURE"


class SandboxStreamTruncatedError(SandboxExecutionError):
    """Output was lost in transit (``STREAM_TRUNCATED``)."""

    stream_code = "STREAM_TRUNCATED"


class SandboxFileError(SandboxError):
    """A file operation failed; ``filepath`` names the file and ``reason`` says why."""

    def __init__(self, message: str = "", *, filepath: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.filepath = filepath


class SandboxSnapshotError(SandboxError):
    """File-system snapshots are a hosted-product feature that sbx does not provide."""

    def __init__(
        self, message: str = "", *, file_system_snapshot_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.file_system_snapshot_id = file_system_snapshot_id


class SnapshotNotFoundError(SandboxSnapshotError):
    pass


class SnapshotNotReadyError(SandboxSnapshotError):
    pass


class SnapshotNotSupportedError(SandboxSnapshotError):
    pass


class SnapshotSizeExceededError(SandboxSnapshotError):
    pass


class SnapshotQuotaExceededError(SandboxSnapshotError):
    pass


class SnapshotBucketMismatchError(SandboxSnapshotError):
    pass


class SnapshotOnStopConflictError(SandboxSnapshotError):
    pass


class SnapshotBackendThrottledError(SandboxUnavailableError):
    pass


class UnsupportedFeatureError(SandboxError, NotImplementedError):
    """sbx addition: a hosted-product feature this server does not provide.

    Raised when the feature is used (the option set, the method called), never silently ignored.
    ``feature`` names it, e.g. ``"scratch volumes"``. Catch it as ``SandboxError`` or as
    ``NotImplementedError``.
    """

    def __init__(self, message: str = "", *, feature: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.feature = feature


def unsupported(feature: str, what: str) -> UnsupportedFeatureError:
    """The error for using ``what`` (a parameter or a method), part of ``feature``."""
    return UnsupportedFeatureError(
        f"{what}: this server (sbx) does not provide {feature}, a hosted-product feature",
        feature=feature,
    )


class SnapshotWaitTimeoutError(SandboxTimeoutError):
    pass


__all__ = [
    "AsyncFunctionError",
    "CWSandboxAuthenticationError",
    "CWSandboxError",
    "CWSandboxValidationError",
    "DiscoveryError",
    "DiscoveryValidationError",
    "FieldViolation",
    "FunctionError",
    "RunnerNotFoundError",
    "SandboxCommandTimeoutError",
    "SandboxError",
    "SandboxExecutionError",
    "SandboxFailedError",
    "SandboxFileError",
    "SandboxNotFoundError",
    "SandboxNotRunningError",
    "SandboxRequestTimeoutError",
    "SandboxResourceExhaustedError",
    "SandboxSnapshotError",
    "SandboxStreamBackpressureError",
    "SandboxStreamTruncatedError",
    "SandboxTerminalStateUnavailableError",
    "SandboxTerminatedError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SandboxValidationError",
    "SnapshotBackendThrottledError",
    "SnapshotBucketMismatchError",
    "SnapshotNotFoundError",
    "SnapshotNotReadyError",
    "SnapshotNotSupportedError",
    "SnapshotOnStopConflictError",
    "SnapshotQuotaExceededError",
    "SnapshotSizeExceededError",
    "SnapshotWaitTimeoutError",
    "UnsupportedFeatureError",
]
