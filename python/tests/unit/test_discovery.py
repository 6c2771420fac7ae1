"""list_runners() and get_runner() against the fake's DiscoveryService, which (like sbxd)
ignores the request's filters: the SDK applies them."""

from __future__ import annotations

from datetime import timezone

import pytest

from fake_sbxd import fake_runner
from sbx import (
    CWSandboxAuthenticationError,
    Runner,
    RunnerNotFoundError,
    RunnerResources,
    ServiceVisibility,
    get_runner,
    list_runners,
)


@pytest.fixture
def runners(fake):
    fake.discovery.runners = [
        fake_runner("node-a"),
        fake_runner("node-b", healthy=False, arch="arm64", free_cpu=500),
        fake_runner("node-c", free_memory=1 << 30),
    ]
    return fake


def test_list_runners_reads_every_page(runners):
    found = list_runners()
    assert [r.runner_id for r in found] == ["node-a", "node-b", "node-c"]
    assert len(runners.service.calls_of("ListAvailableRunners")) == 3  # one runner per page
    first = found[0]
    assert isinstance(first, Runner)
    assert first.runner_group_id == "sbx" and first.healthy
    assert first.max_cpu_millicores == 8000 and first.max_memory_bytes == 16 << 30
    assert first.supported_architectures == ("amd64",)
    assert first.supported_service_visibilities == (ServiceVisibility.PUBLIC,)
    assert first.connected_at is not None and first.connected_at.tzinfo == timezone.utc
    assert first.resources is None  # not asked for
    assert "8.0 vCPU" in repr(first) and "16.0 GiB" in repr(first)


def test_list_runners_filters(runners):
    ids = lambda **kw: [r.runner_id for r in list_runners(**kw)]  # noqa: E731
    assert ids(healthy_only=True) == ["node-a", "node-c"]
    assert ids(architecture="arm64") == ["node-b"]
    assert ids(runner_group_id="elsewhere") == []
    assert ids(gpu_type="A100") == []
    assert ids(min_available_cpu_millicores=1000) == ["node-a", "node-c"]
    assert ids(min_available_memory_bytes=2 << 30) == ["node-a", "node-b"]
    assert ids(service_visibility="public") == ["node-a", "node-b", "node-c"]
    assert ids(service_visibility=ServiceVisibility.PRIVATE) == []
    with_resources = list_runners(include_resources=True)
    assert with_resources[1].resources == RunnerResources(
        available_cpu_millicores=500, available_memory_bytes=8 << 30,
        available_gpu_count=0, running_sandboxes=2)
    with pytest.raises(ValueError, match="min_available_cpu_millicores"):
        list_runners(min_available_cpu_millicores=-1)


def test_get_runner(runners):
    runner = get_runner("node-c", organization_id="")
    assert runner.runner_id == "node-c"
    assert runner.resources is not None and runner.resources.available_memory_bytes == 1 << 30
    with pytest.raises(RunnerNotFoundError) as caught:
        get_runner("node-z", organization_id="org")
    assert caught.value.runner_id == "node-z"
    assert caught.value.reason == "CWSANDBOX_RUNNER_NOT_FOUND"
    with pytest.raises(TypeError):
        get_runner("node-a")  # organization_id is required, as in the hosted SDK


def test_discovery_errors_keep_their_meaning(runners):
    runners.service.api_key = "secret"
    with pytest.raises(CWSandboxAuthenticationError):
        list_runners()
