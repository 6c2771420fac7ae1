"""File transfer: unary ``ReadFile``/``WriteFile`` for ordinary sizes, and streams for large
files and the ``*_streaming`` methods.

Against sbxd the streams are tar streams of its own file API (``sbx.v1.ArchiveService``): sbx-init
resolves the path inside the sandbox's root, creates missing parent directories and replaces the
file atomically, and the image needs no shell. A server without that API (the hosted service)
answers UNIMPLEMENTED; the streams then go through ``StreamExec`` running ``/bin/sh`` (``cat``),
which needs a shell in the image; its write script does the same (temporary file in the same
directory, then ``mv``).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import threading
from typing import Any, AsyncIterable, Awaitable, Callable, Iterable

import grpc

from . import _channel, _errors, _exec, _loop
from ._channel import ServerAddress
from ._proto import sandbox_pb2, sbx_pb2, sbx_pb2_grpc
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


# ------------------------------------------------------------------------------------------------
# sbxd's file API: tar streams

TAR_BLOCK = 512
# Symbolic links followed when the path read is one (as ``cat`` would).
MAX_LINK_HOPS = 8
# A streamed write's contents are held here until their size is known (a tar header needs it);
# beyond this they spill to a temporary file.
SPOOL_IN_MEMORY_BYTES = 64 * 1024 * 1024

# Endpoints known to have no archive service; the streams go through StreamExec there.
_without_archives: set[tuple[str, bool]] = set()


class _NoArchiveService(Exception):
    """The server has no sbx.v1.ArchiveService."""


class _SymbolicLink(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def _archive_stub(address: ServerAddress) -> sbx_pb2_grpc.ArchiveServiceStub:
    return sbx_pb2_grpc.ArchiveServiceStub(_channel.channel(address))


def _octal_field(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256, for sizes beyond 8 GiB
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


class SingleFileTar:
    """The content of the one file in a tar stream, chunk by chunk as the stream arrives.

    GetArchive of a file sends one entry; a directory or another kind of entry is refused with the
    error a read of it gets, and a symbolic link raises ``_SymbolicLink`` with its target."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buffer = bytearray()
        self.state = "header"
        self.remaining = 0  # bytes of the current entry's body still to come
        self.padding = 0
        self.extended: dict[str, str] = {}  # the pax records of the next entry
        self.file_size: int | None = None
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer.extend(data)
        out: list[bytes] = []
        while True:
            if self.state == "header":
                if len(self.buffer) < TAR_BLOCK:
                    return out
                block = bytes(self.buffer[:TAR_BLOCK])
                del self.buffer[:TAR_BLOCK]
                if block == bytes(TAR_BLOCK):
                    self.state = "end"
                    continue
                self._header(block)
            elif self.state in ("pax", "skip"):
                if len(self.buffer) < self.remaining + self.padding:
                    return out
                body = bytes(self.buffer[: self.remaining])
                del self.buffer[: self.remaining + self.padding]
                if self.state == "pax":
                    self.extended = _pax_records(body)
                self.state = "header"
            elif self.state == "data":
                if not self.buffer and self.remaining:
                    return out
                take = min(len(self.buffer), self.remaining)
                if take:
                    out.append(bytes(self.buffer[:take]))
                    del self.buffer[:take]
                    self.remaining -= take
                if self.remaining == 0:
                    self.state = "padding"
            elif self.state == "padding":
                if len(self.buffer) < self.padding:
                    return out
                del self.buffer[: self.padding]
                self.finished = True
                self.state = "end"
            else:  # after the file: the trailer
                self.buffer.clear()
                return out

    def _header(self, block: bytes) -> None:
        size = _octal_field(block[124:136])
        if "size" in self.extended:
            size = int(self.extended["size"])
        kind = block[156:157]
        self.padding = (-size) % TAR_BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            self.state = "pax" if kind == b"x" else "skip"
            self.remaining = size
            return
        extended, self.extended = self.extended, {}
        if self.file_size is not None:
            raise SandboxFileError(
                f"read_file {self.path} failed: the server sent more than one entry",
                filepath=self.path,
                reason="CWSANDBOX_FILE_IO_FAILED",
                metadata={"filepath": self.path},
            )
        if kind in (b"0", b"\0", b"7"):
            self.file_size = size
            self.remaining = size
            self.state = "data"
        elif kind == b"5":
            raise SandboxFileError(
                f"{self.path}: is a directory",
                filepath=self.path,
                reason="CWSANDBOX_FILE_IS_DIRECTORY",
                metadata={"filepath": self.path},
            )
        elif kind == b"2":
            target = extended.get("linkpath") or block[157:257].split(b"\0", 1)[0].decode(
                "utf-8", "surrogateescape"
            )
            raise _SymbolicLink(target)
        else:
            raise SandboxFileError(
                f"{self.path}: not a regular file",
                filepath=self.path,
                reason="CWSANDBOX_FILE_IO_FAILED",
                metadata={"filepath": self.path},
            )

    def check_complete(self) -> None:
        if self.file_size is None or not self.finished:
            raise SandboxFileError(
                f"read_file {self.path} failed: the stream ended inside the file",
                filepath=self.path,
                reason="CWSANDBOX_FILE_TRUNCATED",
                metadata={"filepath": self.path},
            )


