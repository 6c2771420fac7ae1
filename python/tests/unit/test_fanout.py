"""The RL reward fan-out of the hosted product's examples: one lazily started sandbox per
completion, started concurrently by its first exec, harvested with wait(num_returns=1)."""

from __future__ import annotations

from sbx import SandboxDefaults, Session, wait

from fake_sbxd import S

N = 50


def reward_codes():
    for i in range(N):
        yield i, ("print(sum(range(10)))" if i % 3 else "raise SystemExit(1)")


def test_rl_reward_fanout(fake):
    defaults = SandboxDefaults(container_image="python:3.11", max_lifetime_seconds=600,
                               tags=("rl-training", "job-42"))
    rewards = {}
    with Session(defaults) as session:
        pending = []
        owner = {}
        for i, code in reward_codes():
            process = session.sandbox().exec(["python", "-c", code], timeout_seconds=60)
            owner[id(process)] = i
            pending.append(process)
        assert session.sandbox_count == N
        while pending:
            done, pending = wait(pending, num_returns=1)
            for process in done:
                result = process.result()
                rewards[owner[id(process)]] = 1.0 if result.returncode == 0 else 0.0
                if result.returncode == 0:
                    assert result.stdout == "45\n"
    assert rewards == {i: (0.0 if i % 3 == 0 else 1.0) for i in range(N)}
    assert len(fake.service.sandboxes) == N
    assert all(sb.state == S.STATE_TERMINATED for sb in fake.service.sandboxes.values())
    assert all(list(sb.spec.tags) == ["rl-training", "job-42"] for sb in fake.service.sandboxes.values())
