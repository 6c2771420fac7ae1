"""Value types of hosted-product features sbx does not provide: scratch volumes, file-system
snapshots and runner placement.

They exist so that code written for the hosted SDK imports, builds and validates its options
unchanged; using one with a sandbox (or calling a snapshot method) raises
``UnsupportedFeatureError`` or ``SnapshotNotSupportedError`` naming the feature, never a silent
no-op.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from ._resources import parse_quantity


class PlacementMode(str, enum.Enum):
    """Where the hosted product places a sandbox: its serverless pool or a CKS cluster."""

    UNSPECIFIED = "unspecified"
    SERVERLESS = "serverless"
    CKS = "cks"

    def __str__(self) -> str:
        return self.value


class PlacementSpillover(str, enum.Enum):
    """Whether a sandbox that finds no room where it was placed may try the other pool once."""

    STRICT = "strict"
    CKS_THEN_SERVERLESS = "cks_then_serverless"
    SERVERLESS_THEN_CKS = "serverless_then_cks"

    def __str__(self) -> str:
        return self.value


def _enum_value(kind: type[enum.Enum], name: str, value: Any) -> Any:
    if isinstance(value, kind):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a {kind.__name__} or a string, not {type(value).__name__}")
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
        raise ValueError(f"{name} {value!r} is not one of {allowed}") from None


def normalize_placement_mode(value: Any) -> PlacementMode | None:
    return None if value is None else _enum_value(PlacementMode, "placement_mode", value)


def normalize_spillover(value: Any) -> PlacementSpillover | None:
    return None if value is None else _enum_value(PlacementSpillover, "placement_spillover", value)


def _check_text(owner: str, name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}.{name} must be a non-empty string")


def _check_size(owner: str, size: Any) -> None:
    if size is None:
        return
    if parse_quantity(size) <= 0:
        raise ValueError(f"{owner}.size must be a positive quantity such as '10Gi', not {size!r}")


def _check_mount_path(owner: str, mount_path: Any) -> None:
    _check_text(owner, "mount_path", mount_path)
    if not mount_path.startswith("/"):
        raise ValueError(f"{owner}.mount_path must be absolute, not {mount_path!r}")
    if mount_path.rstrip("/") == "":
        raise ValueError(f"{owner}.mount_path must not be the root directory")


@dataclass(frozen=True, kw_only=True)
class ScratchVolumeOptions:
    """A volume of ``size`` (a quantity such as ``"10Gi"``) mounted at ``mount_path``, optionally
    restored from a file-system snapshot. Hosted product only: sbx refuses it at use."""

    name: str
    mount_path: str
    size: str | None = None
    restore_from_snapshot_id: str | None = None

    def __post_init__(self) -> None:
        _check_text("ScratchVolumeOptions", "name", self.name)
        _check_mount_path("ScratchVolumeOptions", self.mount_path)
        _check_size("ScratchVolumeOptions", self.size)
        _check_text(
            "ScratchVolumeOptions", "restore_from_snapshot_id", self.restore_from_snapshot_id,
            optional=True,
        )


@dataclass(frozen=True, kw_only=True)
class FileSystemSnapshotOptions:
    """A snapshotted workspace: a scratch volume named ``name`` at ``mount_path``, restored from
    ``file_system_snapshot_id`` when given. Hosted product only: sbx refuses it at use."""

    mount_path: str
    size: str | None = None
    file_system_snapshot_id: str | None = None
    name: str = "workspace"

    def __post_init__(self) -> None:
        _check_text("FileSystemSnapshotOptions", "name", self.name)
        _check_mount_path("FileSystemSnapshotOptions", self.mount_path)
        _check_size("FileSystemSnapshotOptions", self.size)
        _check_text(
            "FileSystemSnapshotOptions", "file_system_snapshot_id", self.file_system_snapshot_id,
            optional=True,
        )

    def to_scratch_volume(self) -> ScratchVolumeOptions:
        return ScratchVolumeOptions(
            name=self.name,
            mount_path=self.mount_path,
            size=self.size,
            restore_from_snapshot_id=self.file_system_snapshot_id,
        )


class FileSystemSnapshotStatus(str, enum.Enum):
    UNSPECIFIED = "unspecified"
    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"

    def __str__(self) -> str:
        return self.value


class FileSystemSnapshotTrigger(str, enum.Enum):
    UNSPECIFIED = "unspecified"
    ON_DELETE = "on_delete"
    MANUAL = "manual"

    def __str__(self) -> str:
        return self.value


class FileSystemSnapshotBucketMode(str, enum.Enum):
    UNSPECIFIED = "unspecified"
    CW_MANAGED = "cw_managed"
    BRING_YOUR_OWN = "bring_your_own"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class FileSystemSnapshot:
    """A file-system snapshot record as the hosted product reports it."""

    file_system_snapshot_id: str
    status: FileSystemSnapshotStatus
    status_reason: str = ""
    size_bytes: int = 0
    source_sandbox_id: str = ""
    trigger: FileSystemSnapshotTrigger = FileSystemSnapshotTrigger.UNSPECIFIED
    request_id: str = ""
    object_bucket: str = ""
    source_volume_name: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "status", _enum_value(FileSystemSnapshotStatus, "status", self.status)
        )
        object.__setattr__(
            self, "trigger", _enum_value(FileSystemSnapshotTrigger, "trigger", self.trigger)
        )


@dataclass(frozen=True, kw_only=True)
class FileSystemSnapshotBucketConfig:
    """Where the hosted product archives an organization's snapshots."""

    mode: FileSystemSnapshotBucketMode = FileSystemSnapshotBucketMode.UNSPECIFIED
    bucket_name: str = ""
    region: str = ""
    effective_bucket_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _enum_value(FileSystemSnapshotBucketMode, "mode", self.mode))


def normalize_volumes(value: Any) -> tuple[ScratchVolumeOptions, ...] | None:
    """``volumes`` as given to a sandbox: a list of ``ScratchVolumeOptions`` or dicts."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError("volumes must be a list of ScratchVolumeOptions")
    out = []
    for item in value:
        if isinstance(item, Mapping):
            item = ScratchVolumeOptions(**item)
        elif not isinstance(item, ScratchVolumeOptions):
            raise TypeError(f"volumes items must be ScratchVolumeOptions, not {type(item).__name__}")
        out.append(item)
    return tuple(out)


def normalize_snapshot_options(value: Any) -> FileSystemSnapshotOptions | None:
    if value is None or isinstance(value, FileSystemSnapshotOptions):
        return value
    if isinstance(value, Mapping):
        return FileSystemSnapshotOptions(**value)
    raise TypeError(
        f"file_system_snapshot must be FileSystemSnapshotOptions or a dict, not {type(value).__name__}"
    )
