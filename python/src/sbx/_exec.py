"""The ``StreamExec`` driver shared by ``exec``, ``shell`` and the streaming file operations.

Protocol: the client sends ``init``; without stdin it half-closes at once, with stdin it waits for
the server's ``ready`` (at most 5 s), then sends ``stdin`` frames of at most 64 KiB and finally
``close``. The server sends ``ready``, ``output`` frames, then one ``exit`` or ``error``.

A timeout cancels the call (the server kills the command's process tree when its stream is
cancelled) and raises ``SandboxTimeoutError``; the gRPC deadline is the timeout plus 5 s, a
backstop in case the cancellation itself is lost.
"""

from __future__ import annotations

import asyncio
import codecs
import shlex
import time
from typing import Any, Awaitable, Callable, Sequence

import grpc

from . import _channel, _errors
from ._channel import ServerAddress
from ._proto import sandbox_pb2
from ._streams import _EOF, StreamReader, StreamWriter, _Resize
from ._types import ProcessResult, TerminalResult
from .exceptions import (
    SandboxExecutionError,
    SandboxStreamBackpressureError,
    SandboxStreamTruncatedError,
    SandboxTimeoutError,
)

STDIN_CHUNK_BYTES = 64 * 1024
READY_TIMEOUT_SECONDS = 5.0
DEADLINE_MARGIN_SECONDS = 5.0

OutputHandler = Callable[[bytes], Awaitable[None]]
StdinSource = Callable[[], Awaitable[Any]]
# Waits until the sandbox runs (starting it if needed) and returns its id.
EnsureRunning = Callable[[], Awaitable[str]]


def describe(command: Sequence[str]) -> str:
    return shlex.join(command)


def with_cwd(command: Sequence[str], cwd: str) -> list[str]:
    """Runs ``command`` in ``cwd`` through ``/bin/sh`` (the wire has no working-directory field)."""
    return ["/bin/sh", "-c", f"cd {shlex.quote(cwd)} && exec {shlex.join(command)}"]


def _stream_error(error: sandbox_pb2.ExecStreamError) -> SandboxExecutionError:
    detail = error.message or "unknown"
    if error.code:
        detail = f"{detail} ({error.code})"
    message = f"Exec stream error: {detail}"
    if error.code == SandboxStreamBackpressureError.stream_code:
        return SandboxStreamBackpressureError(message, reason=error.code)
    if error.code == SandboxStreamTruncatedError.stream_code:
        return SandboxStreamTruncatedError(message, reason=error.code)
    return SandboxExecutionError(message, reason=error.code or None)


