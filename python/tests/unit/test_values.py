"""Value types: NetworkOptions, EgressRule, ResourceOptions, Service, Secret, SandboxStatus."""

from __future__ import annotations

import pytest

from sbx import (
    EgressRule,
    NetworkOptions,
    ResourceOptions,
    SandboxStatus,
    Secret,
    Service,
    ServiceProtocol,
    ServiceVisibility,
)
from sbx._proto import sandbox_pb2
from sbx._resources import normalize_resources, parse_quantity


def test_egress_rule_validation():
    assert EgressRule(dns_name=" PyPI.org ").dns_name == "pypi.org"
    assert EgressRule(dns_name="*.pypi.org").dns_name == "*.pypi.org"
    for bad in ("", "*", "bad_name.com", "-x.com", "a" * 64 + ".com"):
        with pytest.raises(ValueError):
            EgressRule(dns_name=bad)


def test_network_options():
    n = NetworkOptions(deny_egress=True, deny_ingress=False)
    msg = n.to_proto()
    assert msg.HasField("deny_egress") and msg.deny_egress
    assert msg.HasField("deny_ingress") and not msg.deny_ingress
    with pytest.raises(ValueError):
        NetworkOptions(deny_egress=True, egress=[EgressRule(dns_name="a.com")])
    with pytest.raises(TypeError):
        NetworkOptions(egress="a.com")  # type: ignore[arg-type]
    assert NetworkOptions(egress=[{"dns_name": "a.com"}]).egress == (EgressRule(dns_name="a.com"),)


def test_network_legacy_egress_mode():
    assert NetworkOptions(egress_mode="internet").deny_egress is False
    assert NetworkOptions(egress_mode="NONE").deny_egress is True
    with pytest.raises(ValueError):
        NetworkOptions(egress_mode="user")
    with pytest.raises(ValueError):
        NetworkOptions(egress_mode="none", deny_egress=False)


def test_quantities():
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1Gi") == 1024**3
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("1e3") == 1000
    for bad in ("", "1 Gi", "abc", "-1", "1.2.3"):
        with pytest.raises(ValueError):
            parse_quantity(bad)
    with pytest.raises(TypeError):
        parse_quantity(2)  # type: ignore[arg-type]


def test_resource_forms():
    flat = normalize_resources({"cpu": "2", "memory": "2Gi"})
    assert flat.requests == flat.limits == {"cpu": "2", "memory": "2Gi"}
    nested = normalize_resources({"requests": {"cpu": "1"}, "limits": {"cpu": "4"}})
    assert (nested.requests, nested.limits) == ({"cpu": "1"}, {"cpu": "4"})
    one_side = ResourceOptions(limits={"memory": "1Gi"})
    assert one_side.requests == {"memory": "1Gi"}
    assert normalize_resources({}) is None
    with pytest.raises(ValueError, match="exceeds"):
        ResourceOptions(requests={"cpu": "4"}, limits={"cpu": "1"})
    with pytest.raises(ValueError):
        normalize_resources({"disk": "1Gi"})
    with pytest.raises(ValueError):
        normalize_resources({"cpu": "1", "requests": {"cpu": "1"}})
    with pytest.raises(TypeError):
        normalize_resources({"cpu": 2})
    with pytest.raises(TypeError):
        normalize_resources("2 cpus")  # type: ignore[arg-type]


def test_resource_gpu():
    r = normalize_resources({"cpu": "1", "gpu": 1})
    assert r.gpu == {"count": 1}
    msg = ResourceOptions(requests={"cpu": "1"}, gpu={"count": 2, "type": "A100"}).to_proto()
    assert msg.requests.gpu.count == 2 and msg.limits.gpu.type == "A100"
    with pytest.raises(ValueError):
        ResourceOptions(gpu={"count": 1, "type": "A100", "memory_gb": 80})
    with pytest.raises(ValueError):
        ResourceOptions(gpu={"count": 0})
    with pytest.raises(ValueError):
        ResourceOptions(gpu={"vendor": "x"})


def test_service():
    s = Service(port=8080, name="web", protocol="TCP", visibility="public")
    assert s.protocol is ServiceProtocol.TCP and s.visibility is ServiceVisibility.PUBLIC
    msg = s.to_proto()
    assert (msg.port, msg.name, msg.protocol, msg.visibility) == (
        8080,
        "web",
        sandbox_pb2.SERVICE_PROTOCOL_TCP,
        sandbox_pb2.VISIBILITY_PUBLIC,
    )
    for port in (0, 70000):
        with pytest.raises(ValueError):
            Service(port=port)
    with pytest.raises(ValueError):
        Service(port=80, visibility="private", endpoint={"kind": "https", "auth": "open"})


def test_secret():
    s = Secret(name="HF_TOKEN")
    assert (s.store, s.name, s.field, s.env_var) == ("default", "HF_TOKEN", "", "HF_TOKEN")
    assert Secret(name="HF_TOKEN", env_var="HUGGINGFACE_TOKEN").env_var == "HUGGINGFACE_TOKEN"
    for kwargs in ({"name": ""}, {"name": "x", "store": ""}, {"name": "x", "env_var": ""}):
        with pytest.raises(ValueError):
            Secret(**kwargs)


def test_sandbox_status():
    assert SandboxStatus.RUNNING == "running"
    assert str(SandboxStatus.COMPLETED) == "completed"
    assert SandboxStatus("terminated") is SandboxStatus.TERMINATED
    for status in SandboxStatus:
        assert SandboxStatus.from_proto(status.to_proto()) is status
    assert SandboxStatus.from_proto(99) is SandboxStatus.UNSPECIFIED
    assert SandboxStatus.from_proto(sandbox_pb2.STATE_PENDING) is SandboxStatus.PENDING
    with pytest.raises(ValueError):
        SandboxStatus("sleeping")


def test_formatting_helpers():
    from sbx import format_bytes, format_cpu

    assert format_bytes(17179869184) == "16.0 GiB"
    assert format_bytes(512) == "512 B"
    assert format_cpu(4000) == "4.0 vCPU"
