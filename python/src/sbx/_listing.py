"""Finding sandboxes on the server: ``ListSandboxes`` (paginated) and ``GetSandbox``, for
``Sandbox.list``/``from_id`` and ``Session.list``/``from_id``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from ._channel import parse_base_url
from ._defaults import (
    DEFAULT_POLL_RETRY_BUDGET_SECONDS,
    DEFAULT_POLL_RPC_TIMEOUT_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    normalize_tags,
)
from ._proto import sandbox_pb2
from ._rpc import unary
from ._status import TERMINAL, SandboxStatus
from .exceptions import SandboxError, SandboxTimeoutError

LIST_MAX_PAGES = 100


@dataclass(frozen=True)
class AttachSettings:
    """Client settings for sandboxes found on the server (they were not built from defaults)."""

    base_url: str
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    poll_retry_budget_seconds: float = DEFAULT_POLL_RETRY_BUDGET_SECONDS
    poll_rpc_timeout_seconds: float = DEFAULT_POLL_RPC_TIMEOUT_SECONDS

    @classmethod
    def make(
        cls,
        base_url: str,
        request_timeout_seconds: float | None = None,
        poll_retry_budget_seconds: float | None = None,
        poll_rpc_timeout_seconds: float | None = None,
    ) -> "AttachSettings":
        return cls(
            base_url=base_url,
            request_timeout_seconds=request_timeout_seconds or DEFAULT_REQUEST_TIMEOUT_SECONDS,
            poll_retry_budget_seconds=DEFAULT_POLL_RETRY_BUDGET_SECONDS
            if poll_retry_budget_seconds is None
            else poll_retry_budget_seconds,
            poll_rpc_timeout_seconds=poll_rpc_timeout_seconds or DEFAULT_POLL_RPC_TIMEOUT_SECONDS,
        )


def list_request(
    tags: Sequence[str] | None, status: str | SandboxStatus | None, show_terminated: bool
) -> sandbox_pb2.ListSandboxesRequest:
    request = sandbox_pb2.ListSandboxesRequest(
        tags=list(normalize_tags(tags)), show_terminated=show_terminated
    )
    if status is not None:
        wanted = SandboxStatus(status)
        request.state = wanted.to_proto()
        if wanted in TERMINAL:
            request.show_terminated = True
    return request


async def list_sandboxes(
    settings: AttachSettings, request: sandbox_pb2.ListSandboxesRequest, timeout: float | None
) -> list[sandbox_pb2.Sandbox]:
    address = parse_base_url(settings.base_url)
    timeout = timeout or settings.request_timeout_seconds
    deadline = time.monotonic() + timeout
    found: list[sandbox_pb2.Sandbox] = []
    seen_tokens: set[str] = set()
    for _ in range(LIST_MAX_PAGES):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxTimeoutError(f"listing sandboxes took longer than {timeout:g}s")
        response = await unary(address, "ListSandboxes", request, timeout=remaining)
        found.extend(response.sandboxes)
        token = response.next_page_token
        if not token:
            return found
        if token in seen_tokens:
            raise SandboxError("ListSandboxes returned the same page token twice")
        seen_tokens.add(token)
        request.page_token = token
    raise SandboxError(f"ListSandboxes returned more than {LIST_MAX_PAGES} pages")


async def get_sandbox(
    settings: AttachSettings, sandbox_id: str, timeout: float | None
) -> sandbox_pb2.Sandbox:
    if not isinstance(sandbox_id, str) or not sandbox_id:
        raise ValueError("sandbox_id must be a non-empty string")
    msg = await unary(
        parse_base_url(settings.base_url),
        "GetSandbox",
        sandbox_pb2.GetSandboxRequest(sandbox_id=sandbox_id),
        timeout=timeout or settings.request_timeout_seconds,
        sandbox_id=sandbox_id,
    )
    if not msg.sandbox_id:
        msg.sandbox_id = sandbox_id
    return msg
