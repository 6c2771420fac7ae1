"""Files: read_file/write_file (binary, relative, large with the streaming fallback), the
streaming variants, mounted files, file errors."""

from __future__ import annotations

import pytest

from sbx import Sandbox, SandboxFileError, StreamReader
from sbx import _files, _loop


@pytest.fixture
def sandbox(fake):
    sb = Sandbox.run(mounted_files=[{"mount_path": "/etc/app.conf", "file_content": "mode=test\n"}])
    sb.wait()
    yield sb
    sb.stop(missing_ok=True).result()


def test_binary_roundtrip(fake, sandbox):
    data = bytes(range(256)) * 4
    assert sandbox.write_file("/tmp/blob.bin", data).result() is None
    assert sandbox.read_file("/tmp/blob.bin").result() == data
    assert fake.service.calls_of("WriteFile")[0].content == data


def test_empty_file(sandbox):
    sandbox.write_file("/tmp/empty", b"").result()
    assert sandbox.read_file("/tmp/empty").result() == b""


def test_relative_paths_go_to_the_server_as_given(fake, sandbox):
    sandbox.write_file("hello.txt", b"hi").result()
    assert fake.service.calls_of("WriteFile")[-1].path == "hello.txt"
    assert sandbox.read_file("hello.txt").result() == b"hi"


