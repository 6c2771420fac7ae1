"""``SandboxDefaults``: reusable configuration for sandboxes, typically shared by a ``Session``.

Merge rules when a sandbox is built from defaults plus explicit arguments: scalars — the explicit
value wins; ``tags`` — defaults first, then the explicit ones; ``environment_variables`` and
``annotations`` — dict merge, explicit keys win; ``secrets`` — concatenated (two different secrets
for one variable are an error); ``resources``, ``network``, ``services`` — the explicit value
replaces the default as a whole.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ._channel import DEFAULT_BASE_URL
from ._network import NetworkOptions, normalize_network, normalize_services, Service
from ._resources import ResourceOptions
from ._secret import Secret, merge_secrets
from ._storage import (
    FileSystemSnapshotOptions,
    PlacementMode,
    PlacementSpillover,
    ScratchVolumeOptions,
    normalize_placement_mode,
    normalize_snapshot_options,
    normalize_spillover,
    normalize_volumes,
)

DEFAULT_CONTAINER_IMAGE = "python:3.11"
DEFAULT_COMMAND = "/bin/sh"
# The keep-alive main process: PID 1 waits forever and exits 0 on SIGTERM/SIGINT, so stop() is
# quick and clean.
DEFAULT_ARGS: tuple[str, ...] = ("-c", 'trap "exit 0" TERM INT; sleep infinity & wait')
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300.0
DEFAULT_POLL_RETRY_BUDGET_SECONDS = 30.0
DEFAULT_POLL_RPC_TIMEOUT_SECONDS = 15.0
# Like the W&B wrapper of the hosted product: 12 h when the caller sets no lifetime.
DEFAULT_MAX_LIFETIME_SECONDS = 43200
DEFAULT_TEMP_DIR = "/tmp"

_REMOVED_KEYS = ("profile_ids", "profile_names")


def normalize_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)):
        raise TypeError("tags must be a list of strings, not a single string")
    out = tuple(tags)
    for tag in out:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, not {type(tag).__name__}")
    return out


def _check_poll_config(budget: float, rpc_timeout: float) -> None:
    if not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 0:
        raise ValueError("poll_retry_budget_seconds must be a finite number >= 0")
    if not isinstance(rpc_timeout, (int, float)) or not math.isfinite(rpc_timeout) or rpc_timeout <= 0:
        raise ValueError("poll_rpc_timeout_seconds must be a finite number > 0")


@dataclass(frozen=True)
class SandboxDefaults:
    """Default settings for sandboxes; every field can be overridden per sandbox."""

    container_image: str = DEFAULT_CONTAINER_IMAGE
    command: str = DEFAULT_COMMAND
    args: tuple[str, ...] = DEFAULT_ARGS
    base_url: str = DEFAULT_BASE_URL
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    poll_retry_budget_seconds: float = DEFAULT_POLL_RETRY_BUDGET_SECONDS
    poll_rpc_timeout_seconds: float = DEFAULT_POLL_RPC_TIMEOUT_SECONDS
    max_lifetime_seconds: float | None = None
    temp_dir: str = DEFAULT_TEMP_DIR
    tags: tuple[str, ...] = ()
    runner_ids: tuple[str, ...] | None = None
    placement_mode: PlacementMode | str | None = None
    placement_spillover: PlacementSpillover | str = PlacementSpillover.STRICT
    resources: ResourceOptions | dict[str, Any] | None = None
    network: NetworkOptions | None = None
    services: tuple[Service, ...] | None = None
    volumes: tuple[ScratchVolumeOptions, ...] | None = None
    file_system_snapshot: FileSystemSnapshotOptions | None = None
    secrets: tuple[Secret, ...] | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("tags", normalize_tags(self.tags))
        if isinstance(self.args, (str, bytes)):
            raise TypeError("args must be a sequence of strings, not a single string")
        set_("args", tuple(self.args))
        if self.runner_ids is not None:
            set_("runner_ids", tuple(self.runner_ids))
        _check_poll_config(self.poll_retry_budget_seconds, self.poll_rpc_timeout_seconds)
        set_("network", normalize_network(self.network))
        set_("services", normalize_services(self.services))
        if self.secrets is not None:
            set_("secrets", merge_secrets(self.secrets))
        # Hosted-only fields validate here as in the hosted SDK; a sandbox refuses them at use.
        set_("volumes", normalize_volumes(self.volumes))
        set_("file_system_snapshot", normalize_snapshot_options(self.file_system_snapshot))
        set_("placement_mode", normalize_placement_mode(self.placement_mode))
        set_("placement_spillover", normalize_spillover(self.placement_spillover))
        set_("environment_variables", dict(self.environment_variables or {}))
        set_("annotations", dict(self.annotations or {}))

    def merge_tags(self, additional: Iterable[str] | None) -> list[str]:
        return list(self.tags) + list(normalize_tags(additional))

    def merge_environment_variables(self, additional: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(self.environment_variables)
        merged.update(additional or {})
        return merged

    def merge_annotations(self, additional: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(self.annotations)
        merged.update(additional or {})
        return merged

    def with_overrides(self, **kwargs: Any) -> "SandboxDefaults":
        return dataclasses.replace(self, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SandboxDefaults":
        """Builds defaults from a mapping; unknown keys are ignored, ``None`` means "default"."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise TypeError(f"defaults must be a mapping, not {type(data).__name__}")
        for key in _REMOVED_KEYS:
            if key in data:
                raise TypeError(f"{key} is no longer supported")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            if value is None and key not in _OPTIONAL_FIELDS:
                continue
            if isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)


_OPTIONAL_FIELDS = frozenset(
    {
        "max_lifetime_seconds",
        "runner_ids",
        "placement_mode",
        "resources",
        "network",
        "services",
        "volumes",
        "file_system_snapshot",
        "secrets",
    }
)


def coerce_defaults(defaults: SandboxDefaults | Mapping[str, Any] | None) -> SandboxDefaults:
    if isinstance(defaults, SandboxDefaults):
        return defaults
    if defaults is None or isinstance(defaults, Mapping):
        return SandboxDefaults.from_dict(defaults)
    raise TypeError(f"defaults must be SandboxDefaults or a dict, not {type(defaults).__name__}")
