"""Directory copies (upload_dir / download_dir) against the fake's ArchiveService: round trips,
streaming, and the safe extraction of hostile archives from a sandbox."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sbx import Sandbox, SandboxFileError, UnsupportedFeatureError
from sbx._trees import CHUNK_BYTES, TreeExtractor


@pytest.fixture
def sandbox(fake):
    fake.archives.enabled = True
    sb = Sandbox.run()
    sb.wait()
    yield sb
    sb.stop(missing_ok=True).result()


def make_tree(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (root / "sub" / "deep" / ("n" * 150)).write_text("a long name")
    os.symlink("../a.txt", root / "sub" / "link")


def test_upload_then_download_round_trip(fake, sandbox, tmp_path):
    source = tmp_path / "source"
    make_tree(source)
    sandbox.upload_dir(source, "/work/tree").result(timeout=30)
    sb = fake.service.sandboxes[sandbox.sandbox_id]
    assert sb.files["/work/tree/a.txt"] == b"hello\n"
    assert sb.files["/work/tree/sub/deep/" + "n" * 150] == b"a long name"
    assert sb.modes["/work/tree/run.sh"] & 0o777 == 0o755
    assert sb.links["/work/tree/sub/link"] == "../a.txt"
    assert {"/work/tree/empty", "/work/tree/sub", "/work/tree/sub/deep"} <= sb.dirs

    target = tmp_path / "copy" / "of" / "tree"  # missing parents are created
    sandbox.download_dir("/work/tree", target).result(timeout=30)
    assert (target / "a.txt").read_text() == "hello\n"
    assert (target / "sub" / "data.bin").read_bytes() == bytes(range(256)) * 100
    assert (target / "sub" / "deep" / ("n" * 150)).read_text() == "a long name"
    assert stat.S_IMODE((target / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(target / "sub" / "link") == "../a.txt"
    assert (target / "empty").is_dir()
    assert not [p for p in target.rglob(".sbx-download-*")]  # no temporary file left behind
    assert fake.service.calls_of("GetArchive")[0].path == "/work/tree/."


def test_upload_streams_in_bounded_messages(fake, sandbox, tmp_path):
    source = tmp_path / "big"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(3 * CHUNK_BYTES + 123))
    sandbox.upload_dir(str(source), "/big").result(timeout=30)
    sizes = fake.archives.put_chunk_sizes
    assert len(sizes) >= 4 and max(sizes) <= CHUNK_BYTES
    assert fake.service.sandboxes[sandbox.sandbox_id].files["/big/big.bin"] == (source / "big.bin").read_bytes()


def test_download_writes_each_entry_as_its_bytes_arrive(tmp_path):
    data = os.urandom(10_000)
    archive = tar_of(file_entry("./f.bin", data))
    extractor = TreeExtractor(str(tmp_path / "out"), "/remote")
    try:
        extractor.feed(archive[: 512 * 2 + 4000])  # the two headers, 4000 bytes of the file
        [temp] = (tmp_path / "out").glob(".sbx-download-*")
        assert temp.stat().st_size == 4000  # written out, not held in memory
        extractor.feed(archive[512 * 2 + 4000 :])
        extractor.finish()
    finally:
        extractor.close()
    assert (tmp_path / "out" / "f.bin").read_bytes() == data


def test_bad_arguments_fail_at_the_call(sandbox, tmp_path):
    with pytest.raises(FileNotFoundError):
        sandbox.upload_dir(tmp_path / "missing", "/x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        sandbox.upload_dir(tmp_path / "file", "/x")
    with pytest.raises(NotADirectoryError):
        sandbox.download_dir("/x", tmp_path / "file")
    with pytest.raises(ValueError):
        sandbox.download_dir("", tmp_path)
    with pytest.raises(TypeError):
        sandbox.upload_dir(3, "/x")


def test_a_server_without_directory_copies_says_so(fake, tmp_path):
    with Sandbox.run() as sandbox:  # the fake's archive service is off: as the hosted service
        for ref in (lambda: sandbox.upload_dir(tmp_path, "/x"),
                    lambda: sandbox.download_dir("/x", tmp_path / "d")):
            with pytest.raises(UnsupportedFeatureError, match="directory copies"):
                ref().result(timeout=30)


# ------------------------------------------------------------------------------------------------
# Hostile archives


def tar_of(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes], end: bool = True) -> bytes:
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT)
    root = tarfile.TarInfo(".")
    root.type = tarfile.DIRTYPE
    tar.addfile(root)
    for entry in entries:
        info, data = entry if isinstance(entry, tuple) else (entry, b"")
        tar.addfile(info, io.BytesIO(data) if data else None)
    if end:
        tar.close()
        return out.getvalue()
    tar.fileobj = None  # leave out the end-of-archive blocks
    return out.getvalue()


def file_entry(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


HOSTILE = {
    "parent": (file_entry("../evil", b"x"), "../evil", "'..'"),
    "parent-inside": (file_entry("./a/../../evil", b"x"), "./a/../../evil", "'..'"),
    "absolute": (file_entry("/tmp/evil", b"x"), "/tmp/evil", "absolute"),
    "absolute-link": (special("./l", tarfile.SYMTYPE, "/etc"), "./l", "absolute path"),
    "escaping-link": (special("./d/l", tarfile.SYMTYPE, "../../x"), "./d/l", "outside"),
    "climbing-link": (special("./l", tarfile.SYMTYPE, "sub/../.."), "./l", "after a name"),
    "hard-link": (special("./h", tarfile.LNKTYPE, "a.txt"), "./h", "hard links"),
    "device": (special("./dev", tarfile.CHRTYPE), "./dev", "devices"),
    "fifo": (special("./fifo", tarfile.FIFOTYPE), "./fifo", "FIFOs"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries_are_refused_by_name(fake, sandbox, tmp_path, case):
    entry, name, why = HOSTILE[case]
    fake.archives.archive_override = tar_of(file_entry("./ok.txt", b"fine"), entry)
    fake.archives.chunk_bytes = 100  # headers and names split across messages
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(SandboxFileError, match=why) as caught:
        sandbox.download_dir("/src", dest).result(timeout=30)
    assert caught.value.metadata["entry"] == name
    assert name in str(caught.value)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "dest" / "evil").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["ok.txt"]  # nothing of the refused entry


def test_no_writing_through_a_link_the_archive_planted(fake, sandbox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fake.archives.archive_override = tar_of(
        special("./d", tarfile.DIRTYPE),
        special("./d/up", tarfile.SYMTYPE, ".."),  # allowed: points at the destination
        file_entry("./d/up/x", b"through the link"),
    )
    dest = tmp_path / "dest"
    with pytest.raises(SandboxFileError, match="symbolic link") as caught:
        sandbox.download_dir("/src", dest).result(timeout=30)
    assert caught.value.metadata["entry"] == "./d/up/x"
    assert not (dest / "x").exists()


def test_no_writing_through_a_link_already_in_the_destination(fake, sandbox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "out")
    fake.archives.archive_override = tar_of(file_entry("./out/x", b"escaped"))
    with pytest.raises(SandboxFileError, match="symbolic link"):
        sandbox.download_dir("/src", dest).result(timeout=30)
    assert list(outside.iterdir()) == []


def test_setuid_and_sticky_bits_are_dropped(fake, sandbox, tmp_path):
    fake.archives.archive_override = tar_of(file_entry("./suid", b"x", mode=0o6755))
    sandbox.download_dir("/src", tmp_path / "d").result(timeout=30)
    assert stat.S_IMODE((tmp_path / "d" / "suid").stat().st_mode) == 0o755


def test_a_stream_cut_short_is_an_error_and_leaves_no_partial_file(fake, sandbox, tmp_path):
    whole = tar_of(file_entry("./f", os.urandom(5000)))
    fake.archives.archive_override = whole[: 512 * 2 + 2000]
    with pytest.raises(SandboxFileError, match="ended early") as caught:
        sandbox.download_dir("/src", tmp_path / "d").result(timeout=30)
    assert caught.value.reason == "CWSANDBOX_FILE_TRUNCATED"
    assert list((tmp_path / "d").iterdir()) == []
    fake.archives.archive_override = tar_of(file_entry("./f", b"x"), end=False)
    with pytest.raises(SandboxFileError, match="ended early"):
        sandbox.download_dir("/src", tmp_path / "e").result(timeout=30)


def test_a_corrupt_header_is_refused(fake, sandbox, tmp_path):
    archive = bytearray(tar_of(file_entry("./f", b"data")))
    archive[512 + 3] ^= 0x01  # a byte of the file entry's name: the checksum no longer holds
    fake.archives.archive_override = bytes(archive)
    with pytest.raises(SandboxFileError, match="checksum"):
        sandbox.download_dir("/src", tmp_path / "d").result(timeout=30)
