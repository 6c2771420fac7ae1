"""OperationRef, results() and wait()."""

from __future__ import annotations

import concurrent.futures

import pytest

from sbx import OperationRef, Process, SandboxDefaults, Session, results, wait
from sbx import _loop


async def value_after(value, delay):
    import asyncio

    await asyncio.sleep(delay)
    return value


def ref(value, delay=0.0) -> OperationRef:
    return OperationRef(_loop.submit(value_after(value, delay)))


def test_operation_ref():
    r = ref(5, 0.05)
    assert not r.done()
    with pytest.raises(concurrent.futures.TimeoutError):
        r.result(timeout=0.001)
    assert r.result() == 5 and r.done()
    assert "done" in repr(r)


def test_results_helper():
    assert results(ref(1)) == 1
    assert results([ref(1, 0.02), ref(2), ref(3, 0.01)]) == [1, 2, 3]


def test_wait_helper():
    slow, fast = ref("slow", 0.3), ref("fast", 0.0)
    done, pending = wait([slow, fast], num_returns=1)
    assert done == [fast] and pending == [slow]
    done, pending = wait([slow, fast])
    assert done == [slow, fast] and pending == []
    done, pending = wait([ref("x", 5)], timeout=0.05)
    assert done == [] and len(pending) == 1
    with pytest.raises(ValueError):
        wait([fast], num_returns=0)


def test_wait_on_sandboxes_and_processes(fake):
    with Session(SandboxDefaults(tags=("w",))) as session:
        boxes = [session.sandbox() for _ in range(3)]
        done, pending = wait(boxes)
        assert pending == [] and all(b.status.value == "running" for b in boxes)
        procs = [boxes[0].exec(["sleep", "0.3"]), boxes[1].exec(["echo", "quick"])]
        done, pending = wait(procs, num_returns=1)
        assert isinstance(done[0], Process) and done[0].result().stdout == "quick\n"
        assert pending == [procs[0]]
