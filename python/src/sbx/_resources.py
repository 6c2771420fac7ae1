"""``ResourceOptions``: CPU, memory and GPU requests and limits (Kubernetes quantities)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from ._proto import sandbox_pb2

_QUANTITY = re.compile(r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_RESOURCE_KEYS = ("cpu", "memory")
_GPU_KEYS = ("count", "type", "memory_gb")


def parse_quantity(value: str) -> Decimal:
    """The numeric value of a Kubernetes quantity such as ``"500m"``, ``"2"`` or ``"256Mi"``."""
    if not isinstance(value, str):
        raise TypeError(f"resource quantities must be strings, not {type(value).__name__}")
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a valid quantity (e.g. '500m', '2', '256Mi')")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a valid quantity") from exc
    if suffix[:1] in ("e", "E") and suffix not in _SUFFIX:
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * _SUFFIX[suffix]


def _check_side(name: str, side: Mapping[str, Any] | None) -> dict[str, str] | None:
    if side is None:
        return None
    if not isinstance(side, Mapping):
        raise TypeError(f"resources {name} must be a dict, not {type(side).__name__}")
    out: dict[str, str] = {}
    for key, value in side.items():
        if key not in _RESOURCE_KEYS:
            raise ValueError(f"unknown resource {key!r} in {name}; use 'cpu' and 'memory'")
        parse_quantity(value)
        out[key] = value.strip()
    return out or None


def _check_gpu(gpu: Any) -> dict[str, Any] | None:
    if gpu is None:
        return None
    if isinstance(gpu, bool):
        raise TypeError("gpu must be a count or a dict")
    if isinstance(gpu, int):
        gpu = {"count": gpu}
    if not isinstance(gpu, Mapping):
        raise TypeError(f"gpu must be a count or a dict, not {type(gpu).__name__}")
    unknown = set(gpu) - set(_GPU_KEYS)
    if unknown:
        raise ValueError(f"unknown gpu keys {sorted(unknown)}; use {list(_GPU_KEYS)}")
    out = dict(gpu)
    for key in ("count", "memory_gb"):
        if key in out and out[key] is not None:
            if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] <= 0:
                raise ValueError(f"gpu {key} must be a positive integer")
    if out.get("type") is not None and out.get("memory_gb") is not None:
        raise ValueError("gpu takes 'type' or 'memory_gb', not both")
    return out or None


@dataclass(frozen=True, kw_only=True)
class ResourceOptions:
    """Resource requests and limits, e.g.
    ``ResourceOptions(requests={"cpu": "1", "memory": "256Mi"}, limits={"cpu": "2", "memory": "1Gi"})``.

    When only one side is given it is used for both. A request above its limit is an error.
    """

    requests: dict[str, str] | None = None
    limits: dict[str, str] | None = None
    gpu: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        requests = _check_side("requests", self.requests)
        limits = _check_side("limits", self.limits)
        if requests is None and limits is not None:
            requests = dict(limits)
        elif limits is None and requests is not None:
            limits = dict(requests)
        for key in _RESOURCE_KEYS:
            if requests and limits and key in requests and key in limits:
                if parse_quantity(requests[key]) > parse_quantity(limits[key]):
                    raise ValueError(
                        f"resources: {key} request {requests[key]} exceeds its limit {limits[key]}"
                    )
        object.__setattr__(self, "requests", requests)
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "gpu", _check_gpu(self.gpu))

    def _side_proto(self, side: dict[str, str] | None) -> sandbox_pb2.Resources:
        msg = sandbox_pb2.Resources(**(side or {}))
        if self.gpu:
            msg.gpu.count = int(self.gpu.get("count") or 0)
            if self.gpu.get("type"):
                msg.gpu.type = self.gpu["type"]
            elif self.gpu.get("memory_gb"):
                msg.gpu.memory_gb = int(self.gpu["memory_gb"])
        return msg

    def to_proto(self) -> sandbox_pb2.ResourceRequirements:
        return sandbox_pb2.ResourceRequirements(
            requests=self._side_proto(self.requests), limits=self._side_proto(self.limits)
        )


def normalize_resources(value: ResourceOptions | Mapping[str, Any] | None) -> ResourceOptions | None:
    """Accepts ``ResourceOptions``, ``{"requests": .., "limits": .., "gpu": ..}`` or the flat
    ``{"cpu": .., "memory": .., "gpu": ..}`` (requests == limits)."""
    if value is None or isinstance(value, ResourceOptions):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"resources must be ResourceOptions or dict, not {type(value).__name__}")
    if not value:
        return None
    keys = set(value)
    if keys <= {"requests", "limits", "gpu"}:
        return ResourceOptions(
            requests=value.get("requests"), limits=value.get("limits"), gpu=value.get("gpu")
        )
    if keys <= {"cpu", "memory", "gpu"}:
        flat = {k: v for k, v in value.items() if k in _RESOURCE_KEYS}
        return ResourceOptions(requests=flat or None, limits=flat or None, gpu=value.get("gpu"))
    unknown = sorted(keys - {"requests", "limits", "gpu", "cpu", "memory"})
    if unknown:
        raise ValueError(f"unknown resources keys {unknown}")
    raise ValueError("resources mixes the nested (requests/limits) and flat (cpu/memory) forms")


def resources_from_proto(msg: sandbox_pb2.Resources) -> dict[str, str] | None:
    out = {k: getattr(msg, k) for k in _RESOURCE_KEYS if getattr(msg, k)}
    return out or None


def gpu_from_proto(msg: sandbox_pb2.Resources) -> dict[str, Any] | None:
    if not msg.HasField("gpu") or not msg.gpu.count:
        return None
    selector = msg.gpu.WhichOneof("selector")
    return {
        "count": msg.gpu.count,
        "type": msg.gpu.type if selector == "type" else None,
        "memory_gb": msg.gpu.memory_gb if selector == "memory_gb" else None,
    }


def format_bytes(value: int) -> str:
    """Human-readable binary size: ``format_bytes(17179869184) == "16.0 GiB"``."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover - the loop always returns


def format_cpu(millicores: int) -> str:
    """CPU in vCPUs: ``format_cpu(4000) == "4.0 vCPU"``."""
    return f"{millicores / 1000:.1f} vCPU"
