"""Async use: await references, processes and sandboxes; async with; async iteration."""

from __future__ import annotations

import asyncio

import pytest

from sbx import Sandbox, SandboxDefaults, SandboxExecutionError, SandboxStatus, Session


def run(coro):
    return asyncio.run(coro)


def test_await_everything(fake):
    async def main():
        sb = Sandbox(container_image="python:3.11")
        ready = await sb  # starts and waits for RUNNING
        assert ready is sb and sb.status is SandboxStatus.RUNNING
        result = await sb.exec(["echo", "async"])
        assert result.stdout == "async\n"
        await sb.write_file("/tmp/a", b"data")
        assert await sb.read_file("/tmp/a") == b"data"
        await sb.stop()
        assert sb.status is SandboxStatus.TERMINATED

    run(main())


def test_async_context_managers(fake):
    async def main():
        async with Session(SandboxDefaults(tags=("async",))) as session:
            async with session.sandbox() as sb:
                assert (await sb.exec(["echo", "x"])).stdout == "x\n"
            assert sb.status is SandboxStatus.TERMINATED
            other = session.sandbox()
            await other.start()
        assert other.status is SandboxStatus.TERMINATED

    run(main())


def test_async_iteration_of_output(fake):
    async def main():
        async with Sandbox(command="sleep", args=["infinity"]) as sb:
            process = sb.exec(["chunks", "3", "0.02"])
            chunks = [chunk async for chunk in process.stdout]
            assert "".join(chunks) == "chunk 0\nchunk 1\nchunk 2\n"
            assert (await process).returncode == 0

    run(main())


def test_gather_many_execs(fake):
    async def main():
        async with Session() as session:
            sandboxes = [session.sandbox() for _ in range(5)]
            results = await asyncio.gather(
                *(sb.exec(["echo", str(i)]) for i, sb in enumerate(sandboxes))
            )
            assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]

    run(main())


def test_errors_propagate_through_await(fake):
    async def main():
        async with Sandbox() as sb:
            with pytest.raises(SandboxExecutionError):
                await sb.exec(["false"], check=True)

    run(main())


def test_cancelling_the_awaiting_task_cancels_the_exec(fake, eventually):
    async def main():
        async with Sandbox() as sb:
            task = asyncio.ensure_future(_await(sb.exec(["sleep", "30"])))
            while ["sleep", "30"] not in fake.service.exec_commands:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def _await(ref):
        return await ref

    run(main())
    eventually(lambda: ["sleep", "30"] in fake.service.cancelled_execs, what="cancellation")
