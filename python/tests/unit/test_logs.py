"""stream_logs: the main process's output, line by line."""

from __future__ import annotations

from datetime import datetime

import pytest

from sbx import Sandbox, SandboxNotRunningError


def test_logs_of_a_finished_main_process(fake):
    sb = Sandbox.run("sh", "-c", "echo one; echo two; echo err >&2")
    sb.wait_until_complete().result()
    assert list(sb.stream_logs()) == ["one\n", "two\n", "err\n"]
    assert list(sb.stream_logs(tail_lines=1)) == ["err\n"]
    (request,) = fake.service.calls_of("StreamLogs")[-1:]
    assert request.tail_lines == 1


def test_follow_streams_until_the_end(fake):
    sb = Sandbox.run("chunks", "4", "0.05")
    lines = list(sb.stream_logs(follow=True))
    assert lines == [f"chunk {i}\n" for i in range(4)]


def test_timestamps_are_requested_from_the_server(fake):
    sb = Sandbox.run("echo", "stamped")
    sb.wait_until_complete().result()
    (line,) = list(sb.stream_logs(timestamps=True))
    assert fake.service.calls_of("StreamLogs")[-1].timestamps
    stamp, text = line.split(" ", 1)  # the server's prefix, passed through unchanged
    assert text == "stamped\n"
    assert stamp.endswith("Z") and stamp[:4].isdigit()


def test_lines_split_on_newlines_only(fake):
    sb = Sandbox.run("sh", "-c", "echo 'a\rb'; echo c")
    sb.wait_until_complete().result()
    assert list(sb.stream_logs()) == ["a\rb\n", "c\n"]


def test_follow_requires_a_running_sandbox(fake):
    sb = Sandbox.run("true")
    sb.wait_until_complete().result()
    with pytest.raises(SandboxNotRunningError):
        list(sb.stream_logs(follow=True))


def test_argument_checks(fake):
    sb = Sandbox()
    with pytest.raises(ValueError):
        sb.stream_logs(since_time=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        sb.stream_logs(tail_lines=-1)


def test_close_ends_a_follow_stream(fake):
    with Sandbox.run() as sb:
        reader = sb.stream_logs(follow=True)
        reader.close()
        assert list(reader) == []
