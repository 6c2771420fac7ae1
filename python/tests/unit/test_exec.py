"""exec: results, streaming, stdin, check, cwd, timeouts (the remote process is killed), cancel,
stream errors, shell."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from sbx import (
    Process,
    ProcessResult,
    Sandbox,
    SandboxExecutionError,
    SandboxNotRunningError,
    SandboxStreamBackpressureError,
    SandboxStreamTruncatedError,
    SandboxTimeoutError,
)


@pytest.fixture
def sandbox(fake):
    sb = Sandbox.run()
    sb.wait()
    yield sb
    sb.stop(missing_ok=True).result()


def test_result_fields(sandbox):
    process = sandbox.exec(["python", "--version"])
    assert isinstance(process, Process)
    result = process.result()
    assert isinstance(result, ProcessResult)
    assert result.stdout == "Python 3.11.9\n" and result.stderr == ""
    assert result.returncode == 0
    assert result.stdout_bytes == b"Python 3.11.9\n"
    assert result.command == ["python", "--version"]
    assert process.returncode == 0 and process.poll() == 0 and process.wait() == 0
    assert process.command == ["python", "--version"]


def test_stderr_and_nonzero_exit(sandbox):
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 4"]).result()
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 4)
    unknown = sandbox.exec(["no-such-binary"]).result()
    assert unknown.returncode == 127 and "not found" in unknown.stderr


def test_check_raises_with_the_result(sandbox):
    with pytest.raises(SandboxExecutionError, match="failed with exit code 4") as info:
        sandbox.exec(["sh", "-c", "echo bad >&2; exit 4"], check=True).result()
    assert info.value.exec_result.returncode == 4
    assert info.value.exec_result.stderr == "bad\n"
    assert sandbox.exec(["true"], check=True).result().returncode == 0


def test_command_validation(sandbox):
    with pytest.raises(TypeError, match="list of strings"):
        sandbox.exec("echo hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be empty"):
        sandbox.exec([])
    with pytest.raises(TypeError):
        sandbox.exec(["echo", 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="absolute"):
        sandbox.exec(["pwd"], cwd="relative")
    with pytest.raises(ValueError):
        sandbox.exec(["pwd"], timeout_seconds=0)


def test_cwd_is_applied_through_the_shell(fake, sandbox):
    sandbox.write_file("/srv/app/file", b"").result()
    assert sandbox.exec(["pwd"], cwd="/srv/app").result().stdout == "/srv/app\n"
    wire = fake.service.exec_commands[-1]
    assert wire == ["/bin/sh", "-c", "cd /srv/app && exec pwd"]
    quoted = sandbox.exec(["echo", "a b"], cwd="/srv/app").result()
    assert quoted.stdout == "a b\n"
    assert fake.service.exec_commands[-1][2] == "cd /srv/app && exec echo 'a b'"


def test_output_streams_while_running(sandbox):
    process = sandbox.exec(["chunks", "5", "0.05"])
    seen = []
    for chunk in process.stdout:
        seen.append((chunk, process.poll()))
    assert "".join(c for c, _ in seen) == "".join(f"chunk {i}\n" for i in range(5))
    assert seen[0][1] is None  # the first chunk arrived before the command finished
    assert process.result().stdout.count("chunk") == 5
    assert list(process.stderr) == []


def test_multibyte_characters_split_across_frames(sandbox):
    # "é" is two bytes; the incremental decoder must not turn a split into U+FFFD.
    sandbox.write_file("/tmp/e.txt", "é".encode() * 40000).result()
    process = sandbox.exec(["cat", "/tmp/e.txt"])
    text = "".join(process.stdout)
    assert text == "é" * 40000
    assert process.result().stdout == "é" * 40000


def test_stdin(fake, sandbox):
    process = sandbox.exec(["cat"], stdin=True)
    assert process.stdin is not None and not process.stdin.closed
    process.stdin.write(b"hello ").result()
    process.stdin.writeline("world").result()
    process.stdin.close().result()
    process.stdin.close().result()  # idempotent
    assert process.result().stdout == "hello world\n"
    with pytest.raises(SandboxExecutionError):
        process.stdin.write(b"late")
    with pytest.raises(TypeError):
        sandbox.exec(["cat"], stdin=True).stdin.write("text")  # type: ignore[arg-type]


def test_stdin_is_sent_in_64k_frames(fake, sandbox):
    process = sandbox.exec(["cat"], stdin=True)
    payload = bytes(range(256)) * 1024  # 256 KiB
    process.stdin.write(payload).result()
    process.stdin.close().result()
    assert process.result().stdout_bytes == payload
    assert max(fake.service.stdin_frame_sizes) == 64 * 1024


def test_no_stdin_means_none(sandbox):
    process = sandbox.exec(["cat"])
    assert process.stdin is None
    assert process.result().stdout == ""


def test_timeout_kills_the_remote_process(fake, sandbox, eventually):
    start = time.monotonic()
    with pytest.raises(SandboxTimeoutError, match="timed out after 0.3s"):
        sandbox.exec(["sleep", "30"], timeout_seconds=0.3).result()
    assert time.monotonic() - start < 5
    eventually(lambda: ["sleep", "30"] in fake.service.cancelled_execs, what="cancellation")
    listing = sandbox.exec(["ps"]).result().stdout
    assert "sleep 30" not in listing


def test_timeout_error_reaches_the_stream_reader(sandbox):
    process = sandbox.exec(["sleep", "30"], timeout_seconds=0.2)
    with pytest.raises(SandboxTimeoutError):
        list(process.stdout)


def test_result_timeout_does_not_cancel(sandbox):
    process = sandbox.exec(["sh", "-c", "sleep 0.3; echo done"])
    with pytest.raises(concurrent.futures.TimeoutError):
        process.result(timeout=0.01)
    assert process.result().stdout == "done\n"


def test_cancel_kills_the_remote_process(fake, sandbox, eventually):
    process = sandbox.exec(["sleep", "30"])
    eventually(lambda: any(p.argv == ["sleep", "30"] for sb in fake.service.sandboxes.values()
                           for p in list(sb.processes.values())), what="process start")
    assert process.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        process.result()
    eventually(lambda: ["sleep", "30"] in fake.service.cancelled_execs, what="cancellation")


def test_stream_errors(sandbox):
    with pytest.raises(SandboxStreamBackpressureError) as info:
        sandbox.exec(["stream-error", "STREAM_BACKPRESSURE"]).result()
    assert info.value.stream_code == "STREAM_BACKPRESSURE"
    with pytest.raises(SandboxStreamTruncatedError):
        sandbox.exec(["stream-error", "STREAM_TRUNCATED"]).result()
    with pytest.raises(SandboxExecutionError, match="OTHER"):
        sandbox.exec(["stream-error", "OTHER"]).result()
    with pytest.raises(SandboxExecutionError, match="without an exit status"):
        sandbox.exec(["no-exit"]).result()


def test_exec_stats(sandbox):
    sandbox.exec(["true"]).result()
    sandbox.exec(["false"]).result()
    with pytest.raises(SandboxStreamTruncatedError):
        sandbox.exec(["stream-error", "STREAM_TRUNCATED"]).result()
    assert sandbox.exec_stats == {
        "exec_count": 3,
        "exec_completed_ok": 1,
        "exec_completed_nonzero": 1,
        "exec_failures": 1,
    }


def test_exec_on_a_finished_sandbox(fake):
    sb = Sandbox.run("true")
    sb.wait_until_complete().result()
    with pytest.raises(SandboxNotRunningError, match="completed"):
        sb.exec(["echo"]).result()


def test_sandbox_stopped_while_exec_runs(fake, sandbox, eventually):
    process = sandbox.exec(["sleep", "30"])
    eventually(lambda: ["sleep", "30"] in fake.service.exec_commands, what="the command to start")
    sandbox.stop().result()
    assert process.result(timeout=5).returncode == 137


def test_environment_is_the_containers(fake):
    with Sandbox.run(environment_variables={"GREETING": "hi"}) as sb:
        assert "GREETING=hi" in sb.exec(["env"]).result().stdout


def test_shell(fake, sandbox):
    term = sandbox.shell(["cat"], width=80, height=24)
    term.resize(100, 30)
    term.stdin.write(b"typed\n").result()
    term.stdin.close().result()
    assert term.wait(timeout=5) == 0
    assert b"".join(term.output) == b"typed\n"
    assert term.returncode == 0 and term.result().command == ["cat"]
    (init,) = [req.init for name, req in fake.service.calls if name == "StreamExec" and req.init.tty]
    assert (init.tty_width, init.tty_height) == (80, 24)
    assert fake.service.last_resizes == [(100, 30)]
    with pytest.raises(ValueError):
        term.resize(0, 10)