def test_contents_must_be_bytes(sandbox):
    with pytest.raises(TypeError, match="encode"):
        sandbox.write_file("/tmp/x", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sandbox.read_file("")
    assert sandbox.write_file("/tmp/x", bytearray(b"ok")).result() is None


def test_missing_file_and_directory(sandbox):
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/nope").result()
    assert info.value.reason == "CWSANDBOX_FILE_NOT_FOUND"
    assert info.value.filepath == "/nope"
    sandbox.write_file("/tmp/d/f", b"x").result()
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/tmp/d").result()
    assert info.value.reason == "CWSANDBOX_FILE_IS_DIRECTORY"


def test_mounted_files_are_readable_and_read_only(sandbox):
    assert sandbox.read_file("/etc/app.conf").result() == b"mode=test\n"
    with pytest.raises(SandboxFileError) as info:
        sandbox.write_file("/etc/app.conf", b"changed").result()
    assert info.value.reason == "CWSANDBOX_FILE_PERMISSION_DENIED"


def test_large_files_fall_back_to_a_stream(fake, sandbox):
    data = bytes(i % 253 for i in range(3 * (1 << 20) + 17))  # above the fake's 1 MiB unary limit
    sandbox.write_file("/tmp/large.bin", data).result()
    write_execs = [c for c in fake.service.exec_commands if c[2] == _files.WRITE_SCRIPT]
    assert write_execs and write_execs[-1][-1] == "/tmp/large.bin"
    assert sandbox.read_file("/tmp/large.bin").result() == data
    read_execs = [c for c in fake.service.exec_commands if c[2] == _files.READ_SCRIPT]
    assert read_execs and read_execs[-1][-1] == "/tmp/large.bin"


def test_large_read_without_a_reported_size(fake, sandbox):
    fake.service.omit_file_size = True
    data = b"q" * (2 << 20)
    sandbox.write_file_streaming("/tmp/big", data).result()
    assert sandbox.read_file("/tmp/big").result() == data


def test_a_spool_replays_whole_while_an_abandoned_reader_goes_on(monkeypatch):
    # A refused archive write may still read on an executor thread while the fallback replays.
    monkeypatch.setattr(_files, "WRITE_CHUNK_BYTES", 4)
    data = bytes(range(64))

    async def scenario() -> tuple[bytes, bytes]:
        pieces = iter([data[:20], data[20:], _files._EOF])

        async def source():
            return next(pieces)

        with await _files.spool(source) as spooled:
            abandoned, replay = spooled.reader(), spooled.reader()
            first, second = bytearray(), bytearray()
            while chunk := await replay():
                first.extend(await abandoned())
                second.extend(chunk)
            return bytes(first), bytes(second)

    first, second = _loop.run_sync(scenario())
    assert second == data and first == data


def test_files_above_the_buffer_limit_are_refused(fake, sandbox, monkeypatch):
    monkeypatch.setattr(_files, "MAX_BUFFERED_FILE_BYTES", 1024)
    fake.service.unary_file_limit = 512
    with pytest.raises(SandboxFileError) as info:
        sandbox.write_file("/tmp/x", b"x" * 2048)
    assert info.value.reason == "CWSANDBOX_FILE_TOO_LARGE"
    assert "write_file_streaming" in str(info.value)
    sandbox.write_file_streaming("/tmp/y", b"y" * 2048).result()
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/tmp/y").result()  # the server reports 2048 bytes: refused at once
    assert info.value.reason == "CWSANDBOX_FILE_TOO_LARGE"
    fake.service.omit_file_size = True
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/tmp/y").result()  # size unknown: the fallback stream stops at the limit
    assert info.value.reason == "CWSANDBOX_FILE_TOO_LARGE"


def test_read_file_streaming(sandbox):
    data = bytes(range(256)) * 1024 + b"tail"
    sandbox.write_file("/tmp/s.bin", data).result()
    reader = sandbox.read_file_streaming("/tmp/s.bin")
    assert isinstance(reader, StreamReader)
    chunks = list(reader)
    assert len(chunks) > 1 and all(isinstance(c, bytes) for c in chunks)
    assert b"".join(chunks) == data


def test_read_file_streaming_errors_surface_while_iterating(sandbox):
    reader = sandbox.read_file_streaming("/tmp/none")
    with pytest.raises(SandboxFileError) as info:
        list(reader)
    assert info.value.reason == "CWSANDBOX_FILE_NOT_FOUND"


def test_read_file_streaming_close(sandbox):
    sandbox.write_file("/tmp/s2", b"z" * (1 << 20)).result()
    reader = sandbox.read_file_streaming("/tmp/s2")
    first = next(iter(reader))
    assert first
    reader.close()
    reader.close()
    assert list(reader) == []


def test_write_file_streaming_sources(sandbox):
    sandbox.write_file_streaming("/tmp/w1", b"a" * 3_000_000).result()
    assert sandbox.read_file("/tmp/w1").result() == b"a" * 3_000_000

    def gen():
        for i in range(10):
            yield f"line {i}\n".encode()

    sandbox.write_file_streaming("/tmp/w2", gen()).result()
    assert sandbox.read_file("/tmp/w2").result() == b"".join(f"line {i}\n".encode() for i in range(10))

    async def agen():
        for part in (b"x", b"y", b"z"):
            yield part

    sandbox.write_file_streaming("/tmp/w3", agen()).result()
    assert sandbox.read_file("/tmp/w3").result() == b"xyz"

    with pytest.raises(TypeError):
        sandbox.write_file_streaming("/tmp/w4", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sandbox.write_file_streaming("/tmp/w5", iter(["not bytes"])).result()


def test_write_file_streaming_to_read_only_path(sandbox):
    with pytest.raises(SandboxFileError) as info:
        sandbox.write_file_streaming("/etc/app.conf", b"x").result()
    assert info.value.reason == "CWSANDBOX_FILE_PERMISSION_DENIED"


# ------------------------------------------------------------------------------------------------
# The tar streams of sbxd's file API (pure: no server)


def _tar_of(members):
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name, data):
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _feed(reader, stream, step):
    out = bytearray()
    for i in range(0, len(stream), step):
        for piece in reader.feed(stream[i : i + step]):
            out.extend(piece)
    return bytes(out)


@pytest.mark.parametrize("step", [1, 7, 511, 512, 513, 1 << 20])
def test_a_tar_stream_yields_the_one_files_content_in_any_chunking(step):
    data = bytes(range(256)) * 41 + b"tail"
    stream = _tar_of([_file("blob.bin", data)])
    reader = _files.SingleFileTar("/tmp/blob.bin")
    assert _feed(reader, stream, step) == data
    reader.check_complete()


def test_a_long_name_in_a_pax_record_is_skipped_over():
    data = b"x" * 1000
    stream = _tar_of([_file("d" * 150, data)])
    reader = _files.SingleFileTar("/long")
    assert _feed(reader, stream, 100) == data
    reader.check_complete()


def test_directories_links_and_truncated_streams_are_named():
    import tarfile

    directory = tarfile.TarInfo("dir")
    directory.type = tarfile.DIRTYPE
    with pytest.raises(SandboxFileError) as info:
        _files.SingleFileTar("/dir").feed(_tar_of([(directory, None)]))
    assert info.value.reason == "CWSANDBOX_FILE_IS_DIRECTORY"

    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "../target"
    with pytest.raises(_files._SymbolicLink) as followed:
        _files.SingleFileTar("/a/link").feed(_tar_of([(link, None)]))
    assert followed.value.target == "../target"

    stream = _tar_of([_file("f", b"y" * 5000)])
    reader = _files.SingleFileTar("/f")
    reader.feed(stream[:3000])
    with pytest.raises(SandboxFileError) as info:
        reader.check_complete()
    assert info.value.reason == "CWSANDBOX_FILE_TRUNCATED"


@pytest.mark.parametrize("name", ["file.txt", "n" * 100, "é" * 80])
def test_the_header_written_is_one_tar_reads(name):
    import io
    import tarfile

    data = b"content\n" * 100
    stream = (
        _files.tar_header(name, len(data))
        + data
        + bytes((-len(data)) % 512)
        + bytes(1024)
    )
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [name]
        assert members[0].isreg() and members[0].mode == 0o644
        assert tar.extractfile(members[0]).read() == data
    reader = _files.SingleFileTar(name)
    assert _feed(reader, stream, 333) == data