async def stream_exec(
    address: ServerAddress,
    sandbox_id: str,
    command: Sequence[str],
    *,
    display_command: Sequence[str] | None = None,
    timeout: float | None,
    on_stdout: OutputHandler,
    on_stderr: OutputHandler,
    stdin: StdinSource | None = None,
    tty: bool = False,
    width: int = 0,
    height: int = 0,
) -> int | None:
    """Runs ``command`` and returns its exit code (``None`` if the stream ended without one)."""
    shown = describe(display_command or command)
    stub = _channel.sandbox_stub(address)
    deadline = None if timeout is None else timeout + DEADLINE_MARGIN_SECONDS
    call = stub.StreamExec(metadata=_channel.call_metadata(), timeout=deadline)
    ready = asyncio.Event()
    started = time.monotonic()

    async def pump() -> None:
        wait = READY_TIMEOUT_SECONDS if timeout is None else min(READY_TIMEOUT_SECONDS, timeout)
        try:
            await asyncio.wait_for(ready.wait(), wait)
        except asyncio.TimeoutError:
            raise SandboxTimeoutError("stdin ready signal not received within timeout") from None
        assert stdin is not None
        while True:
            item = await stdin()
            if item is _EOF:
                await call.write(sandbox_pb2.ExecStreamRequest(close=sandbox_pb2.ExecStreamClose()))
                await call.done_writing()
                return
            if isinstance(item, _Resize):
                resize = sandbox_pb2.ExecStreamResize(width=item.width, height=item.height)
                await call.write(sandbox_pb2.ExecStreamRequest(resize=resize))
                continue
            view = memoryview(item)
            for offset in range(0, len(view), STDIN_CHUNK_BYTES):
                chunk = bytes(view[offset : offset + STDIN_CHUNK_BYTES])
                await call.write(sandbox_pb2.ExecStreamRequest(stdin=chunk))

    async def read_all() -> int | None:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                return None
            kind = msg.WhichOneof("message")
            if kind == "ready":
                ready.set()
            elif kind == "output":
                if msg.output.stream == sandbox_pb2.ExecStreamOutput.STREAM_STDERR and not tty:
                    await on_stderr(msg.output.data)
                else:
                    await on_stdout(msg.output.data)
            elif kind == "exit":
                return msg.exit.exit_code
            elif kind == "error":
                raise _stream_error(msg.error)

    def timed_out() -> SandboxTimeoutError:
        return SandboxTimeoutError(f"Command {shown} timed out after {timeout:g}s")

    reader = asyncio.ensure_future(read_all())
    pumper: asyncio.Future[None] | None = None
    finished = False
    try:
        init = sandbox_pb2.ExecStreamInit(
            sandbox_id=sandbox_id, command=list(command), tty=tty, tty_width=width, tty_height=height
        )
        await call.write(sandbox_pb2.ExecStreamRequest(init=init))
        if stdin is None:
            await call.done_writing()
        else:
            pumper = asyncio.ensure_future(pump())
        waiting: set[asyncio.Future[Any]] = {reader} | ({pumper} if pumper else set())
        while True:
            remaining = None if timeout is None else timeout - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                raise timed_out()
            done, _ = await asyncio.wait(
                waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done:
                result = reader.result()
                finished = True
                return result
            if pumper is not None and pumper in done:
                error = pumper.exception()
                if error is not None:
                    raise error
                waiting.discard(pumper)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
            raise timed_out() from None
        raise _errors.translate(
            err, operation="StreamExec", endpoint=address, sandbox_id=sandbox_id
        ) from None
    except (asyncio.InvalidStateError, grpc.aio.UsageError) as err:
        # Writing to a call the server has already finished; the reader has the real outcome.
        if reader.done() and not reader.cancelled():
            finished = reader.exception() is None
            return reader.result()
        raise SandboxExecutionError(f"exec stream for {shown} broke: {err}") from None
    finally:
        for task in (reader, pumper):
            if task is not None and not task.done():
                task.cancel()
        if not finished:
            call.cancel()
        for task in (reader, pumper):
            if task is not None:
                try:
                    await asyncio.shield(_settle(task))
                except asyncio.CancelledError:
                    pass


async def _settle(task: asyncio.Future[Any]) -> None:
    try:
        await task
    except BaseException:  # noqa: BLE001 - the outcome was already taken or is being discarded
        pass


async def run_process(
    address: ServerAddress,
    ensure_running: EnsureRunning,
    argv: list[str],
    wire: list[str],
    *,
    timeout: float,
    check: bool,
    stdout: StreamReader[str],
    stderr: StreamReader[str],
    stdin: StreamWriter | None,
    stats: dict[str, int],
) -> ProcessResult:
    """The body of ``Sandbox.exec``: streams output to the readers and builds the result."""
    stats["exec_count"] += 1
    out, err = bytearray(), bytearray()
    out_dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    err_dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def on_stdout(data: bytes) -> None:
        out.extend(data)
        text = out_dec.decode(data)
        if text:
            stdout._put_nowait(text)

    async def on_stderr(data: bytes) -> None:
        err.extend(data)
        text = err_dec.decode(data)
        if text:
            stderr._put_nowait(text)

    stream_error: BaseException | None = None
    try:
        sandbox_id = await ensure_running()
        code = await stream_exec(
            address,
            sandbox_id,
            wire,
            display_command=argv,
            timeout=timeout,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            stdin=stdin._get if stdin is not None else None,
        )
        if code is None:
            raise SandboxExecutionError(f"Command {describe(argv)} ended without an exit status")
    except asyncio.CancelledError:
        stats["exec_failures"] += 1
        raise
    except BaseException as error:
        stats["exec_failures"] += 1
        stream_error = error
        raise
    finally:
        for reader, decoder in ((stdout, out_dec), (stderr, err_dec)):
            tail = decoder.decode(b"", final=True)
            if tail:
                reader._put_nowait(tail)
            reader._finish(stream_error)
        if stdin is not None:
            stdin._fail()
    result = ProcessResult(
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        returncode=code,
        stdout_bytes=bytes(out),
        stderr_bytes=bytes(err),
        command=list(argv),
    )
    if code == 0:
        stats["exec_completed_ok"] += 1
    else:
        stats["exec_completed_nonzero"] += 1
        if check:
            raise SandboxExecutionError(
                f"Command {describe(argv)} failed with exit code {code}", exec_result=result
            )
    return result


async def run_terminal(
    address: ServerAddress,
    ensure_running: EnsureRunning,
    argv: list[str],
    width: int,
    height: int,
    output: StreamReader[bytes],
    stdin: StreamWriter,
) -> TerminalResult:
    """The body of ``Sandbox.shell``: a TTY exec without a deadline."""

    async def on_output(data: bytes) -> None:
        output._put_nowait(data)

    error: BaseException | None = None
    try:
        sandbox_id = await ensure_running()
        code = await stream_exec(
            address,
            sandbox_id,
            argv,
            timeout=None,
            on_stdout=on_output,
            on_stderr=on_output,
            stdin=stdin._get,
            tty=True,
            width=width,
            height=height,
        )
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        output._finish(error)
        stdin._fail()
    return TerminalResult(returncode=-1 if code is None else code, command=list(argv))
