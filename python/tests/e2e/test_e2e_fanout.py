"""The RL reward fan-out (the hosted product's reward-function example): 50 sandboxes through a
session, each started by its first exec, harvested with wait(num_returns=1)."""

from __future__ import annotations

import pytest

from sbx import Sandbox, SandboxStatus, Session, wait

N = 50


@pytest.mark.smoke
def test_rl_reward_fanout(defaults, tag):
    completions = [
        "print(sum(range(10)))" if i % 4 else "raise SystemExit('wrong answer')" for i in range(N)
    ]
    rewards: dict[int, float] = {}
    with Session(defaults.with_overrides(tags=(tag, "rl-training"))) as session:
        owner = {}
        pending = []
        for i, code in enumerate(completions):
            process = session.sandbox().exec(["python", "-c", code], timeout_seconds=120)
            owner[id(process)] = i
            pending.append(process)
        while pending:
            done, pending = wait(pending, num_returns=1, timeout=600)
            assert done, "no completion within 10 minutes"
            for process in done:
                result = process.result()
                rewards[owner[id(process)]] = 1.0 if result.returncode == 0 else 0.0
                if result.returncode == 0:
                    assert result.stdout == "45\n"
        ids = [sb.sandbox_id for sb in Sandbox.list(tags=[tag, "rl-training"]).result()]
        assert len(ids) == N
    assert rewards == {i: (0.0 if i % 4 == 0 else 1.0) for i in range(N)}
    left = Sandbox.list(tags=[tag, "rl-training"]).result()
    assert left == []
    assert all(Sandbox.from_id(i).result().status is SandboxStatus.TERMINATED for i in ids[:5])
