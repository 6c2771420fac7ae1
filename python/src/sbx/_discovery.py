"""Runner discovery: ``list_runners()`` and ``get_runner()`` over
``coreweave.sandbox.v1.DiscoveryService``.

An sbxd is one runner: it reports itself (its id, the node's capacity, what is still free).
Filters the server does not apply are applied here, so the result is the same whichever server
answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import grpc

from . import _channel, _errors, _loop
from ._channel import ServerAddress, parse_base_url, resolve_base_url
from ._defaults import DEFAULT_REQUEST_TIMEOUT_SECONDS
from ._network import ServiceVisibility, _VISIBILITY_WIRE
from ._proto import discovery_pb2, discovery_pb2_grpc
from ._resources import format_bytes, format_cpu
from .exceptions import (
    CWSandboxError,
    DiscoveryError,
    DiscoveryValidationError,
    RunnerNotFoundError,
    SandboxError,
    SandboxNotFoundError,
    SandboxValidationError,
)

PAGE_SIZE = 100
MAX_PAGES = 100
_VISIBILITY_FROM_WIRE = {wire: vis for vis, wire in _VISIBILITY_WIRE.items()}


@dataclass(frozen=True, kw_only=True)
class RunnerResources:
    """What a runner still has free, and how many sandboxes it runs."""

    available_cpu_millicores: int
    available_memory_bytes: int
    available_gpu_count: int
    running_sandboxes: int


@dataclass(frozen=True, kw_only=True)
class Runner:
    """A node that runs sandboxes, with its capabilities; ``resources`` is its current free
    capacity when it was asked for (``include_resources=True``), else ``None``."""

    runner_id: str
    runner_group_id: str
    tags: tuple[str, ...] = ()
    healthy: bool = False
    connected_at: datetime | None = None
    max_cpu_millicores: int = 0
    max_memory_bytes: int = 0
    max_gpu_count: int = 0
    supported_gpu_types: tuple[str, ...] = ()
    supported_architectures: tuple[str, ...] = ()
    supports_privileged: bool = False
    available_storage_classes: tuple[str, ...] = ()
    supported_service_visibilities: tuple[ServiceVisibility, ...] = ()
    is_shared: bool = False
    organization_id: str = ""
    resources: RunnerResources | None = None

    def __repr__(self) -> str:
        return (
            f"Runner(runner_id={self.runner_id!r}, healthy={self.healthy!r}, "
            f"cpu={format_cpu(self.max_cpu_millicores)}, "
            f"memory={format_bytes(self.max_memory_bytes)}, gpus={self.max_gpu_count})"
        )


def runner_from_proto(msg: discovery_pb2.AvailableRunner, *, with_resources: bool) -> Runner:
    caps = msg.capabilities
    connected = None
    if msg.connected_at.seconds or msg.connected_at.nanos:
        connected = msg.connected_at.ToDatetime(tzinfo=timezone.utc)
    resources = None
    if with_resources and msg.HasField("resources"):
        r = msg.resources
        resources = RunnerResources(
            available_cpu_millicores=r.available_cpu_millicores,
            available_memory_bytes=r.available_memory_bytes,
            available_gpu_count=r.available_gpu_count,
            running_sandboxes=r.running_sandboxes,
        )
    return Runner(
        runner_id=msg.runner_id,
        runner_group_id=msg.runner_group_id,
        tags=tuple(msg.tags),
        healthy=msg.healthy,
        connected_at=connected,
        max_cpu_millicores=caps.max_cpu_millicores,
        max_memory_bytes=caps.max_memory_bytes,
        max_gpu_count=caps.max_gpu_count,
        supported_gpu_types=tuple(caps.supported_gpu_types),
        supported_architectures=tuple(caps.supported_architectures),
        supports_privileged=caps.supports_privileged,
        available_storage_classes=tuple(caps.available_storage_classes),
        supported_service_visibilities=tuple(
            _VISIBILITY_FROM_WIRE[v] for v in caps.supported_service_visibilities
            if v in _VISIBILITY_FROM_WIRE
        ),
        is_shared=msg.is_shared,
        organization_id=msg.organization_id,
        resources=resources,
    )


def _translate(
    err: grpc.aio.AioRpcError, operation: str, address: ServerAddress, runner_id: str | None
) -> CWSandboxError:
    """Discovery's classes for what is about runners; connection and credential errors stay
    what they are for every call."""
    error = _errors.translate(err, operation=operation, endpoint=address)
    common = {"reason": error.reason, "metadata": error.metadata, "retry_delay": error.retry_delay}
    if isinstance(error, SandboxNotFoundError):
        return RunnerNotFoundError(str(error), runner_id=runner_id, **common)
    if isinstance(error, SandboxValidationError):
        return DiscoveryValidationError(
            str(error), field_violations=error.field_violations, **common
        )
    if type(error) is SandboxError:
        return DiscoveryError(str(error), **common)
    return error


def _stub() -> tuple[discovery_pb2_grpc.DiscoveryServiceStub, ServerAddress]:
    address = parse_base_url(resolve_base_url())
    return discovery_pb2_grpc.DiscoveryServiceStub(_channel.channel(address)), address


def _optional_text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value or None


def _optional_minimum(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def list_runners(
    *,
    runner_group_id: str | None = None,
    gpu_type: str | None = None,
    architecture: str | None = None,
    healthy_only: bool = False,
    include_resources: bool = False,
    min_available_cpu_millicores: int | None = None,
    min_available_memory_bytes: int | None = None,
    min_available_gpu_count: int | None = None,
    service_visibility: ServiceVisibility | str | None = None,
) -> list[Runner]:
    """The runners sandboxes can be placed on, filtered (blocks; not an ``OperationRef``).

    Against sbxd this is the node itself. ``include_resources=True`` fills ``Runner.resources``
    with the free capacity; any ``min_available_*`` filter implies it.
    """
    group = _optional_text("runner_group_id", runner_group_id)
    gpu = _optional_text("gpu_type", gpu_type)
    arch = _optional_text("architecture", architecture)
    minimums = {
        "available_cpu_millicores": _optional_minimum(
            "min_available_cpu_millicores", min_available_cpu_millicores
        ),
        "available_memory_bytes": _optional_minimum(
            "min_available_memory_bytes", min_available_memory_bytes
        ),
        "available_gpu_count": _optional_minimum(
            "min_available_gpu_count", min_available_gpu_count
        ),
    }
    minimums = {k: v for k, v in minimums.items() if v is not None}
    visibility = None
    if service_visibility is not None:
        visibility = ServiceVisibility(str(service_visibility).lower())
    with_resources = bool(include_resources) or bool(minimums)

    async def run() -> list[Runner]:
        stub, address = _stub()
        request = discovery_pb2.ListAvailableRunnersRequest(
            runner_group_id=group or "",
            gpu_type=gpu or "",
            architecture=arch or "",
            healthy_only=bool(healthy_only),
            page_size=PAGE_SIZE,
            view=discovery_pb2.RUNNER_VIEW_FULL if with_resources else discovery_pb2.RUNNER_VIEW_BASIC,
        )
        if visibility is not None:
            request.service_visibility = _VISIBILITY_WIRE[visibility]
        found: list[discovery_pb2.AvailableRunner] = []
        seen_tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            try:
                page = await stub.ListAvailableRunners(
                    request,
                    timeout=DEFAULT_REQUEST_TIMEOUT_SECONDS,
                    metadata=_channel.call_metadata(),
                )
            except grpc.aio.AioRpcError as err:
                raise _translate(err, "ListAvailableRunners", address, None) from None
            found.extend(page.runners)
            token = page.next_page_token
            if not token:
                break
            if token in seen_tokens:
                raise DiscoveryError("ListAvailableRunners repeated a page token")
            seen_tokens.add(token)
            request.page_token = token
        else:
            raise DiscoveryError(f"ListAvailableRunners returned more than {MAX_PAGES} pages")
        return [runner_from_proto(msg, with_resources=with_resources) for msg in found]

    runners = _loop.run_sync(run())
    out = []
    for runner in runners:
        if group and runner.runner_group_id != group:
            continue
        if gpu and gpu not in runner.supported_gpu_types:
            continue
        if arch and arch not in runner.supported_architectures:
            continue
        if healthy_only and not runner.healthy:
            continue
        if visibility is not None and visibility not in runner.supported_service_visibilities:
            continue
        if minimums and (
            runner.resources is None
            or any(getattr(runner.resources, key) < floor for key, floor in minimums.items())
        ):
            continue
        out.append(runner)
    return out


def get_runner(runner_id: str, *, organization_id: str) -> Runner:
    """One runner by id, with its free capacity (blocks). ``RunnerNotFoundError`` if unknown.

    ``organization_id`` scopes the lookup on the hosted product; sbxd has one tenant per API key
    and ignores it."""
    if not isinstance(runner_id, str) or not runner_id:
        raise ValueError("runner_id must be a non-empty string")
    if not isinstance(organization_id, str):
        raise TypeError("organization_id must be a string")

    async def run() -> Runner:
        stub, address = _stub()
        request = discovery_pb2.GetAvailableRunnerRequest(
            runner_id=runner_id, view=discovery_pb2.RUNNER_VIEW_FULL, organization_id=organization_id
        )
        try:
            msg = await stub.GetAvailableRunner(
                request, timeout=DEFAULT_REQUEST_TIMEOUT_SECONDS, metadata=_channel.call_metadata()
            )
        except grpc.aio.AioRpcError as err:
            raise _translate(err, "GetAvailableRunner", address, runner_id) from None
        return runner_from_proto(msg, with_resources=True)

    return _loop.run_sync(run())
