"""Unary RPC helper: one call to sbxd with credentials, a deadline and error translation."""

from __future__ import annotations

from typing import Any

import grpc

from . import _channel, _errors
from ._channel import ServerAddress


async def unary(
    address: ServerAddress,
    method: str,
    request: Any,
    *,
    timeout: float | None,
    sandbox_id: str | None = None,
    filepath: str | None = None,
) -> Any:
    stub = _channel.sandbox_stub(address)
    try:
        return await getattr(stub, method)(
            request, timeout=timeout, metadata=_channel.call_metadata()
        )
    except grpc.aio.AioRpcError as err:
        raise _errors.translate(
            err, operation=method, endpoint=address, sandbox_id=sandbox_id, filepath=filepath
        ) from None
