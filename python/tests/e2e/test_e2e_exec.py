"""exec: output, streaming, stdin, check, cwd, environment, and timeouts that kill the remote
process tree."""

from __future__ import annotations

import time

import pytest

from sbx import Sandbox, SandboxExecutionError, SandboxTimeoutError

LIST_PROCESSES = ["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\000' ' '"]


def running_commands(sandbox: Sandbox) -> str:
    return sandbox.exec(LIST_PROCESSES).result(timeout=60).stdout


@pytest.mark.smoke
def test_output_and_exit_code(sandbox):
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 7"]).result()
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 7)
    assert sandbox.exec(["python", "--version"]).result().stdout.startswith("Python 3")


def test_streaming_output_arrives_while_running(sandbox):
    process = sandbox.exec(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.5; done"])
    first_at, chunks = None, []
    start = time.monotonic()
    for chunk in process.stdout:
        if first_at is None:
            first_at = time.monotonic() - start
        chunks.append(chunk)
    total = time.monotonic() - start
    assert "".join(chunks) == "1\n2\n3\n"
    assert first_at is not None and first_at < total - 0.5
    assert process.result().returncode == 0


def test_output_line_by_line(sandbox):
    # Written a few characters at a time, flushed, so lines span several output frames.
    script = (
        "import sys, time\n"
        "for piece in ['fir', 'st\\nsec', 'ond\\n', 'no newline']:\n"
        "    sys.stdout.write(piece); sys.stdout.flush(); time.sleep(0.05)\n"
    )
    process = sandbox.exec(["python", "-c", script])
    assert list(process.stdout.lines()) == ["first\n", "second\n", "no newline"]
    assert process.result().returncode == 0
    # One line of 3 MiB: in pieces of the default 1 MiB limit, or whole without a limit.
    command = ["python", "-c", "print('x' * (3 << 20))"]
    pieces = [len(p) for p in sandbox.exec(command).stdout.lines()]
    assert pieces == [1 << 20, 1 << 20, (1 << 20) + 1]
    whole = list(sandbox.exec(command).stdout.lines(max_line_length=None))
    assert whole == ["x" * (3 << 20) + "\n"]


def test_stdin(sandbox):
    process = sandbox.exec(["cat"], stdin=True)
    process.stdin.write(b"line one\n").result()
    process.stdin.writeline("line two").result()
    process.stdin.close().result()
    assert process.result(timeout=60).stdout == "line one\nline two\n"


def test_large_stdin(sandbox):
    payload = bytes(range(256)) * 8192  # 2 MiB
    process = sandbox.exec(["sh", "-c", "wc -c"], stdin=True)
    process.stdin.write(payload).result()
    process.stdin.close().result()
    assert process.result(timeout=60).stdout.strip() == str(len(payload))


def test_check(sandbox):
    with pytest.raises(SandboxExecutionError) as info:
        sandbox.exec(["sh", "-c", "echo boom >&2; exit 5"], check=True).result()
    assert info.value.exec_result.returncode == 5 and info.value.exec_result.stderr == "boom\n"


def test_a_command_that_cannot_start_is_an_exit_code_not_a_missing_sandbox(sandbox):
    missing = sandbox.exec(["nosuchcmd", "--flag"]).result()
    assert missing.returncode == 127
    assert "nosuchcmd" in missing.stderr and "not found" in missing.stderr
    not_executable = sandbox.exec(["/etc/hostname"]).result()
    assert not_executable.returncode == 126
    with pytest.raises(SandboxExecutionError) as info:
        sandbox.exec(["nosuchcmd"], check=True).result()
    assert info.value.exec_result.returncode == 127
    # The sandbox is fine: the next command runs.
    assert sandbox.exec(["true"]).result().returncode == 0


def test_cwd_and_environment(tag):
    with Sandbox.run(tags=[tag], environment_variables={"GREETING": "hello"}) as sb:
        assert sb.exec(["pwd"], cwd="/tmp").result(timeout=300).stdout == "/tmp\n"
        assert sb.exec(["sh", "-c", "echo $GREETING"]).result().stdout == "hello\n"
        with pytest.raises(TypeError):
            sb.exec("echo hello")  # type: ignore[arg-type]


@pytest.mark.smoke
def test_timeout_kills_the_remote_process_tree(sandbox, eventually):
    start = time.monotonic()
    with pytest.raises(SandboxTimeoutError):
        sandbox.exec(["sh", "-c", "sleep 301 & sleep 302; wait"], timeout_seconds=1).result()
    assert time.monotonic() - start < 10
    eventually(lambda: "sleep 30" not in running_commands(sandbox), timeout=15,
               what="the timed-out command's processes to be killed")


def test_cancel_kills_the_remote_process(sandbox, eventually):
    process = sandbox.exec(["sleep", "303"])
    eventually(lambda: "sleep 303" in running_commands(sandbox), what="the command to start")
    assert process.cancel()
    eventually(lambda: "sleep 303" not in running_commands(sandbox), timeout=15,
               what="the cancelled command to be killed")


def test_many_execs_in_parallel(sandbox):
    processes = [sandbox.exec(["sh", "-c", f"echo {i}"]) for i in range(20)]
    assert [p.result(timeout=120).stdout for p in processes] == [f"{i}\n" for i in range(20)]
