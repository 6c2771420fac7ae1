"""``StreamReader`` and ``StreamWriter``: streams between the SDK's loop and the caller.

A reader is filled on the SDK's loop and consumed from any thread (``for chunk in reader``) or any
other event loop (``async for chunk in reader``). A writer (a process's stdin) is filled by the
caller and drained on the SDK's loop. Both queues live on the SDK's loop; the caller's side
crosses over with ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Generic, Iterator, TypeVar

from . import _loop
from .exceptions import SandboxExecutionError

if TYPE_CHECKING:
    from ._types import OperationRef

T = TypeVar("T")

_WAKE = object()

# The longest line lines() yields whole by default; longer ones come in pieces of this length.
DEFAULT_MAX_LINE_LENGTH = 1024 * 1024


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

    def lines(self, *, max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH) -> "LineReader[T]":
        """The rest of the stream line by line (``for`` or ``async for``), whatever its chunking.

        Each line keeps its ``"\\n"``; a last line without one comes as it is when the stream
        ends. A line longer than ``max_line_length`` (characters for ``str`` streams, bytes for
        ``bytes`` ones; ``None``: no limit) comes in pieces of that length, only the last of which
        ends with ``"\\n"``, so one endless line cannot exhaust memory. The line reader consumes
        this reader: iterate one or the other.
        """
        if max_line_length is not None and (
            isinstance(max_line_length, bool)
            or not isinstance(max_line_length, int)
            or max_line_length < 1
        ):
            raise ValueError("max_line_length must be a positive integer or None")
        return LineReader(self, max_line_length)

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


class LineReader(Generic[T]):
    """Lines of a ``StreamReader`` of ``str`` or ``bytes`` chunks (see ``StreamReader.lines``).

    An error in the stream is raised after the partial line received before it."""

    def __init__(self, reader: StreamReader[T], max_line_length: int | None) -> None:
        self._reader = reader
        self._limit = max_line_length
        self._parts: list[Any] = []  # the current line's text so far
        self._size = 0
        self._ready: collections.deque[Any] = collections.deque()
        self._error: BaseException | None = None
        self._ended = False

    def _feed(self, chunk: Any) -> None:
        newline = b"\n" if isinstance(chunk, (bytes, bytearray)) else "\n"
        start = 0
        while start < len(chunk):
            end = chunk.find(newline, start)
            complete = end >= 0
            segment = chunk[start : end + 1] if complete else chunk[start:]
            start += len(segment)
            self._parts.append(segment)
            self._size += len(segment)
            self._cut(content=self._size - (1 if complete else 0))
            if complete:
                self._emit()

    def _cut(self, content: int) -> None:
        """Emits pieces of an overlong line, keeping its remainder (and newline) buffered."""
        if self._limit is None or content <= self._limit:
            return
        text = self._parts[0][:0].join(self._parts)
        while content > self._limit:
            self._ready.append(text[: self._limit])
            text = text[self._limit :]
            content -= self._limit
        self._parts, self._size = [text], len(text)

    def _emit(self) -> None:
        if self._parts:
            self._ready.append(self._parts[0][:0].join(self._parts))
        self._parts, self._size = [], 0

    def _end(self, error: BaseException | None) -> None:
        self._ended = True
        self._error = error
        self._emit()

    def _take(self) -> T:
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopIteration

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while not self._ready and not self._ended:
            try:
                self._feed(next(self._reader))
            except StopIteration:
                self._end(None)
            except Exception as error:  # noqa: BLE001 - re-raised after the partial line
                self._end(error)
        return self._take()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._ready and not self._ended:
            try:
                self._feed(await self._reader.__anext__())
            except StopAsyncIteration:
                self._end(None)
            except Exception as error:  # noqa: BLE001 - re-raised after the partial line
                self._end(error)
        try:
            return self._take()
        except StopIteration:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Ends iteration and closes the underlying reader."""
        self._ready.clear()
        self._parts, self._size = [], 0
        self._ended = True
        self._reader.close()


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

