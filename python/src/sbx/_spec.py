"""Resolution of a sandbox's configuration (defaults + explicit arguments) and the
``CreateSandboxRequest`` built from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ._channel import resolve_base_url
from ._defaults import DEFAULT_MAX_LIFETIME_SECONDS, SandboxDefaults, _check_poll_config
from ._network import NetworkOptions, Service, normalize_network, normalize_services
from ._proto import sandbox_pb2
from ._resources import ResourceOptions, normalize_resources
from ._secret import Secret, merge_secrets, normalize_pull_credentials, secrets_to_proto
from ._storage import (
    PlacementSpillover,
    normalize_placement_mode,
    normalize_snapshot_options,
    normalize_spillover,
    normalize_volumes,
)
from .exceptions import unsupported

PRIMARY_CONTAINER = "main"
MAX_LIFETIME_LIMIT = 2**31 - 1

# Parameters the hosted SDK removed in 1.x: passing one is a TypeError there too.
REMOVED_PARAMETERS = ("profile_ids", "profile_names", "s3_mount", "ports", "max_timeout_seconds")
# Hosted-product features that sbx does not provide, by parameter: what users know them as.
UNSUPPORTED_PARAMETERS = {
    "runner_ids": "runner placement",
    "placement_mode": "runner placement",
    "placement_spillover": "runner placement",
    "volumes": "scratch volumes",
    "file_system_snapshot": "file-system snapshots",
    "template_id": "sandbox templates",
    "image_pull_credentials": "private-registry credentials",
}


@dataclass
class SandboxConfig:
    command: str
    args: list[str]
    container_image: str
    base_url: str
    request_timeout_seconds: float
    poll_retry_budget_seconds: float
    poll_rpc_timeout_seconds: float
    max_lifetime_seconds: float | None
    tags: list[str] = field(default_factory=list)
    resources: ResourceOptions | None = None
    mounted_files: list[tuple[str, bytes]] = field(default_factory=list)
    network: NetworkOptions | None = None
    services: tuple[Service, ...] | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()


def check_removed(params: Mapping[str, Any]) -> None:
    for name in REMOVED_PARAMETERS:
        if params.get(name) is not None:
            raise TypeError(f"{name} is no longer supported (removed in the 1.x API)")


def _normalize_runner_ids(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError("runner_ids must be a list of strings, not a single string")
    ids = tuple(value)
    for item in ids:
        if not isinstance(item, str):
            raise TypeError(f"runner_ids items must be strings, not {type(item).__name__}")
    return ids


def _normalize_template_id(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("template_id must be a non-empty string")
    return value


_NORMALIZERS = {
    "runner_ids": _normalize_runner_ids,
    "placement_mode": normalize_placement_mode,
    "placement_spillover": normalize_spillover,
    "volumes": normalize_volumes,
    "file_system_snapshot": normalize_snapshot_options,
    "template_id": _normalize_template_id,
    "image_pull_credentials": normalize_pull_credentials,
}


def check_unsupported(params: Mapping[str, Any], defaults: SandboxDefaults) -> None:
    """Validates the hosted-only options as the hosted SDK does, then refuses any that is set:
    a bad value is a ``TypeError``/``ValueError``, a good one ``UnsupportedFeatureError``."""
    for name, feature in UNSUPPORTED_PARAMETERS.items():
        value = _NORMALIZERS[name](params.get(name))
        if value is None:
            value = getattr(defaults, name, None)
        if name == "placement_spillover" and value == PlacementSpillover.STRICT:
            value = None  # the only behaviour sbx has: a sandbox stays where it is placed
        if value is not None and value != ():
            raise unsupported(feature, name)


def normalize_mounted_files(files: Any) -> list[tuple[str, bytes]]:
    """``[{"mount_path": p, "file_content": c}, ...]`` or ``{p: c}``; str content is UTF-8."""
    if files is None:
        return []
    if isinstance(files, Mapping):
        items: Iterable[tuple[Any, Any]] = files.items()
    elif isinstance(files, (str, bytes)):
        raise TypeError("mounted_files must be a list of dicts or a {path: content} mapping")
    else:
        items = []
        for entry in files:
            if not isinstance(entry, Mapping):
                raise TypeError("each mounted file must be a dict with mount_path and file_content")
            path = entry.get("mount_path", entry.get("path"))
            content = entry.get("file_content", entry.get("content"))
            if path is None or content is None:
                raise ValueError("each mounted file needs 'mount_path' and 'file_content'")
            items.append((path, content))  # type: ignore[union-attr]
    out: list[tuple[str, bytes]] = []
    for path, content in items:
        if not isinstance(path, str) or not path:
            raise ValueError("mounted file paths must be non-empty strings")
        if isinstance(content, str):
            content = content.encode("utf-8")
        elif isinstance(content, (bytearray, memoryview)):
            content = bytes(content)
        elif not isinstance(content, bytes):
            raise TypeError(f"mounted file content must be bytes or str, not {type(content).__name__}")
        out.append((path, content))
    return out


def _pick(explicit: Any, default: Any) -> Any:
    return explicit if explicit is not None else default


def resolve_config(
    defaults: SandboxDefaults,
    *,
    command: str | None,
    args: Iterable[str] | None,
    container_image: str | None,
    tags: Iterable[str] | None,
    base_url: str | None,
    request_timeout_seconds: float | None,
    poll_retry_budget_seconds: float | None,
    poll_rpc_timeout_seconds: float | None,
    max_lifetime_seconds: float | None,
    resources: Any,
    mounted_files: Any,
    network: Any,
    services: Any,
    environment_variables: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    secrets: Any,
) -> SandboxConfig:
    if command is not None:
        if not isinstance(command, str) or not command:
            raise TypeError("command must be a non-empty string")
        # An explicit command has no implicit arguments (never the keep-alive's).
        resolved_args = [] if args is None else args
    else:
        command = defaults.command
        resolved_args = defaults.args if args is None else args
    if isinstance(resolved_args, (str, bytes)):
        raise TypeError("args must be a list of strings, not a single string")
    arg_list = list(resolved_args)
    for arg in arg_list:
        if not isinstance(arg, str):
            raise TypeError(f"args must be strings, not {type(arg).__name__}")

    request_timeout = float(_pick(request_timeout_seconds, defaults.request_timeout_seconds))
    if not math.isfinite(request_timeout) or request_timeout <= 0:
        raise ValueError("request_timeout_seconds must be a finite number > 0")
    budget = _pick(poll_retry_budget_seconds, defaults.poll_retry_budget_seconds)
    rpc_timeout = _pick(poll_rpc_timeout_seconds, defaults.poll_rpc_timeout_seconds)
    _check_poll_config(budget, rpc_timeout)

    lifetime = _pick(max_lifetime_seconds, defaults.max_lifetime_seconds)
    if lifetime is None:
        lifetime = DEFAULT_MAX_LIFETIME_SECONDS
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool):
        raise TypeError("max_lifetime_seconds must be a number")
    if not math.isfinite(lifetime) or lifetime < 1 or lifetime > MAX_LIFETIME_LIMIT:
        raise ValueError("max_lifetime_seconds must be at least 1 second")

    image = container_image or defaults.container_image
    if not isinstance(image, str) or not image.strip():
        raise ValueError("container_image must be a non-empty string")

    return SandboxConfig(
        command=command,
        args=arg_list,
        container_image=image,
        base_url=resolve_base_url(base_url, defaults.base_url),
        request_timeout_seconds=request_timeout,
        poll_retry_budget_seconds=float(budget),
        poll_rpc_timeout_seconds=float(rpc_timeout),
        max_lifetime_seconds=lifetime,
        tags=defaults.merge_tags(tags),
        resources=normalize_resources(resources if resources is not None else defaults.resources),
        mounted_files=normalize_mounted_files(mounted_files),
        network=normalize_network(network if network is not None else defaults.network),
        services=normalize_services(services if services is not None else defaults.services),
        environment_variables=_str_map(
            "environment_variables", defaults.merge_environment_variables(environment_variables)
        ),
        annotations=_str_map("annotations", defaults.merge_annotations(annotations)),
        secrets=merge_secrets(defaults.secrets, secrets),
    )


def _str_map(name: str, value: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{name} keys and values must be strings")
        out[key] = item
    return out


def create_request(config: SandboxConfig, request_id: str) -> sandbox_pb2.CreateSandboxRequest:
    container = sandbox_pb2.Container(
        name=PRIMARY_CONTAINER,
        image=config.container_image,
        command=config.command,
        args=config.args,
        environment_variables=config.environment_variables,
    )
    for path, content in config.mounted_files:
        container.files.append(sandbox_pb2.FileMount(path=path, content=content))
    if config.resources is not None:
        container.resource_requirements.CopyFrom(config.resources.to_proto())
    container.secret_stores.extend(secrets_to_proto(config.secrets))
    spec = sandbox_pb2.SandboxSpec(
        containers=[container],
        primary_container=PRIMARY_CONTAINER,
        tags=config.tags,
        annotations=config.annotations,
    )
    if config.max_lifetime_seconds is not None:
        spec.max_lifetime_seconds = int(config.max_lifetime_seconds)
    if config.network is not None:
        spec.network.CopyFrom(config.network.to_proto())
    for service in config.services or ():
        spec.services.append(service.to_proto())
    return sandbox_pb2.CreateSandboxRequest(
        sandbox=sandbox_pb2.Sandbox(spec=spec), request_id=request_id
    )
