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
from ._discovery import Runner, RunnerResources, get_runner, list_runners
from ._function import RemoteFunction
from ._images import ImageInfo, LayerProgress, pull_image
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
from ._secret import ImagePullCredentials, Secret
from ._session import Session
from ._status import SandboxStatus
from ._storage import (
    FileSystemSnapshot,
    FileSystemSnapshotBucketConfig,
    FileSystemSnapshotBucketMode,
    FileSystemSnapshotOptions,
    FileSystemSnapshotStatus,
    FileSystemSnapshotTrigger,
    PlacementMode,
    PlacementSpillover,
    ScratchVolumeOptions,
)
from ._streams import LineReader, StreamReader, StreamWriter
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
    UnsupportedFeatureError,
)

__all__ = [
    "__version__",
    "EgressRule",
    "Endpoint",
    "EndpointAuth",
    "EndpointKind",
    "FileSystemSnapshot",
    "FileSystemSnapshotBucketConfig",
    "FileSystemSnapshotBucketMode",
    "FileSystemSnapshotOptions",
    "FileSystemSnapshotStatus",
    "FileSystemSnapshotTrigger",
    "ImageInfo",
    "ImagePullCredentials",
    "LayerProgress",
    "LineReader",
    "NetworkOptions",
    "OperationRef",
    "Process",
    "PlacementMode",
    "PlacementSpillover",
    "ProcessResult",
    "RemoteFunction",
    "ResourceOptions",
    "Runner",
    "RunnerResources",
    "Sandbox",
    "SandboxDefaults",
    "SandboxStatus",
    "ScratchVolumeOptions",
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
    "get_runner",
    "list_runners",
    "pull_image",
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
    "UnsupportedFeatureError",
]
