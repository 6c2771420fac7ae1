"""``StreamReader`` and ``StreamWriter``: streams between the SDK's loop and the caller.

A reader is filled on the SDK's loop and consumed from any thread (``for chunk in reader``) or any
other event loop (``async for chunk in reader``). A writer (a process's stdin) is filled by the
caller and drained on the SDK's loop. Both queues live on the SDK's loop; the caller's side
crosses over with ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generic, Iterator, TypeVar

from . import _loop
from .exceptions import SandboxExecutionError

if TYPE_CHECKING:
    from ._types import OperationRef

T = TypeVar("T")

_WAKE = object()


class StreamReader(Generic[T]):
    """An iterator over a stream's items (``str`` chunks for exec output, ``bytes`` for files).

    Iterate synchronously or with ``async for``. An error in the stream is raised to the consumer
    and ends the iteration. ``close()`` stops the iteration (and the producer, where that makes
    sense: a file read or a log stream is cancelled; an exec keeps running).
    """

    def __init__(self, *, maxsize: int = 0, on_close: Callable[[], None] | None = None) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._ended = False
        self._error: BaseException | None = None
        self._closed = False
        self._on_close = on_close

    # -- producer side (SDK loop) ---------------------------------------------------------------

    async def _put(self, item: T) -> None:
        if not self._closed and not self._ended:
            await self._queue.put(item)

    def _put_nowait(self, item: T) -> None:
        if not self._closed and not self._ended:
            self._queue.put_nowait(item)

    def _finish(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._error = error
        if not self._queue.full():
            self._queue.put_nowait(_WAKE)

    # -- consumer side ---------------------------------------------------------------------------

    async def _next(self) -> T:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._queue.empty() and self._ended:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            item = await self._queue.get()
            if item is _WAKE:
                continue
            return item

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return _loop.run_sync(self._next())
        except StopAsyncIteration:
            raise StopIteration from None

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await asyncio.wrap_future(_loop.submit(self._next()))

    def close(self) -> None:
        """Ends iteration (idempotent); cancels the producer where it has one."""
        if self._closed:
            return
        self._closed = True

        def wake() -> None:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_WAKE)

        _loop.get_loop().call_soon_threadsafe(wake)
        if self._on_close is not None:
            self._on_close()

    @property
    def closed(self) -> bool:
        return self._closed


class _Resize:
    __slots__ = ("width", "height")

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height


_EOF = object()


class StreamWriter:
    """A process's stdin. ``write()`` returns an ``OperationRef`` that completes once the data is
    queued; the queue holds 16 writes, so a fast writer waits for the process (backpressure)."""

    QUEUE_SIZE = 16

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(self.QUEUE_SIZE)
        self._closed = False
        self._failed = False

    def _check_open(self) -> None:
        if self._failed:
            raise SandboxExecutionError("Cannot write to stdin: stream has failed")
        if self._closed:
            raise SandboxExecutionError("Cannot write to stdin: stream is closed")

    def write(self, data: bytes) -> "OperationRef[None]":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"stdin data must be bytes, not {type(data).__name__}")
        self._check_open()
        return _ref(self._enqueue(bytes(data)))

    def writeline(self, text: str, encoding: str = "utf-8") -> "OperationRef[None]":
        return self.write((text + "\n").encode(encoding))

    def close(self) -> "OperationRef[None]":
        """Sends EOF after everything written so far. Idempotent."""
        if self._closed or self._failed:
            return _ref(_noop())
        self._closed = True
        return _ref(self._enqueue(_EOF))

    @property
    def closed(self) -> bool:
        return self._closed or self._failed

    # -- SDK loop side ---------------------------------------------------------------------------

    async def _enqueue(self, item: Any) -> None:
        if self._failed:
            if item is _EOF:
                return
            raise SandboxExecutionError("Cannot write to stdin: stream has failed")
        await self._queue.put(item)

    def _resize(self, width: int, height: int) -> None:
        if self._failed:
            raise SandboxExecutionError("Cannot resize: the terminal session has ended")
        _loop.submit(self._enqueue(_Resize(width, height)))

    async def _get(self) -> Any:
        return await self._queue.get()

    def _fail(self) -> None:
        self._failed = True
        while not self._queue.empty():
            self._queue.get_nowait()


async def _noop() -> None:
    return None


def _ref(coro: Any) -> "OperationRef[None]":
    from ._types import OperationRef

    return OperationRef(_loop.submit(coro))

