"""Files: binary, large (above the unary limit), streaming, relative paths, mounted files."""

from __future__ import annotations

import hashlib

import pytest

from sbx import Sandbox, SandboxFailedError, SandboxFileError, SandboxNotRunningError


@pytest.mark.smoke
def test_binary_roundtrip(sandbox):
    data = bytes(range(256)) * 64
    sandbox.write_file("/tmp/blob.bin", data).result()
    assert sandbox.read_file("/tmp/blob.bin").result() == data
    digest = sandbox.exec(["sha256sum", "/tmp/blob.bin"]).result().stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()


def test_large_file_above_the_unary_limit(sandbox):
    data = hashlib.sha256(b"seed").digest() * (48 * 1024 * 1024 // 32)  # 48 MiB
    sandbox.write_file("/tmp/large.bin", data).result(timeout=300)
    assert sandbox.exec(["stat", "-c", "%s", "/tmp/large.bin"]).result().stdout.strip() == str(len(data))
    assert sandbox.read_file("/tmp/large.bin").result(timeout=300) == data


def test_streaming(sandbox):
    def chunks():
        for i in range(64):
            yield bytes([i]) * (256 * 1024)  # 16 MiB in all

    sandbox.write_file_streaming("/tmp/streamed.bin", chunks()).result(timeout=300)
    received = bytearray()
    for chunk in sandbox.read_file_streaming("/tmp/streamed.bin"):
        received.extend(chunk)
    assert bytes(received) == b"".join(chunks())


def test_relative_paths_and_parent_directories(sandbox):
    sandbox.write_file("hello.txt", b"hello\n").result()
    workdir = sandbox.exec(["pwd"]).result().stdout.strip()
    assert sandbox.exec(["cat", f"{workdir.rstrip('/')}/hello.txt"]).result().stdout == "hello\n"
    assert sandbox.read_file("hello.txt").result() == b"hello\n"
    sandbox.write_file("/tmp/new/dir/file.txt", b"x").result()
    assert sandbox.read_file("/tmp/new/dir/file.txt").result() == b"x"


def test_file_errors(sandbox):
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/no/such/file").result()
    assert info.value.reason == "CWSANDBOX_FILE_NOT_FOUND" and info.value.filepath == "/no/such/file"
    with pytest.raises(SandboxFileError) as info:
        sandbox.read_file("/tmp").result()
    assert info.value.reason == "CWSANDBOX_FILE_IS_DIRECTORY"


def test_mounted_files_are_read_only(defaults):
    files = [{"mount_path": "/etc/app/config.json", "file_content": '{"mode": "test"}'}]
    with Sandbox.run(defaults=defaults, mounted_files=files) as sb:
        assert sb.read_file("/etc/app/config.json").result(timeout=300) == b'{"mode": "test"}'
        result = sb.exec(["sh", "-c", "echo changed > /etc/app/config.json"]).result()
        assert result.returncode != 0
        with pytest.raises(SandboxFileError):
            sb.write_file("/etc/app/config.json", b"changed").result()


def test_large_files_move_without_a_shell_in_the_image(defaults):
    """Large and streamed transfers use sbxd's own file API, resolved by sbx-init inside the
    sandbox's root: they work in an image without /bin/sh, and into directories that do not
    exist yet."""
    data = hashlib.sha256(b"no shell").digest() * (40 * 1024 * 1024 // 32)  # 40 MiB
    with Sandbox.run(defaults=defaults) as sb:
        removed = sb.exec(["rm", "-f", "/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash"]).result()
        assert removed.returncode == 0
        assert sb.exec(["ls", "/bin/sh", "/usr/bin/sh"]).result().returncode != 0
        sb.write_file("/srv/deep/large.bin", data).result(timeout=300)
        assert sb.read_file("/srv/deep/large.bin").result(timeout=300) == data

        def chunks():
            for i in range(16):
                yield bytes([i]) * (1024 * 1024)

        sb.write_file_streaming("relative/streamed.bin", chunks()).result(timeout=300)
        received = bytearray()
        for chunk in sb.read_file_streaming("relative/streamed.bin"):
            received.extend(chunk)
        assert bytes(received) == b"".join(chunks())
        with pytest.raises(SandboxFileError) as info:
            for _ in sb.read_file_streaming("/srv/missing.bin"):
                pass
        assert info.value.reason == "CWSANDBOX_FILE_NOT_FOUND"


def test_results_of_a_job_that_ended_can_be_collected(defaults, tmp_path):
    """Run the job, then collect the results: reads work after the main process has ended
    (a failed one too), writes do not, and after stop() the files are gone."""
    job = "mkdir -p /out/logs && echo 0.93 > /out/score && echo step > /out/logs/1.txt && exit 4"
    sb = Sandbox.run("sh", "-c", job, defaults=defaults)
    with pytest.raises(SandboxFailedError):
        sb.wait_until_complete(timeout=300).result()
    assert sb.returncode == 4
    assert sb.read_file("/out/score").result() == b"0.93\n"
    assert b"".join(sb.read_file_streaming("/out/score")) == b"0.93\n"
    sb.download_dir("/out/logs", tmp_path / "logs").result(timeout=120)
    assert (tmp_path / "logs" / "1.txt").read_bytes() == b"step\n"
    with pytest.raises(SandboxFailedError):  # a write needs a running sandbox
        sb.write_file("/out/more", b"x").result()
    sb.stop().result(timeout=60)
    with pytest.raises(SandboxNotRunningError):
        sb.read_file("/out/score").result()
    # A fresh handle on the stopped sandbox hears from sbxd that the files went with the delete.
    with pytest.raises(SandboxNotRunningError) as info:
        Sandbox.from_id(sb.sandbox_id).result().read_file("/out/score").result()
    assert "deleted" in str(info.value)
