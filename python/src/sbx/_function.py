"""``RemoteFunction``: a Python function decorated with ``@session.function()``.

On the hosted product each call runs the function in an ephemeral sandbox. sbx does not provide
remote functions yet: decorating works and validates like the hosted SDK, ``local()`` calls the
function here, and ``remote()``/``map()``/calling it raise ``UnsupportedFeatureError``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Generic, Iterable, Mapping, ParamSpec, TypeVar

from ._types import OperationRef
from .exceptions import AsyncFunctionError, unsupported

P = ParamSpec("P")
R = TypeVar("R")

FEATURE = "remote functions"


class RemoteFunction(Generic[P, R]):
    """A function that the hosted product runs in a sandbox of its own per call.

    ``remote(*args, **kwargs)`` (and calling the object) would give an ``OperationRef`` of the
    result, ``map(items)`` one per argument tuple; sbx raises ``UnsupportedFeatureError`` for
    both. ``local(*args, **kwargs)`` runs the function in this process.
    """

    def __init__(self, fn: Callable[P, R], options: Mapping[str, Any]) -> None:
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise AsyncFunctionError(
                f"{getattr(fn, '__qualname__', fn)!s} is async; remote functions must be plain "
                "functions"
            )
        if not callable(fn):
            raise TypeError(f"@session.function() decorates a function, not {type(fn).__name__}")
        self._fn = fn
        self.options = dict(options)
        functools.update_wrapper(self, fn)

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> OperationRef[R]:
        raise unsupported(FEATURE, f"{self._fn.__qualname__}.remote()")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> OperationRef[R]:
        return self.remote(*args, **kwargs)

    def map(self, items: Iterable[tuple[Any, ...]]) -> list[OperationRef[R]]:
        raise unsupported(FEATURE, f"{self._fn.__qualname__}.map()")

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<RemoteFunction {self._fn.__qualname__}>"
