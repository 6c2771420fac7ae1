"""The one background event loop on which every SDK operation runs.

Public methods are synchronous and return ``OperationRef``s; the work itself runs as coroutines on
this loop, in a daemon thread named ``sbx-event-loop``, using ``grpc.aio``. A forked child gets a
fresh loop (the parent's thread does not exist in the child).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

THREAD_NAME = "sbx-event-loop"


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()

    def running(self) -> bool:
        return (
            self._loop is not None
            and self._pid == os.getpid()
            and self._thread is not None
            and self._thread.is_alive()
        )

    def in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("a blocking sbx call was made from the SDK's own event loop")
        return self.submit(coro).result(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stops the loop after ``before_stop`` work; used at interpreter exit."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or not thread.is_alive() or self._pid != os.getpid():
                return
            self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


LOOP = _LoopThread()


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    return LOOP.submit(coro)


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    return LOOP.run_sync(coro, timeout)


def get_loop() -> asyncio.AbstractEventLoop:
    return LOOP.loop()
