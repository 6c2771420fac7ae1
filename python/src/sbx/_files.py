"""File transfer: unary ``ReadFile``/``WriteFile`` for ordinary sizes, and streams through
``StreamExec`` (``cat``) for large files and the ``*_streaming`` methods.

The streaming helpers run ``/bin/sh`` in the sandbox, so they need a shell in the image. The write
script creates missing parent directories and replaces the file atomically (temporary file in the
same directory, then ``mv``), like ``WriteFile``.
"""

from __future__ import annotations

from typing import Any, AsyncIterable, Awaitable, Callable, Iterable

from . import _exec, _loop
from ._channel import ServerAddress
from ._proto import sandbox_pb2
from ._rpc import unary
from ._streams import _EOF
from .exceptions import SandboxFileError, SandboxResourceExhaustedError

# Unary RPCs carry files up to this size; larger ones go through a StreamExec stream.
UNARY_FILE_LIMIT_BYTES = 32 * 1024 * 1024
# read_file/write_file refuse more than this; use the *_streaming methods instead.
MAX_BUFFERED_FILE_BYTES = 256 * 1024 * 1024
WRITE_CHUNK_BYTES = 1024 * 1024

EXIT_NOT_FOUND = 2
EXIT_IS_DIRECTORY = 3

READ_SCRIPT = (
    'if [ -d "$1" ]; then echo "$1: is a directory" >&2; exit 3; fi; '
    'if [ ! -e "$1" ]; then echo "$1: no such file" >&2; exit 2; fi; '
    'exec cat -- "$1"'
)
WRITE_SCRIPT = (
    'if [ -d "$1" ]; then echo "$1: is a directory" >&2; exit 3; fi; '
    'd=$(dirname -- "$1") && mkdir -p -- "$d" || exit 1; '
    't="$d/.sbx-write.$$"; '
    'if cat > "$t" && mv -f -- "$t" "$1"; then exit 0; fi; '
    'rm -f -- "$t"; exit 1'
)


def read_command(path: str) -> list[str]:
    return ["/bin/sh", "-c", READ_SCRIPT, "sbx-read", path]


def write_command(path: str) -> list[str]:
    return ["/bin/sh", "-c", WRITE_SCRIPT, "sbx-write", path]


def too_large(path: str, size: int, operation: str) -> SandboxFileError:
    return SandboxFileError(
        f"{path} is too large for {operation} ({size} bytes; the limit is "
        f"{MAX_BUFFERED_FILE_BYTES} bytes); use {operation}_streaming",
        filepath=path,
        reason="CWSANDBOX_FILE_TOO_LARGE",
        metadata={
            "size_bytes": str(size),
            "max_size_bytes": str(MAX_BUFFERED_FILE_BYTES),
            "operation": operation,
            "filepath": path,
        },
    )


def exit_error(path: str, code: int | None, stderr: bytes, operation: str) -> SandboxFileError:
    text = stderr.decode("utf-8", errors="replace").strip()
    lowered = text.lower()
    if code == EXIT_NOT_FOUND:
        reason = "CWSANDBOX_FILE_NOT_FOUND"
    elif code == EXIT_IS_DIRECTORY:
        reason = "CWSANDBOX_FILE_IS_DIRECTORY"
    elif "permission denied" in lowered or "read-only file system" in lowered:
        reason = "CWSANDBOX_FILE_PERMISSION_DENIED"
    else:
        reason = "CWSANDBOX_FILE_IO_FAILED"
    detail = text or (f"exit code {code}" if code is not None else "no exit status")
    return SandboxFileError(
        f"{operation} {path} failed: {detail}", filepath=path, reason=reason, metadata={"filepath": path}
    )


async def stream_read(
    address: ServerAddress,
    sandbox_id: str,
    path: str,
    *,
    timeout: float | None,
    on_chunk: Callable[[bytes], Awaitable[None]],
) -> None:
    stderr = bytearray()

    async def on_stderr(data: bytes) -> None:
        if len(stderr) < 64 * 1024:
            stderr.extend(data)

    code = await _exec.stream_exec(
        address,
        sandbox_id,
        read_command(path),
        display_command=["cat", path],
        timeout=timeout,
        on_stdout=on_chunk,
        on_stderr=on_stderr,
    )
    if code != 0:
        raise exit_error(path, code, bytes(stderr), "read_file")


