"""Runner discovery against a real sbxd: the node reports itself."""

from __future__ import annotations

import pytest

from sbx import RunnerNotFoundError, get_runner, list_runners


def test_the_node_is_the_one_runner():
    [runner] = list_runners(include_resources=True)
    assert runner.runner_id and runner.healthy
    assert runner.max_cpu_millicores > 0 and runner.max_memory_bytes > 0
    assert runner.resources is not None
    assert 0 <= runner.resources.available_cpu_millicores <= runner.max_cpu_millicores
    assert list_runners(architecture="no-such-arch") == []
    assert get_runner(runner.runner_id, organization_id="").runner_id == runner.runner_id
    with pytest.raises(RunnerNotFoundError) as caught:
        get_runner("no-such-runner", organization_id="")
    assert caught.value.runner_id == "no-such-runner"
