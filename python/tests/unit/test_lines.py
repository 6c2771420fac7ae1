"""Line-by-line iteration of a stream (``StreamReader.lines()``), whatever its chunking, with
partial last lines, overlong lines, errors and async iteration."""

from __future__ import annotations

import asyncio

import pytest

from sbx import Sandbox, SandboxExecutionError, StreamReader
from sbx import _loop


def reader_of(chunks, error: BaseException | None = None) -> StreamReader:
    reader: StreamReader = StreamReader()

    async def fill() -> None:
        for chunk in chunks:
            reader._put_nowait(chunk)
        reader._finish(error)

    _loop.submit(fill()).result(5)
    return reader


def test_lines_across_chunk_boundaries():
    chunks = ["ab", "c\nde", "f\n\ng", "h"]
    assert list(reader_of(chunks).lines()) == ["abc\n", "def\n", "\n", "gh"]
    assert list(reader_of(["one\ntwo\n"]).lines()) == ["one\n", "two\n"]
    assert list(reader_of([]).lines()) == []


def test_bytes_streams_split_into_byte_lines():
    assert list(reader_of([b"x\ny", b"z\n", b"\xff"]).lines()) == [b"x\n", b"yz\n", b"\xff"]


def test_an_overlong_line_comes_in_pieces():
    lines = list(reader_of(["abcdefghij\nxy", "z"]).lines(max_line_length=4))
    assert lines == ["abcd", "efgh", "ij\n", "xyz"]
    # A line of exactly the limit stays whole, its newline included.
    assert list(reader_of(["abcd\n", "ab", "cd", "e"]).lines(max_line_length=4)) == [
        "abcd\n", "abcd", "e"]
    long = ["x" * 1000] * 3000  # 3,000,000 characters, no newline
    assert [len(p) for p in reader_of(long).lines()] == [1 << 20, 1 << 20, 3_000_000 - (2 << 20)]
    assert [len(p) for p in reader_of(long).lines(max_line_length=None)] == [3_000_000]
    with pytest.raises(ValueError):
        reader_of([]).lines(max_line_length=0)


def test_an_error_comes_after_the_partial_line_before_it():
    lines = reader_of(["ok\npart"], SandboxExecutionError("stream broke")).lines()
    assert next(lines) == "ok\n"
    assert next(lines) == "part"
    with pytest.raises(SandboxExecutionError, match="stream broke"):
        next(lines)


def test_async_iteration():
    async def collect():
        return [line async for line in reader_of(["a\nb", "\nc"]).lines()]

    assert asyncio.run(collect()) == ["a\n", "b\n", "c"]


def test_a_process_output_line_by_line(fake):
    with Sandbox.run() as sandbox:
        process = sandbox.exec(["chunks", "3", "0.01"])
        assert list(process.stdout.lines()) == ["chunk 0\n", "chunk 1\n", "chunk 2\n"]
        assert process.result().stdout == "chunk 0\nchunk 1\nchunk 2\n"
        script = "import sys; sys.stdout.write('first\\nsecond\\nno newline')"
        process = sandbox.exec(["python", "-c", script])
        assert list(process.stdout.lines()) == ["first\n", "second\n", "no newline"]