def chunk_source(source: Any) -> Callable[[], Awaitable[Any]]:
    """Adapts bytes, a sync iterable or an async iterable of bytes to a stdin source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        pieces = iter([data[i : i + WRITE_CHUNK_BYTES] for i in range(0, len(data), WRITE_CHUNK_BYTES)])

        async def from_bytes() -> Any:
            return next(pieces, _EOF)

        return from_bytes
    if isinstance(source, str):
        raise TypeError("write_file_streaming needs bytes, not str; encode the text first")
    if isinstance(source, AsyncIterable):
        iterator = source.__aiter__()

        async def from_async() -> Any:
            try:
                return _check_chunk(await iterator.__anext__())
            except StopAsyncIteration:
                return _EOF

        return from_async
    if isinstance(source, Iterable):
        sync_iter = iter(source)
        loop = _loop.get_loop()

        def pull() -> Any:
            return next(sync_iter, _EOF)

        async def from_sync() -> Any:
            item = await loop.run_in_executor(None, pull)
            return item if item is _EOF else _check_chunk(item)

        return from_sync
    raise TypeError(f"source must be bytes or an iterable of bytes, not {type(source).__name__}")


def _check_chunk(chunk: Any) -> bytes:
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"file chunks must be bytes, not {type(chunk).__name__}")
    return bytes(chunk)


async def stream_write(
    address: ServerAddress,
    sandbox_id: str,
    path: str,
    source: Callable[[], Awaitable[Any]],
    *,
    timeout: float | None,
) -> None:
    stderr = bytearray()

    async def on_stdout(data: bytes) -> None:
        return None

    async def on_stderr(data: bytes) -> None:
        if len(stderr) < 64 * 1024:
            stderr.extend(data)

    code = await _exec.stream_exec(
        address,
        sandbox_id,
        write_command(path),
        display_command=["write", path],
        timeout=timeout,
        on_stdout=on_stdout,
        on_stderr=on_stderr,
        stdin=source,
    )
    if code != 0:
        raise exit_error(path, code, bytes(stderr), "write_file")



def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def read_file(address: ServerAddress, sandbox_id: str, path: str, timeout: float) -> bytes:
    """``ReadFile``; a file too large for one message is streamed instead (up to the cap)."""
    try:
        msg = await unary(
            address,
            "ReadFile",
            sandbox_pb2.ReadFileRequest(sandbox_id=sandbox_id, path=path),
            timeout=timeout,
            sandbox_id=sandbox_id,
            filepath=path,
        )
        return bytes(msg.content)
    except SandboxFileError as error:
        if error.reason != "CWSANDBOX_FILE_TOO_LARGE":
            raise
        size = _int_or_none(error.metadata.get("size_bytes"))
        if size is not None and size > MAX_BUFFERED_FILE_BYTES:
            raise too_large(path, size, "read_file") from None
    except SandboxResourceExhaustedError:
        size = None
    data = bytearray()

    async def on_chunk(chunk: bytes) -> None:
        data.extend(chunk)
        if len(data) > MAX_BUFFERED_FILE_BYTES:
            raise too_large(path, len(data), "read_file")

    await stream_read(address, sandbox_id, path, timeout=timeout, on_chunk=on_chunk)
    if size is not None and len(data) < size:
        raise SandboxFileError(
            f"{path}: read {len(data)} of {size} bytes",
            filepath=path,
            reason="CWSANDBOX_FILE_TRUNCATED",
            metadata={"filepath": path, "size_bytes": str(size)},
        )
    return bytes(data)


async def write_file(
    address: ServerAddress, sandbox_id: str, path: str, data: bytes, timeout: float
) -> None:
    """``WriteFile`` up to the unary limit; larger contents (or a server that refuses the size)
    go through the streaming write."""
    if len(data) <= UNARY_FILE_LIMIT_BYTES:
        try:
            await unary(
                address,
                "WriteFile",
                sandbox_pb2.WriteFileRequest(sandbox_id=sandbox_id, path=path, content=data),
                timeout=timeout,
                sandbox_id=sandbox_id,
                filepath=path,
            )
            return
        except SandboxFileError as error:
            if error.reason != "CWSANDBOX_FILE_TOO_LARGE":
                raise
        except SandboxResourceExhaustedError:
            pass
    await stream_write(address, sandbox_id, path, chunk_source(data), timeout=timeout)