def _pax_records(body: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    while body:
        length_text, _, rest = body.partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            break
        record = body[len(length_text) + 1 : length]
        body = body[length:]
        key, _, value = record.rstrip(b"\n").partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
    return records


def tar_header(name: str, size: int, mode: int = 0o644) -> bytes:
    """A ustar header of one regular file (a pax record first when its name or size needs one)."""
    encoded = name.encode("utf-8", "surrogateescape")
    prefix = b""
    records = b""
    if len(encoded) > 100:
        records += _pax_record("path", encoded)
    if size >= 8**11:
        records += _pax_record("size", str(size).encode())
    if records:
        prefix = _ustar(b"././@PaxHeader", len(records), 0o644, b"x") + records
        prefix += bytes((-len(records)) % TAR_BLOCK)
    return prefix + _ustar(encoded[:100], min(size, 8**11 - 1), mode, b"0")


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _ustar(
    name: bytes, size: int, mode: int, kind: bytes, *, linkname: bytes = b"", mtime: int = 0
) -> bytes:
    header = bytearray(TAR_BLOCK)
    header[0 : len(name)] = name
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"%07o\0" % 0
    header[116:124] = b"%07o\0" % 0
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % max(0, min(mtime, 8**11 - 1))
    header[148:156] = b" " * 8
    header[156:157] = kind
    header[157 : 157 + len(linkname)] = linkname
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _translate(err: grpc.aio.AioRpcError, address: ServerAddress, sandbox_id: str, path: str, operation: str):
    if err.code() == grpc.StatusCode.UNIMPLEMENTED:
        _without_archives.add((address.target, address.secure))
        return _NoArchiveService()
    return _errors.translate(
        err, operation=operation, endpoint=address, sandbox_id=sandbox_id, filepath=path
    )


async def archive_read(
    address: ServerAddress,
    sandbox_id: str,
    path: str,
    *,
    timeout: float | None,
    on_chunk: Callable[[bytes], Awaitable[None]],
) -> None:
    """Streams the file at ``path`` through GetArchive. ``_NoArchiveService`` when the server
    has no such API (nothing was read then)."""
    if (address.target, address.secure) in _without_archives:
        raise _NoArchiveService()
    stub = _archive_stub(address)
    wanted = path
    for _ in range(MAX_LINK_HOPS + 1):
        reader = SingleFileTar(path)
        call = stub.GetArchive(
            sbx_pb2.GetArchiveRequest(sandbox_id=sandbox_id, path=wanted),
            timeout=timeout,
            metadata=_channel.call_metadata(),
        )
        try:
            async for chunk in call:
                for piece in reader.feed(chunk.data):
                    await on_chunk(piece)
            reader.check_complete()
            return
        except _SymbolicLink as link:
            call.cancel()
            wanted = posixpath.normpath(posixpath.join(posixpath.dirname(wanted), link.target))
        except grpc.aio.AioRpcError as err:
            raise _translate(err, address, sandbox_id, path, "read_file") from None
        except BaseException:
            call.cancel()
            raise
    raise SandboxFileError(
        f"{path}: more than {MAX_LINK_HOPS} symbolic links",
        filepath=path,
        reason="CWSANDBOX_FILE_IO_FAILED",
        metadata={"filepath": path},
    )


class Spool:
    """A streamed write's contents, held until their size is known (a tar header needs it).

    Reads are positional: an attempt the server refused may still have a read in flight on an
    executor thread while the fallback replays the same contents from the start."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
        self._lock = threading.Lock()
        self.size = 0

    def append(self, chunk: bytes) -> None:
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            self._file.write(chunk)
            self.size += len(chunk)

    def read_at(self, offset: int, count: int) -> bytes:
        with self._lock:
            self._file.seek(offset)
            return self._file.read(count)

    def reader(self) -> Callable[[], Awaitable[bytes]]:
        """Successive chunks from the start; b"" at the end."""
        loop = _loop.get_loop()
        offset = 0

        async def next_chunk() -> bytes:
            nonlocal offset
            chunk = await loop.run_in_executor(None, self.read_at, offset, WRITE_CHUNK_BYTES)
            offset += len(chunk)
            return chunk

        return next_chunk

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def spool(source: Callable[[], Awaitable[Any]]) -> Spool:
    """The chunks of ``source`` in a ``Spool`` (in memory up to a limit, then a file)."""
    spooled = Spool()
    try:
        while True:
            chunk = await source()
            if chunk is _EOF:
                break
            spooled.append(chunk)
    except BaseException:
        spooled.close()
        raise
    return spooled


async def archive_write(
    address: ServerAddress, sandbox_id: str, path: str, spooled: Spool, *, timeout: float | None
) -> None:
    """Writes the contents of ``spooled`` to ``path`` through PutArchive: a tar of the one file,
    extracted into its directory (created when missing)."""
    if (address.target, address.secure) in _without_archives:
        raise _NoArchiveService()
    directory, name = posixpath.split(path.rstrip("/") or path)
    if not name:
        raise SandboxFileError(
            f"{path}: is a directory",
            filepath=path,
            reason="CWSANDBOX_FILE_IS_DIRECTORY",
            metadata={"filepath": path},
        )
    size = spooled.size
    next_chunk = spooled.reader()

    async def messages() -> AsyncIterable[sbx_pb2.PutArchiveRequest]:
        yield sbx_pb2.PutArchiveRequest(sandbox_id=sandbox_id, path=directory or ".")
        yield sbx_pb2.PutArchiveRequest(data=tar_header(name, size))
        while True:
            chunk = await next_chunk()
            if not chunk:
                break
            yield sbx_pb2.PutArchiveRequest(data=chunk)
        yield sbx_pb2.PutArchiveRequest(data=bytes((-size) % TAR_BLOCK) + bytes(2 * TAR_BLOCK))

    try:
        await _archive_stub(address).PutArchive(
            messages(), timeout=timeout, metadata=_channel.call_metadata()
        )
    except grpc.aio.AioRpcError as err:
        raise _translate(err, address, sandbox_id, path, "write_file") from None


async def stream_read(
    address: ServerAddress,
    sandbox_id: str,
    path: str,
    *,
    timeout: float | None,
    on_chunk: Callable[[bytes], Awaitable[None]],
) -> None:
    try:
        await archive_read(address, sandbox_id, path, timeout=timeout, on_chunk=on_chunk)
        return
    except _NoArchiveService:
        pass
    await exec_read(address, sandbox_id, path, timeout=timeout, on_chunk=on_chunk)


async def exec_read(
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
    with await spool(source) as spooled:
        try:
            await archive_write(address, sandbox_id, path, spooled, timeout=timeout)
            return
        except _NoArchiveService:
            pass
        next_chunk = spooled.reader()

        async def replay() -> Any:
            chunk = await next_chunk()
            return chunk if chunk else _EOF

        await exec_write(address, sandbox_id, path, replay, timeout=timeout)


async def exec_write(
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
