"""Directory copies against a real sbxd: a tree up and back, its links and modes, and what a
hostile sandbox puts in its tree staying inside the destination."""

from __future__ import annotations

import filecmp
import os
import stat

import pytest

from sbx import SandboxFileError


def make_tree(root) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "sub" / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    (root / "sub" / "deep" / ("n" * 150)).write_text("a long name")
    os.symlink("../a.txt", root / "sub" / "link")


def test_upload_then_download_round_trip(sandbox, tmp_path):
    source = tmp_path / "source"
    make_tree(source)
    sandbox.upload_dir(source, "/work/tree").result(timeout=300)
    listing = sandbox.exec(["sh", "-c", "cd /work/tree && find . | sort"]).result().stdout.split()
    assert listing == [".", "./a.txt", "./empty", "./run.sh", "./sub", "./sub/big.bin", "./sub/deep",
                       "./sub/deep/" + "n" * 150, "./sub/link"]
    assert sandbox.exec(["/work/tree/run.sh"]).result().stdout == "ran\n"
    assert sandbox.exec(["cat", "/work/tree/sub/link"]).result().stdout == "hello\n"

    copy = tmp_path / "copy" / "tree"
    sandbox.download_dir("/work/tree", copy).result(timeout=300)
    compared = filecmp.dircmp(source, copy)
    assert compared.left_only == compared.right_only == compared.diff_files == []
    assert filecmp.cmp(source / "sub" / "big.bin", copy / "sub" / "big.bin", shallow=False)
    assert os.readlink(copy / "sub" / "link") == "../a.txt"
    assert stat.S_IMODE((copy / "run.sh").stat().st_mode) == 0o755
    assert (copy / "empty").is_dir()


def test_download_errors_name_the_directory(sandbox, tmp_path):
    with pytest.raises(SandboxFileError) as caught:
        sandbox.download_dir("/no/such/dir", tmp_path / "d").result(timeout=60)
    assert caught.value.reason == "CWSANDBOX_FILE_NOT_FOUND"
    assert caught.value.filepath == "/no/such/dir"
    assert not (tmp_path / "d").exists()


def test_a_sandbox_cannot_make_a_download_escape(sandbox, tmp_path):
    # Links the sandbox's user controls: one out of the tree, one to an absolute path.
    sandbox.exec(["sh", "-c", "mkdir -p /evil/d && echo ok > /evil/ok && "
                  "ln -s ../../.. /evil/d/up && ln -s /etc /evil/etc"]).result(timeout=60)
    dest = tmp_path / "dest"
    with pytest.raises(SandboxFileError, match="symbolic link") as caught:
        sandbox.download_dir("/evil", dest).result(timeout=60)
    assert caught.value.metadata["entry"] in ("./d/up", "./etc")
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
