"""The SDK from async code."""

from __future__ import annotations

import asyncio

from sbx import Sandbox, SandboxStatus, Session


def test_async_use(defaults):
    async def main():
        async with Session(defaults) as session:
            sandboxes = [session.sandbox() for _ in range(3)]
            ready = await asyncio.gather(*(asyncio.ensure_future(_ready(sb)) for sb in sandboxes))
            assert all(sb.status is SandboxStatus.RUNNING for sb in ready)
            results = await asyncio.gather(*(sb.exec(["echo", str(i)]) for i, sb in enumerate(sandboxes)))
            assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]
            process = sandboxes[0].exec(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"])
            assert "".join([chunk async for chunk in process.stdout]) == "1\n2\n3\n"
            await sandboxes[1].write_file("/tmp/a.txt", b"async")
            assert await sandboxes[1].read_file("/tmp/a.txt") == b"async"
        assert all(sb.status is SandboxStatus.TERMINATED for sb in sandboxes)

    async def _ready(sb: Sandbox) -> Sandbox:
        return await sb

    asyncio.run(main())
