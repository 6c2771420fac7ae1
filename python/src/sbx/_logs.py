"""``StreamLogs``: the main process's output as lines.

Lines end with ``"\\n"`` (a last partial line is delivered without one). With ``timestamps=True``
the server prefixes each line with its RFC 3339 time. With ``follow=True`` the stream resumes
after transient failures (at most 3 times in a row), from the last
``log_session_id``/``next_log_offset`` the server reported.
"""

from __future__ import annotations

import codecs
from datetime import datetime, timezone
from typing import Awaitable, Callable

import grpc
from . import _channel, _errors
from ._channel import ServerAddress
from ._proto import sandbox_pb2
from .exceptions import SandboxError, SandboxStreamTruncatedError

MAX_RESUMES = 3
_RECONNECT_FRESH = frozenset({"SESSION_NOT_FOUND", "REPLAY_GAP", "RUNNER_UNAVAILABLE", "RUNNER_DRAINING"})
_RECONNECT_RESUME = frozenset({"STREAM_INTERRUPTED"})
_RESUMABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)


class _LineSplitter:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        parts = (self._buffer + self._decoder.decode(data)).split("\n")
        self._buffer = parts.pop()
        return [part + "\n" for part in parts]

    def flush(self) -> list[str]:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        return [rest] if rest else []


async def stream_logs(
    address: ServerAddress,
    sandbox_id: str,
    *,
    follow: bool,
    tail_lines: int | None,
    since_time: datetime | None,
    timestamps: bool,
    timeout: float | None,
    emit: Callable[[str], Awaitable[None]],
) -> None:
    stub = _channel.sandbox_stub(address)
    splitter = _LineSplitter()
    session_id = ""
    offset = 0
    failures = 0
    while True:
        request = sandbox_pb2.StreamLogsRequest(
            sandbox_id=sandbox_id, follow=follow, timestamps=timestamps
        )
        if tail_lines is not None:
            request.tail_lines = tail_lines
        if since_time is not None:
            request.since_time.FromDatetime(since_time.astimezone(timezone.utc))
        if session_id:
            request.resume_log_session_id = session_id
            request.resume_log_offset = offset
        call = stub.StreamLogs(request, metadata=_channel.call_metadata(), timeout=timeout)
        reconnect = False
        try:
            async for entry in call:
                if entry.HasField("error"):
                    code = entry.error.code
                    if follow and code in _RECONNECT_RESUME | _RECONNECT_FRESH and failures < MAX_RESUMES:
                        if code in _RECONNECT_FRESH:
                            session_id, offset = "", 0
                        reconnect = True
                        break
                    if code == SandboxStreamTruncatedError.stream_code:
                        raise SandboxStreamTruncatedError(
                            f"log stream truncated: {entry.error.message}", reason=code
                        )
                    raise SandboxError(
                        f"log stream failed: {entry.error.message or code}", reason=code or None
                    )
                failures = 0
                if entry.log_session_id:
                    session_id = entry.log_session_id
                    offset = entry.next_log_offset
                for line in splitter.feed(entry.data):
                    await emit(line)
        except grpc.aio.AioRpcError as err:
            if follow and err.code() in _RESUMABLE_CODES and failures < MAX_RESUMES:
                reconnect = True
            else:
                raise _errors.translate(
                    err, operation="StreamLogs", endpoint=address, sandbox_id=sandbox_id
                ) from None
        finally:
            call.cancel()
        if not reconnect:
            break
        failures += 1
    for line in splitter.flush():
        await emit(line)
