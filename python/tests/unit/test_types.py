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


class _FinishesWhileChecked(concurrent.futures.Future):
    """A future that reports done from its ``flips_after``-th look on, as one does when it
    completes while ``wait`` is sorting its items."""

    def __init__(self, flips_after: int) -> None:
        super().__init__()
        self._looks = 0
        self._flips_after = flips_after

    def done(self) -> bool:
        self._looks += 1
        return self._looks > self._flips_after


class _Waitable:
    def __init__(self, future: concurrent.futures.Future) -> None:
        self._future = future

    def _waitable_future(self) -> concurrent.futures.Future:
        return self._future


@pytest.mark.parametrize("flips_after", range(6))
def test_wait_returns_every_item_exactly_once_when_one_finishes_meanwhile(flips_after):
    finished = concurrent.futures.Future()
    finished.set_result(None)
    items = [_Waitable(finished), _Waitable(_FinishesWhileChecked(flips_after))]
    done, pending = wait(items, num_returns=1)
    assert items[0] in done
    assert sorted(map(id, done + pending)) == sorted(map(id, items))


def test_wait_on_sandboxes_and_processes(fake):
    with Session(SandboxDefaults(tags=("w",))) as session:
        boxes = [session.sandbox() for _ in range(3)]
        done, pending = wait(boxes)
        assert pending == [] and all(b.status.value == "running" for b in boxes)
        procs = [boxes[0].exec(["sleep", "0.3"]), boxes[1].exec(["echo", "quick"])]
        done, pending = wait(procs, num_returns=1)
        assert isinstance(done[0], Process) and done[0].result().stdout == "quick\n"
        assert pending == [procs[0]]
