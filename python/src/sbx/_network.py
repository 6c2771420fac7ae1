"""Network value types: ``NetworkOptions``, ``EgressRule`` and exposed ``Service`` ports."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ._proto import sandbox_pb2

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and all(_DNS_LABEL.match(label) for label in name.split("."))


@dataclass(frozen=True, kw_only=True)
class EgressRule:
    """Allows outbound HTTPS (TCP 443) to ``dns_name`` (``"pypi.org"`` or ``"*.pypi.org"``)."""

    dns_name: str

    def __post_init__(self) -> None:
        if not isinstance(self.dns_name, str):
            raise TypeError("EgressRule.dns_name must be a string")
        name = self.dns_name.strip().lower()
        if name in ("", "*"):
            raise ValueError("EgressRule.dns_name must name a host, not be empty or '*'")
        bare = name[2:] if name.startswith("*.") else name
        if not _is_dns_subdomain(bare):
            raise ValueError(f"EgressRule.dns_name {self.dns_name!r} is not a valid DNS name")
        object.__setattr__(self, "dns_name", name)

    def to_proto(self) -> sandbox_pb2.EgressRule:
        return sandbox_pb2.EgressRule(dns_name=self.dns_name)


_EGRESS_MODES = {"internet": False, "none": True}


@dataclass(frozen=True, kw_only=True)
class NetworkOptions:
    """A sandbox's network policy.

    ``deny_egress=True``: no outbound traffic (loopback only). ``egress=[EgressRule(...)]``: only
    the listed destinations. ``deny_ingress=True``: no inbound traffic. Unset fields leave the
    server's default (outbound to public addresses, no inbound). ``egress_mode="internet"|"none"``
    is accepted as the older spelling of ``deny_egress=False|True``.
    """

    deny_egress: bool | None = None
    deny_ingress: bool | None = None
    egress: tuple[EgressRule, ...] | None = None
    egress_mode: str | None = None

    def __post_init__(self) -> None:
        egress = self.egress
        if egress is not None:
            if isinstance(egress, (str, bytes)):
                raise TypeError("NetworkOptions.egress must be a list of EgressRule, not a string")
            rules = tuple(
                rule if isinstance(rule, EgressRule) else _egress_from(rule) for rule in egress
            )
            object.__setattr__(self, "egress", rules)
        if self.egress_mode is not None:
            mode = str(self.egress_mode).lower()
            if mode not in _EGRESS_MODES:
                raise ValueError("NetworkOptions.egress_mode must be 'internet' or 'none'")
            deny = _EGRESS_MODES[mode]
            if self.deny_egress is not None and self.deny_egress != deny:
                raise ValueError("NetworkOptions.egress_mode contradicts deny_egress")
            object.__setattr__(self, "egress_mode", mode)
            object.__setattr__(self, "deny_egress", deny)
        if self.deny_egress and self.egress:
            raise ValueError("NetworkOptions: deny_egress=True cannot be combined with egress rules")

    def to_proto(self) -> sandbox_pb2.NetworkOptions:
        msg = sandbox_pb2.NetworkOptions()
        if self.deny_egress is not None:
            msg.deny_egress = bool(self.deny_egress)
        if self.deny_ingress is not None:
            msg.deny_ingress = bool(self.deny_ingress)
        for rule in self.egress or ():
            msg.egress.append(rule.to_proto())
        return msg


def _egress_from(value: Any) -> EgressRule:
    if isinstance(value, Mapping):
        return EgressRule(**value)
    raise TypeError(f"egress rules must be EgressRule or dict, not {type(value).__name__}")


def normalize_network(value: NetworkOptions | Mapping[str, Any] | None) -> NetworkOptions | None:
    if value is None or isinstance(value, NetworkOptions):
        return value
    if isinstance(value, Mapping):
        return NetworkOptions(**value)
    raise TypeError(f"network must be NetworkOptions or dict, not {type(value).__name__}")


class ServiceProtocol(str, enum.Enum):
    UNSPECIFIED = "unspecified"
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"

    def __str__(self) -> str:
        return self.value


class ServiceVisibility(str, enum.Enum):
    UNSPECIFIED = "unspecified"
    PUBLIC = "public"
    PRIVATE = "private"
    CUSTOM = "custom"

    def __str__(self) -> str:
        return self.value


class EndpointKind(str, enum.Enum):
    HTTPS = "https"

    def __str__(self) -> str:
        return self.value


class EndpointAuth(str, enum.Enum):
    OPEN = "open"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """A managed endpoint in front of a public service."""

    kind: EndpointKind | str = EndpointKind.HTTPS
    auth: EndpointAuth | str = EndpointAuth.OPEN

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EndpointKind(str(self.kind).lower()))
        object.__setattr__(self, "auth", EndpointAuth(str(self.auth).lower()))


_PROTOCOL_WIRE = {
    ServiceProtocol.UNSPECIFIED: sandbox_pb2.SERVICE_PROTOCOL_UNSPECIFIED,
    ServiceProtocol.TCP: sandbox_pb2.SERVICE_PROTOCOL_TCP,
    ServiceProtocol.UDP: sandbox_pb2.SERVICE_PROTOCOL_UDP,
    ServiceProtocol.SCTP: sandbox_pb2.SERVICE_PROTOCOL_SCTP,
}
_VISIBILITY_WIRE = {
    ServiceVisibility.UNSPECIFIED: sandbox_pb2.VISIBILITY_UNSPECIFIED,
    ServiceVisibility.PUBLIC: sandbox_pb2.VISIBILITY_PUBLIC,
    ServiceVisibility.PRIVATE: sandbox_pb2.VISIBILITY_PRIVATE,
    ServiceVisibility.CUSTOM: sandbox_pb2.VISIBILITY_CUSTOM,
}


@dataclass(frozen=True, kw_only=True)
class Service:
    """A port of the sandbox exposed for inbound traffic."""

    port: int
    name: str | None = None
    protocol: ServiceProtocol | str | None = None
    visibility: ServiceVisibility | str | None = None
    endpoint: Endpoint | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise TypeError("Service.port must be an int")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"Service.port {self.port} is outside 1-65535")
        if self.protocol is not None:
            object.__setattr__(self, "protocol", ServiceProtocol(str(self.protocol).lower()))
        if self.visibility is not None:
            object.__setattr__(self, "visibility", ServiceVisibility(str(self.visibility).lower()))
        if isinstance(self.endpoint, Mapping):
            object.__setattr__(self, "endpoint", Endpoint(**self.endpoint))
        if self.endpoint is not None:
            if self.visibility not in (None, ServiceVisibility.PUBLIC):
                raise ValueError("a Service with an endpoint must have public visibility")
            if self.protocol not in (None, ServiceProtocol.UNSPECIFIED, ServiceProtocol.TCP):
                raise ValueError("a Service with an endpoint must use TCP")

    def to_proto(self) -> sandbox_pb2.Service:
        msg = sandbox_pb2.Service(port=self.port, name=self.name or "")
        if self.protocol is not None:
            msg.protocol = _PROTOCOL_WIRE[self.protocol]  # type: ignore[index]
        if self.visibility is not None:
            msg.visibility = _VISIBILITY_WIRE[self.visibility]  # type: ignore[index]
        elif self.endpoint is not None:
            msg.visibility = sandbox_pb2.VISIBILITY_PUBLIC
        if self.endpoint is not None:
            msg.endpoint.kind = sandbox_pb2.ENDPOINT_KIND_HTTPS
            msg.endpoint.auth = sandbox_pb2.ENDPOINT_AUTH_OPEN
        return msg


def normalize_services(value: Sequence[Service | Mapping[str, Any]] | None) -> tuple[Service, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError("services must be a list of Service")
    return tuple(s if isinstance(s, Service) else Service(**s) for s in value)
