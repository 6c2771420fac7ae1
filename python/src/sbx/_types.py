"""Operation handles and results: ``OperationRef``, ``Process``, ``ProcessResult``,
``TerminalSession``, ``TerminalResult``, and the ``results()`` / ``wait()`` helpers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generator, Generic, Iterable, Sequence, TypeVar, Union

from ._streams import StreamReader, StreamWriter

if TYPE_CHECKING:
    from ._sandbox import Sandbox

T = TypeVar("T")


class OperationRef(Generic[T]):
    """A handle to an operation running in the background.

    ``result(timeout=None)`` blocks until it finishes and returns its value or raises its error
    (a ``concurrent.futures.TimeoutError`` from ``result(timeout=...)`` does not cancel the
    operation). In async code, ``await ref`` gives the same value.
    """

    def __init__(self, future: concurrent.futures.Future[T]) -> None:
        self._future = future

    def result(self, timeout: float | None = None) -> T:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        """Cancels the operation if it has not finished; returns whether it was cancelled."""
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._future).__await__()

    def _waitable_future(self) -> concurrent.futures.Future[Any]:
        return self._future

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"<{type(self).__name__} {state}>"


@dataclass
class ProcessResult:
    """The outcome of ``Sandbox.exec``: decoded output, raw output, exit code and command."""

    stdout: str
    stderr: str
    returncode: int
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    command: list[str] = field(default_factory=list)


class Process(OperationRef[ProcessResult]):
    """A command running in a sandbox (from ``Sandbox.exec``).

    ``stdout``/``stderr`` stream ``str`` chunks as the command produces them; ``stdin`` is a
    ``StreamWriter`` when the command was started with ``stdin=True``, else ``None``.
    ``result()`` / ``await`` give the ``ProcessResult``.
    """

    def __init__(
        self,
        future: concurrent.futures.Future[ProcessResult],
        *,
        command: Sequence[str],
        stdout: StreamReader[str],
        stderr: StreamReader[str],
        stdin: StreamWriter | None,
    ) -> None:
        super().__init__(future)
        self._command = list(command)
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin

    @property
    def command(self) -> list[str]:
        return list(self._command)

    def wait(self, timeout: float | None = None) -> int:
        """Blocks until the command exits and returns its exit code."""
        return self.result(timeout).returncode

    def poll(self) -> int | None:
        """The exit code if the command has finished, else ``None``; never blocks."""
        if not self._future.done() or self._future.cancelled():
            return None
        error = self._future.exception()
        if error is None:
            return self._future.result().returncode
        exec_result = getattr(error, "exec_result", None)
        return getattr(exec_result, "returncode", None)

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def __repr__(self) -> str:
        return f"<Process command={self._command!r} returncode={self.poll()}>"


@dataclass(frozen=True)
class TerminalResult:
    returncode: int
    command: list[str] = field(default_factory=list)


class TerminalSession(OperationRef[TerminalResult]):
    """An interactive TTY session (from ``Sandbox.shell``): raw ``output`` bytes (stdout and
    stderr merged), ``stdin``, and ``resize(width, height)``."""

    def __init__(
        self,
        future: concurrent.futures.Future[TerminalResult],
        *,
        command: Sequence[str],
        output: StreamReader[bytes],
        stdin: StreamWriter,
    ) -> None:
        super().__init__(future)
        self._command = list(command)
        self.output = output
        self.stdin = stdin

    @property
    def command(self) -> list[str]:
        return list(self._command)

    @property
    def returncode(self) -> int | None:
        if not self._future.done() or self._future.cancelled() or self._future.exception():
            return None
        return self._future.result().returncode

    def resize(self, width: int, height: int) -> None:
        """Tells the terminal its new size (fire-and-forget)."""
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        self.stdin._resize(int(width), int(height))

    def wait(self, timeout: float | None = None) -> int:
        return self.result(timeout).returncode


Waitable = Union["Sandbox", OperationRef[Any], Process, TerminalSession]


def results(refs: OperationRef[T] | Iterable[OperationRef[T]]) -> T | list[T]:
    """Blocks for one reference (returns its value) or several (returns their values in order)."""
    if isinstance(refs, OperationRef):
        return refs.result()
    return [ref.result() for ref in refs]


def wait(
    waitables: Waitable | Sequence[Waitable],
    num_returns: int | None = None,
    timeout: float | None = None,
) -> tuple[list[Any], list[Any]]:
    """Waits until ``num_returns`` of ``waitables`` are done (all by default) or ``timeout``.

    A ``Sandbox`` counts as done once it is running (or has finished); operations, processes and
    terminal sessions once they completed, successfully or not. Returns ``(done, pending)`` with
    the caller's objects, in their original order.
    """
    items = [waitables] if not isinstance(waitables, (list, tuple)) else list(waitables)
    if num_returns is None:
        num_returns = len(items)
    if num_returns < 1:
        raise ValueError("num_returns must be at least 1")
    futures = [item._waitable_future() for item in items]  # type: ignore[union-attr]
    deadline = None if timeout is None else time.monotonic() + timeout
    target = min(num_returns, len(items))
    while True:
        done_count = sum(1 for f in futures if f.done())
        if done_count >= target:
            break
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        pending_futures = [f for f in futures if not f.done()]
        concurrent.futures.wait(
            pending_futures, timeout=remaining, return_when=concurrent.futures.FIRST_COMPLETED
        )
    # One snapshot of the flags: a future finishing between two separate checks would land in
    # neither list and the caller would lose it.
    finished = [f.done() for f in futures]
    done = [item for item, is_done in zip(items, finished) if is_done]
    pending = [item for item, is_done in zip(items, finished) if not is_done]
    return done, pending
