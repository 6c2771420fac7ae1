"""sbx: the Python SDK of sbx, the self-hosted sandbox service.

Mirrors the API of the hosted product's SDK, so code written for it runs with only the import
changed::

    from sbx import Sandbox, Session, SandboxDefaults

    with Sandbox.run() as sandbox:
        print(sandbox.exec(["python", "--version"]).result().stdout)

Connects to the local sbxd at ``unix:///run/sbx/sbxd.sock`` unless ``SBX_BASE_URL`` (or
``CWSANDBOX_BASE_URL``) names another address.
"""

from ._defaults import SandboxDefaults
from ._network import (
    EgressRule,
    Endpoint,
    EndpointAuth,
    EndpointKind,
    NetworkOptions,
    Service,
    ServiceProtocol,
    ServiceVisibility,
)
from ._resources import ResourceOptions, format_bytes, format_cpu
from ._sandbox import Sandbox
from ._secret import Secret
from ._session import Session
from ._status import SandboxStatus
from ._streams import StreamReader, StreamWriter
from ._types import (
    OperationRef,
    Process,
    ProcessResult,
    TerminalResult,
    TerminalSession,
    Waitable,
    results,
    wait,
)
from ._version import __version__
from .exceptions import (
    AsyncFunctionError,
    CWSandboxAuthenticationError,
    CWSandboxError,
    CWSandboxValidationError,
    DiscoveryError,
    DiscoveryValidationError,
    FieldViolation,
    FunctionError,
    RunnerNotFoundError,
    SandboxCommandTimeoutError,
    SandboxError,
    SandboxExecutionError,
    SandboxFailedError,
    SandboxFileError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxRequestTimeoutError,
    SandboxResourceExhaustedError,
    SandboxSnapshotError,
    SandboxStreamBackpressureError,
    SandboxStreamTruncatedError,
    SandboxTerminalStateUnavailableError,
    SandboxTerminatedError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    SandboxValidationError,
    SnapshotBackendThrottledError,
    SnapshotBucketMismatchError,
    SnapshotNotFoundError,
    SnapshotNotReadyError,
    SnapshotNotSupportedError,
    SnapshotOnStopConflictError,
    SnapshotQuotaExceededError,
    SnapshotSizeExceededError,
    SnapshotWaitTimeoutError,
)

__all__ = [
    "__version__",
    "EgressRule",
    "Endpoint",
    "EndpointAuth",
    "EndpointKind",
    "NetworkOptions",
    "OperationRef",
    "Process",
    "ProcessResult",
    "ResourceOptions",
    "Sandbox",
    "SandboxDefaults",
    "SandboxStatus",
    "Secret",
    "Service",
    "ServiceProtocol",
    "ServiceVisibility",
    "Session",
    "StreamReader",
    "StreamWriter",
    "TerminalResult",
    "TerminalSession",
    "Waitable",
    "format_bytes",
    "format_cpu",
    "results",
    "wait",
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
]
