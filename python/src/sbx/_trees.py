"""Directory copies: ``Sandbox.upload_dir`` and ``Sandbox.download_dir`` over sbxd's
``sbx.v1.ArchiveService`` (tar streams).

Both stream: an upload reads one file piece at a time while the tar goes out, a download writes
each entry as its bytes arrive; neither holds a tree in memory.

A download's tar comes out of the sandbox and is hostile input. It is extracted only below the
destination: names that are absolute or contain ``..`` are refused, every directory on the way to
an entry is opened without following symbolic links (an archive cannot plant ``a -> /etc`` and
then write ``a/passwd``), symbolic links must point inside the destination, and hard links,
devices, FIFOs and sockets are refused. Files are written to a temporary name and renamed into
place, without setuid, setgid or sticky bits. A refused entry fails the download with a
``SandboxFileError`` naming it.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import threading
from typing import Any, AsyncIterable, Iterator

import grpc

from . import _channel, _errors, _files, _loop
from ._channel import ServerAddress
from ._files import TAR_BLOCK, _octal_field, _pax_record, _pax_records, _ustar
from ._proto import sbx_pb2
from .exceptions import SandboxFileError, UnsupportedFeatureError

_log = logging.getLogger("sbx")

CHUNK_BYTES = 1024 * 1024
# Bounds on what a hostile archive can make the client hold: one pax or GNU long-name record,
# one entry name, the nesting of a path.
MAX_META_BYTES = 1024 * 1024
MAX_NAME_BYTES = 4096
MAX_DEPTH = 256
TEMP_PREFIX = ".sbx-download-"

_REGULAR = (b"0", b"\0", b"7")
_META = (b"x", b"g", b"L", b"K")


def no_archive_service(what: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(
        f"{what}: this server does not provide directory copies (sbx.v1.ArchiveService, an sbx "
        "API); copy files one at a time with write_file/read_file",
        feature="directory copies",
    )


# ------------------------------------------------------------------------------------------------
# Upload: a local tree as a tar stream


def _entry_header(name: str, kind: bytes, *, size: int = 0, mode: int, mtime: int,
                  linkname: str = "") -> bytes:
    encoded = name.encode("utf-8", "surrogateescape")
    link = linkname.encode("utf-8", "surrogateescape")
    records = b""
    if len(encoded) > 100:
        records += _pax_record("path", encoded)
    if len(link) > 100:
        records += _pax_record("linkpath", link)
    if size >= 8**11:
        records += _pax_record("size", str(size).encode())
    prefix = b""
    if records:
        prefix = _ustar(b"././@PaxHeader", len(records), 0o644, b"x") + records
        prefix += bytes((-len(records)) % TAR_BLOCK)
    header = _ustar(encoded[:100], min(size, 8**11 - 1), mode, kind, linkname=link[:100], mtime=mtime)
    return prefix + header


def tree_tar(root: str) -> Iterator[bytes]:
    """The contents of the local directory ``root`` as tar bytes, in pieces of about
    ``CHUNK_BYTES``: directories, regular files and symbolic links (kept as links), depth first
    in name order. Devices, FIFOs and sockets are left out (logged)."""
    pending = bytearray()

    def take(full: bool) -> Iterator[bytes]:
        while len(pending) >= CHUNK_BYTES or (full and pending):
            piece = bytes(pending[:CHUNK_BYTES])
            del pending[:CHUNK_BYTES]
            yield piece

    stack: list[tuple[str, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        children = []
        for entry in entries:
            name = f"{prefix}{entry.name}"
            info = entry.stat(follow_symlinks=False)
            mtime = int(info.st_mtime)
            if stat.S_ISDIR(info.st_mode):
                children.append((entry.path, name))
            elif stat.S_ISLNK(info.st_mode):
                pending += _entry_header(
                    name, b"2", mode=stat.S_IMODE(info.st_mode), mtime=mtime,
                    linkname=os.readlink(entry.path),
                )
            elif stat.S_ISREG(info.st_mode):
                yield from take(False)
                yield from _file_entry(entry.path, name, pending)
            else:
                _log.warning("upload_dir: %s left out (not a file, directory or link)", entry.path)
        for path, name in children:
            info = os.stat(path, follow_symlinks=False)
            pending += _entry_header(
                name + "/", b"5", mode=stat.S_IMODE(info.st_mode), mtime=int(info.st_mtime)
            )
        # Pushed in reverse: the walk goes on depth first in name order.
        stack.extend((path, name + "/") for path, name in reversed(children))
        yield from take(False)
    pending += bytes(2 * TAR_BLOCK)
    yield from take(True)


def _file_entry(path: str, name: str, pending: bytearray) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    with os.fdopen(fd, "rb", buffering=0) as file:
        info = os.fstat(file.fileno())
        # The header promises this size: a file growing meanwhile is cut there, one shrinking is
        # padded with zeros.
        size = info.st_size
        pending += _entry_header(
            name, b"0", size=size, mode=stat.S_IMODE(info.st_mode), mtime=int(info.st_mtime)
        )
        left = size
        while left > 0:
            data = file.read(min(CHUNK_BYTES, left))
            if not data:
                break
            pending += data
            left -= len(data)
            while len(pending) >= CHUNK_BYTES:
                piece = bytes(pending[:CHUNK_BYTES])
                del pending[:CHUNK_BYTES]
                yield piece
        pending += bytes(left + (-size) % TAR_BLOCK)


async def upload(
    address: ServerAddress, sandbox_id: str, local_dir: str, remote_dir: str, *,
    timeout: float | None,
) -> None:
    if (address.target, address.secure) in _files._without_archives:
        raise no_archive_service("upload_dir()")
    loop = _loop.get_loop()
    pieces = tree_tar(local_dir)
    # The walk runs on executor threads; closing it must wait for a step still running there.
    walking = threading.Lock()
    failures: list[BaseException] = []
    call: Any = None

    def next_piece() -> bytes | None:
        with walking:
            return next(pieces, None)

    def close_walk() -> None:
        with walking:
            pieces.close()

    async def messages() -> AsyncIterable[sbx_pb2.PutArchiveRequest]:
        yield sbx_pb2.PutArchiveRequest(sandbox_id=sandbox_id, path=remote_dir)
        while True:
            try:
                piece = await loop.run_in_executor(None, next_piece)
            except Exception as error:  # noqa: BLE001 - raised to the caller below
                # A local failure (an unreadable file) ends the call: a tar cut short must not
                # look like a finished one to the server.
                failures.append(error)
                call.cancel()
                return
            if piece is None:
                return
            yield sbx_pb2.PutArchiveRequest(data=piece)

    stub = _files._archive_stub(address)
    call = stub.PutArchive(messages(), timeout=timeout, metadata=_channel.call_metadata())
    try:
        await call
    except grpc.aio.AioRpcError as err:
        if failures:
            raise failures[0] from None
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            _files._without_archives.add((address.target, address.secure))
            raise no_archive_service("upload_dir()") from None
        raise _errors.translate(
            err, operation="upload_dir", endpoint=address, sandbox_id=sandbox_id,
            filepath=remote_dir,
        ) from None
    except BaseException:
        if failures:
            raise failures[0] from None
        raise
    finally:
        await loop.run_in_executor(None, close_walk)


# ------------------------------------------------------------------------------------------------
# Download: a hostile tar stream extracted below a local directory


class _Refused(Exception):
    """An archive entry the extraction refuses; the message says why."""


def _clean_name(name: str) -> list[str]:
    """The components of an entry name below the destination (``[]``: the destination)."""
    if "\0" in name:
        raise _Refused("the name contains a NUL byte")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise _Refused(f"the name is longer than {MAX_NAME_BYTES} bytes")
    if name.startswith("/"):
        raise _Refused("the name is absolute")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Refused("the name contains '..'")
    if len(parts) > MAX_DEPTH:
        raise _Refused(f"the name is nested deeper than {MAX_DEPTH} directories")
    return parts


def _check_link_target(parts: list[str], target: str) -> None:
    """A link must resolve below the destination: relative, its '..' only leading and no more
    of them than the directories above the link (every directory on an entry's way is a real
    one, so climbing them stays inside)."""
    if not target or "\0" in target:
        raise _Refused("the symbolic link has no valid target")
    if target.startswith("/"):
        raise _Refused(f"the symbolic link points to the absolute path {target!r}")
    components = [c for c in target.split("/") if c not in ("", ".")]
    ups = 0
    while ups < len(components) and components[ups] == "..":
        ups += 1
    if ".." in components[ups:]:
        raise _Refused(f"the symbolic link target {target!r} has '..' after a name")
    if ups > len(parts) - 1:
        raise _Refused(f"the symbolic link points outside the destination ({target!r})")


class TreeExtractor:
    """Extracts a tar stream, fed in pieces, below ``local_dir`` (created when missing).

    Runs on an executor thread: every call does file-system work."""

    def __init__(self, local_dir: str, remote_dir: str) -> None:
        self.local_dir = local_dir
        self.remote_dir = remote_dir
        self._root: int | None = None
        self._buffer = bytearray()
        self._state = "header"
        self._remaining = 0
        self._padding = 0
        self._meta_kind = b""
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._entry = ""
        self._file: int | None = None
        self._file_parent: int | None = None
        self._file_temp = ""
        self._file_name = ""
        self._file_mode = 0
        self._file_mtime = 0
        self._file_parts: list[str] = []
        self._dirs: list[tuple[list[str], int, int]] = []
        # feed/finish run on executor threads; close may come from a cancelled download.
        self._lock = threading.Lock()
        self._parent_cache: tuple[tuple[str, ...], int] | None = None
        self.files = 0

    # -- errors ------------------------------------------------------------------------------

    def _refused(self, why: str) -> SandboxFileError:
        return SandboxFileError(
            f"download_dir {self.remote_dir}: refusing archive entry {self._entry!r}: {why}",
            filepath=self.remote_dir,
            metadata={"filepath": self.remote_dir, "entry": self._entry},
        )

    def _corrupt(self, why: str) -> SandboxFileError:
        return SandboxFileError(
            f"download_dir {self.remote_dir}: the archive from the sandbox is invalid: {why}",
            filepath=self.remote_dir,
            reason="CWSANDBOX_FILE_IO_FAILED",
            metadata={"filepath": self.remote_dir},
        )

    def _local_error(self, error: OSError, parts: list[str]) -> SandboxFileError:
        where = os.path.join(self.local_dir, *parts)
        return SandboxFileError(
            f"download_dir {self.remote_dir}: cannot write {where} (archive entry "
            f"{self._entry!r}): {error.strerror or error}",
            filepath=self.remote_dir,
            reason="CWSANDBOX_FILE_IO_FAILED",
            metadata={"filepath": self.remote_dir, "entry": self._entry},
        )

    # -- the tar stream ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        with self._lock:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._state == "header":
                if len(self._buffer) < TAR_BLOCK:
                    return
                block = bytes(self._buffer[:TAR_BLOCK])
                del self._buffer[:TAR_BLOCK]
                if block == bytes(TAR_BLOCK):
                    self._state = "end"
                    continue
                self._header(block)
            elif self._state == "meta":
                if len(self._buffer) < self._remaining + self._padding:
                    return
                body = bytes(self._buffer[: self._remaining])
                del self._buffer[: self._remaining + self._padding]
                self._meta(body)
                self._state = "header"
            elif self._state == "data":
                if not self._buffer:
                    return
                take = min(len(self._buffer), self._remaining)
                self._write(bytes(self._buffer[:take]))
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "padding"
            elif self._state == "padding":
                if len(self._buffer) < self._padding:
                    return
                del self._buffer[: self._padding]
                self._finish_file()
                self._state = "header"
            else:  # after the end-of-archive block: nothing more is read
                self._buffer.clear()
                return

    def _header(self, block: bytes) -> None:
        try:
            self._parse_header(block)
        except ValueError:
            raise self._corrupt("a header has a field that is not a number") from None

    def _parse_header(self, block: bytes) -> None:
        stored = _octal_field(block[148:156])
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != computed:
            raise self._corrupt("a header's checksum does not match")
        kind = block[156:157]
        size = _octal_field(block[124:136])
        if kind in _META:
            if size > MAX_META_BYTES:
                raise self._corrupt(f"an extended header larger than {MAX_META_BYTES} bytes")
            self._meta_kind, self._remaining = kind, size
            self._padding = (-size) % TAR_BLOCK
            self._state = "meta"
            return
        pax, self._pax = self._pax, {}
        long_name, self._long_name = self._long_name, None
        long_link, self._long_link = self._long_link, None
        name = block[0:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar":
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        self._entry = pax.get("path") or long_name or name.decode("utf-8", "surrogateescape")
        link = pax.get("linkpath") or long_link or block[157:257].split(b"\0", 1)[0].decode(
            "utf-8", "surrogateescape"
        )
        if "size" in pax:
            size = int(pax["size"])
        if size < 0:
            raise self._corrupt("a negative size")
        mode = _octal_field(block[100:108]) & 0o777
        mtime = _octal_field(block[136:148])
        try:
            parts = _clean_name(self._entry)
            self._begin(kind, parts, mode, mtime, link, size)
        except _Refused as refused:
            raise self._refused(str(refused)) from None

    def _meta(self, body: bytes) -> None:
        if self._meta_kind == b"x":
            self._pax = _pax_records(body)
        elif self._meta_kind == b"L":
            self._long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_kind == b"K":
            self._long_link = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        # b"g", global pax records, change nothing an entry of sbxd's relies on.

    def _skip_body(self, size: int) -> None:
        self._remaining, self._padding = size, (-size) % TAR_BLOCK
        self._state = "data" if size else "header"

    # -- the file system -----------------------------------------------------------------------

    def _open_root(self) -> int:
        if self._root is None:
            try:
                os.makedirs(self.local_dir, exist_ok=True)
                self._root = os.open(self.local_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as error:
                raise self._local_error(error, []) from None
        return self._root

    def _parent(self, parts: list[str]) -> int:
        """The directory holding ``parts[-1]``, opened component by component without following
        a symbolic link, created (0755) where missing."""
        key = tuple(parts[:-1])
        if self._parent_cache is not None and self._parent_cache[0] == key:
            return self._parent_cache[1]
        fd = os.dup(self._open_root())
        try:
            for index, part in enumerate(key):
                try:
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                      | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                      | os.O_CLOEXEC, dir_fd=fd)
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(key[: index + 1])
                        raise _Refused(f"{where} is a symbolic link or not a directory here") from None
                    raise
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        self._forget_parent()
        self._parent_cache = (key, fd)
        return fd

    def _forget_parent(self) -> None:
        if self._parent_cache is not None:
            os.close(self._parent_cache[1])
            self._parent_cache = None

    def _begin(self, kind: bytes, parts: list[str], mode: int, mtime: int, link: str,
               size: int) -> None:
        if kind == b"1":
            raise _Refused("hard links are not supported")
        if kind in (b"3", b"4", b"6"):
            raise _Refused("devices and FIFOs are not supported")
        if kind not in _REGULAR + (b"2", b"5"):
            raise _Refused(f"entries of type {kind!r} are not supported")
        if not parts:
            if kind != b"5":
                raise _Refused("it names the destination directory itself")
            self._open_root()
            self._skip_body(size)
            return
        if kind == b"2":
            _check_link_target(parts, link)
        try:
            parent = self._parent(parts)
            if kind == b"5":
                self._directory(parent, parts, mode, mtime)
                self._skip_body(size)
            elif kind == b"2":
                self._symlink(parent, parts[-1], link)
                self._skip_body(size)
            else:
                self._open_file(parent, parts, mode, mtime)
                self._remaining, self._padding = size, (-size) % TAR_BLOCK
                self._state = "data" if size else "padding"
        except OSError as error:
            raise self._local_error(error, parts) from None

    def _directory(self, parent: int, parts: list[str], mode: int, mtime: int) -> None:
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        except FileExistsError:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                raise _Refused("it exists here and is not a directory") from None
        # Modes and times of directories are applied at the end: adding entries changes the
        # time, and a read-only mode would stop them being added.
        self._dirs.append((parts, mode, mtime))

    def _symlink(self, parent: int, name: str, target: str) -> None:
        temp = TEMP_PREFIX + secrets.token_hex(8)
        os.symlink(target, temp, dir_fd=parent)
        try:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(temp, dir_fd=parent)
            raise
        self.files += 1

    def _open_file(self, parent: int, parts: list[str], mode: int, mtime: int) -> None:
        temp = TEMP_PREFIX + secrets.token_hex(8)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._file = os.open(temp, flags, 0o600, dir_fd=parent)
        self._file_parent = os.dup(parent)
        self._file_temp, self._file_name = temp, parts[-1]
        self._file_mode, self._file_mtime = mode, mtime
        self._file_parts = parts

    def _write(self, data: bytes) -> None:
        if self._file is None:
            return  # the body of an entry that has none on disk
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._file, view):]
        except OSError as error:
            raise self._local_error(error, self._file_parts) from None

    def _finish_file(self) -> None:
        if self._file is None:
            return
        fd, parent = self._file, self._file_parent
        assert parent is not None
        try:
            # SECURITY: a file out of a sandbox never becomes setuid, setgid or sticky here.
            os.fchmod(fd, self._file_mode & 0o777)
            os.utime(fd, (self._file_mtime, self._file_mtime))
            os.close(fd)
            self._file = None
            os.rename(self._file_temp, self._file_name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as error:
            if isinstance(error, IsADirectoryError):
                self._discard_file()
                raise self._refused("a directory of that name exists here") from None
            self._discard_file()
            raise self._local_error(error, self._file_parts) from None
        os.close(parent)
        self._file_parent = None
        self.files += 1

    def _discard_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if self._file_parent is not None:
            try:
                os.unlink(self._file_temp, dir_fd=self._file_parent)
            except OSError:
                pass
            os.close(self._file_parent)
            self._file_parent = None

    def finish(self) -> None:
        """The stream ended: it must have ended with the archive's end; directories get their
        modes and times."""
        with self._lock:
            self._finish()

    def _finish(self) -> None:
        if self._state != "end":
            raise SandboxFileError(
                f"download_dir {self.remote_dir}: the archive ended early",
                filepath=self.remote_dir,
                reason="CWSANDBOX_FILE_TRUNCATED",
                metadata={"filepath": self.remote_dir},
            )
        self._open_root()
        for parts, mode, mtime in reversed(self._dirs):
            self._entry = "/".join(parts)
            try:
                parent = self._parent(parts)
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, dir_fd=parent)
                try:
                    os.fchmod(fd, mode)
                    os.utime(fd, (mtime, mtime))
                finally:
                    os.close(fd)
            except _Refused as refused:
                raise self._refused(str(refused)) from None
            except OSError as error:
                raise self._local_error(error, parts) from None

    def close(self) -> None:
        """Releases descriptors and removes a partly written file."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        self._discard_file()
        self._forget_parent()
        if self._root is not None:
            os.close(self._root)
            self._root = None


async def download(
    address: ServerAddress, sandbox_id: str, remote_dir: str, local_dir: str, *,
    timeout: float | None,
) -> None:
    if (address.target, address.secure) in _files._without_archives:
        raise no_archive_service("download_dir()")
    loop = _loop.get_loop()
    extractor = TreeExtractor(local_dir, remote_dir)
    # "<dir>/." makes the archive's names relative to the directory, through a link to it too.
    wanted = remote_dir.rstrip("/") + "/."
    call = _files._archive_stub(address).GetArchive(
        sbx_pb2.GetArchiveRequest(sandbox_id=sandbox_id, path=wanted),
        timeout=timeout,
        metadata=_channel.call_metadata(),
    )
    try:
        async for chunk in call:
            await loop.run_in_executor(None, extractor.feed, chunk.data)
        await loop.run_in_executor(None, extractor.finish)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            _files._without_archives.add((address.target, address.secure))
            raise no_archive_service("download_dir()") from None
        raise _errors.translate(
            err, operation="download_dir", endpoint=address, sandbox_id=sandbox_id,
            filepath=remote_dir,
        ) from None
    finally:
        call.cancel()
        await loop.run_in_executor(None, extractor.close)
