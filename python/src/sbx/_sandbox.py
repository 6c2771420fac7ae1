"""``Sandbox``: one isolated container with a main process, driven through sbxd.

Lifecycle as seen by the client: not started -> PENDING/CREATING -> RUNNING -> (TERMINATING) ->
COMPLETED | FAILED | TERMINATED. States never go backwards; after ``stop()`` only terminal states
are accepted. Constructing a ``Sandbox`` makes no call; the first operation starts it
(``Sandbox.run()`` starts it at once and returns when sbxd accepted it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import math
import os
import re
import time
import uuid
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, AsyncIterable, Callable, Iterable, Mapping, Sequence

import grpc

from . import _channel, _errors, _exec, _files, _listing, _logs, _loop, _trees
from ._channel import ServerAddress, parse_base_url, resolve_base_url
from ._defaults import SandboxDefaults, coerce_defaults
from ._proto import sandbox_pb2, sbx_pb2, sbx_pb2_grpc
from ._resources import gpu_from_proto, resources_from_proto
from ._rpc import unary
from ._spec import SandboxConfig, check_removed, check_unsupported, create_request, resolve_config
from ._status import RUNNING_STATES, STARTING_STATES, TERMINAL, SandboxStatus
from ._storage import FileSystemSnapshot, FileSystemSnapshotBucketConfig, FileSystemSnapshotStatus
from ._streams import StreamReader, StreamWriter
from ._types import OperationRef, Process, TerminalSession
from .exceptions import (
    SandboxError,
    SandboxFailedError,
    SandboxNotFoundError,
    SandboxNotRunningError,
    SandboxRequestTimeoutError,
    SandboxTerminalStateUnavailableError,
    SandboxTerminatedError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    SnapshotNotSupportedError,
    unsupported,
)

if TYPE_CHECKING:
    from ._session import Session

_log = logging.getLogger("sbx")

POLL_INITIAL_INTERVAL = 0.05
POLL_MAX_INTERVAL = 1.0
POLL_BACKOFF = 1.5
STOP_NOT_FOUND_GRACE_SECONDS = 2.0
STOP_RPC_MARGIN_SECONDS = 10.0
_REASON_TOKEN = re.compile(r"^([A-Z][A-Z0-9_]*)\b")


class _Deadline(Exception):
    """Internal: a polling deadline passed."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ts(ts: Any) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def _check_timeout(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds")
    return float(value)


def _check_command(command: Any) -> list[str]:
    if isinstance(command, (str, bytes)):
        raise TypeError(
            "command must be a list of strings such as ['python', '-c', 'print(1)'], not a "
            "single string; to run a shell line use ['/bin/sh', '-c', line]"
        )
    try:
        argv = list(command)
    except TypeError:
        raise TypeError(f"command must be a list of strings, not {type(command).__name__}") from None
    if not argv:
        raise ValueError("Command cannot be empty")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"command items must be strings, not {type(arg).__name__}")
    return argv


def _check_local_dir(path: Any, name: str, *, must_exist: bool) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} must be a non-empty path")
    if os.path.exists(text):
        if not os.path.isdir(text):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", text)
    elif must_exist:
        raise FileNotFoundError(errno.ENOENT, "no such directory", text)
    return text


def _check_path(filepath: Any) -> str:
    if not isinstance(filepath, str) or not filepath:
        raise ValueError("filepath must be a non-empty string")
    return filepath


def _snapshots_unsupported(what: str) -> SnapshotNotSupportedError:
    return SnapshotNotSupportedError(
        f"{what}: this server (sbx) does not provide file-system snapshots, a hosted-product "
        "feature",
        reason="CWSANDBOX_FSS_NOT_SUPPORTED",
    )


def _check_snapshot_id(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("file_system_snapshot_id must be a non-empty string")


class Sandbox:
    """An isolated container with its own filesystem, network and process space.

    ``Sandbox.run(...)`` creates and starts one; ``Sandbox(...)`` only describes it and the first
    operation starts it. Every argument not given comes from ``defaults`` (a ``SandboxDefaults``).
    Use it as a context manager (``with Sandbox.run() as sandbox:``) to stop it on exit.
    """

    def __init__(
        self,
        *,
        command: str | None = None,
        args: list[str] | None = None,
        defaults: SandboxDefaults | Mapping[str, Any] | None = None,
        container_image: str | None = None,
        tags: list[str] | None = None,
        base_url: str | None = None,
        request_timeout_seconds: float | None = None,
        poll_retry_budget_seconds: float | None = None,
        poll_rpc_timeout_seconds: float | None = None,
        max_lifetime_seconds: float | None = None,
        profile_ids: Any = None,
        profile_names: Any = None,
        runner_ids: Any = None,
        resources: Any = None,
        mounted_files: Any = None,
        s3_mount: Any = None,
        ports: Any = None,
        network: Any = None,
        file_system_snapshot: Any = None,
        max_timeout_seconds: Any = None,
        placement_mode: Any = None,
        placement_spillover: Any = None,
        services: Any = None,
        volumes: Any = None,
        template_id: Any = None,
        image_pull_credentials: Any = None,
        environment_variables: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        secrets: Any = None,
        _session: "Session | None" = None,
    ) -> None:
        params = dict(locals())
        check_removed(params)
        resolved_defaults = coerce_defaults(defaults)
        check_unsupported(params, resolved_defaults)
        config = resolve_config(
            resolved_defaults,
            command=command,
            args=args,
            container_image=container_image,
            tags=tags,
            base_url=base_url,
            request_timeout_seconds=request_timeout_seconds,
            poll_retry_budget_seconds=poll_retry_budget_seconds,
            poll_rpc_timeout_seconds=poll_rpc_timeout_seconds,
            max_lifetime_seconds=max_lifetime_seconds,
            resources=resources,
            mounted_files=mounted_files,
            network=network,
            services=services,
            environment_variables=environment_variables,
            annotations=annotations,
            secrets=secrets,
        )
        self._setup(config, session=_session)

    def _setup(self, config: SandboxConfig, *, session: "Session | None") -> None:
        self._config = config
        self._address: ServerAddress = parse_base_url(config.base_url)
        self._session = session
        self._request_id = str(uuid.uuid4())
        self._sandbox_id: str | None = None
        self._status: SandboxStatus | None = None
        self._status_updated_at: datetime | None = None
        self._state_reason = ""
        self._returncode: int | None = None
        self._cancelled = False
        self._stopped_by_client = False
        self._created_here = False
        self._start_task: asyncio.Future[None] | None = None
        self._stop_task: asyncio.Future[None] | None = None
        self._runner_id: str | None = None
        self._runner_group_id: str | None = None
        self._started_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._service_urls: tuple[tuple[int, str, str], ...] = ()
        self._exposed_ports: tuple[tuple[int, str], ...] | None = None
        self._dns_egress_names: tuple[str, ...] = ()
        self._resource_requests: dict[str, str] | None = None
        self._resource_limits: dict[str, str] | None = None
        self._resource_gpu: dict[str, Any] | None = None
        self._exec_stats = {
            "exec_count": 0,
            "exec_completed_ok": 0,
            "exec_completed_nonzero": 0,
            "exec_failures": 0,
        }

    # ----------------------------------------------------------------------------------------
    # Construction

    @classmethod
    def run(
        cls,
        *args: str,
        container_image: str | None = None,
        defaults: SandboxDefaults | Mapping[str, Any] | None = None,
        base_url: str | None = None,
        request_timeout_seconds: float | None = None,
        poll_retry_budget_seconds: float | None = None,
        poll_rpc_timeout_seconds: float | None = None,
        max_lifetime_seconds: float | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> "Sandbox":
        """Creates and starts a sandbox; returns once sbxd accepted it (it may still be PENDING).

        ``Sandbox.run()`` keeps the sandbox alive with an idle main process;
        ``Sandbox.run("python", "train.py")`` runs that command as the main process, and the
        sandbox finishes (COMPLETED or FAILED) when it exits.
        """
        for arg in args:
            if not isinstance(arg, str):
                raise TypeError(f"Sandbox.run() arguments must be strings, not {type(arg).__name__}")
        if "command" in kwargs or "args" in kwargs:
            raise TypeError("Sandbox.run() takes the command positionally: Sandbox.run('cmd', 'arg')")
        sandbox = cls(
            command=args[0] if args else None,
            args=list(args[1:]) if args else None,
            container_image=container_image,
            defaults=defaults,
            base_url=base_url,
            request_timeout_seconds=request_timeout_seconds,
            poll_retry_budget_seconds=poll_retry_budget_seconds,
            poll_rpc_timeout_seconds=poll_rpc_timeout_seconds,
            max_lifetime_seconds=max_lifetime_seconds,
            tags=tags,
            **kwargs,
        )
        sandbox.start().result()
        return sandbox

    @classmethod
    def session(cls, defaults: SandboxDefaults | Mapping[str, Any] | None = None) -> "Session":
        from ._session import Session

        return Session(defaults)

    @classmethod
    def _from_proto(
        cls,
        msg: sandbox_pb2.Sandbox,
        settings: "_listing.AttachSettings",
        session: "Session | None" = None,
    ) -> "Sandbox":
        """A handle to a sandbox found on the server (by ``list`` or ``from_id``)."""
        spec = msg.spec
        container = spec.containers[0] if spec.containers else sandbox_pb2.Container()
        config = SandboxConfig(
            command=container.command,
            args=list(container.args),
            container_image=container.image,
            base_url=settings.base_url,
            request_timeout_seconds=settings.request_timeout_seconds,
            poll_retry_budget_seconds=settings.poll_retry_budget_seconds,
            poll_rpc_timeout_seconds=settings.poll_rpc_timeout_seconds,
            max_lifetime_seconds=spec.max_lifetime_seconds or None,
            tags=list(spec.tags),
        )
        sandbox = cls.__new__(cls)
        sandbox._setup(config, session=session)
        sandbox._sandbox_id = msg.sandbox_id
        sandbox._status = SandboxStatus.PENDING
        sandbox._apply_status(msg.status, polling=True)
        return sandbox

    # ----------------------------------------------------------------------------------------
    # Properties

    @property
    def sandbox_id(self) -> str | None:
        return self._sandbox_id

    @property
    def status(self) -> SandboxStatus | None:
        """The last known status (no call); ``None`` before the sandbox was started."""
        return self._status

    @property
    def status_updated_at(self) -> datetime | None:
        return self._status_updated_at

    @property
    def state_reason(self) -> str:
        """sbx extension: the server's reason for the current state, e.g. ``"EXITED: ..."``."""
        return self._state_reason

    @property
    def returncode(self) -> int | None:
        """The main process's exit code once the sandbox finished and the server reported it."""
        return self._returncode

    @property
    def runner_id(self) -> str | None:
        return self._runner_id

    @property
    def runner_group_id(self) -> str | None:
        return self._runner_group_id

    @property
    def started_at(self) -> datetime | None:
        return self._started_at

    @property
    def expires_at(self) -> datetime | None:
        """sbx extension: when sbxd stops the sandbox for its lifetime (its create time plus its
        effective ``max_lifetime_seconds``), as last known; ``None`` once it has ended.
        ``extend_lifetime()`` pushes it back."""
        return self._expires_at

    @property
    def service_urls(self) -> tuple[tuple[int, str, str], ...]:
        return self._service_urls

    @property
    def exposed_ports(self) -> tuple[tuple[int, str], ...] | None:
        return self._exposed_ports

    @property
    def dns_egress_names(self) -> tuple[str, ...]:
        return self._dns_egress_names

    @property
    def resource_requests(self) -> dict[str, str] | None:
        return self._resource_requests

    @property
    def resource_limits(self) -> dict[str, str] | None:
        return self._resource_limits

    @property
    def resource_gpu(self) -> dict[str, Any] | None:
        return self._resource_gpu

    @property
    def file_system_snapshot_id(self) -> str | None:
        return None

    @property
    def exec_stats(self) -> dict[str, int]:
        return dict(self._exec_stats)

    @property
    def container_image(self) -> str:
        return self._config.container_image

    @property
    def tags(self) -> list[str]:
        return list(self._config.tags)

    def __repr__(self) -> str:
        if self._status is None:
            status = "not_started"
        else:
            status = self._status.value
        return f"<Sandbox id={self._sandbox_id} status={status}>"

    # ----------------------------------------------------------------------------------------
    # State bookkeeping (on the SDK loop)

    def _apply_status(self, st: sandbox_pb2.SandboxStatus, *, polling: bool) -> None:
        new = SandboxStatus.from_proto(st.state)
        if new is SandboxStatus.UNSPECIFIED:
            if not polling:
                return
            # The server no longer tracks it: treated as finished, like the hosted SDK.
            new = SandboxStatus.COMPLETED
        self._status_updated_at = _now()
        current = self._status
        if current in TERMINAL:
            return
        if current is SandboxStatus.TERMINATING and new not in TERMINAL:
            return
        self._status = new
        self._state_reason = st.state_reason
        if st.runner_id:
            self._runner_id = st.runner_id
        if st.runner_group_id:
            self._runner_group_id = st.runner_group_id
        started = _ts(st.start_time)
        if started is not None:
            self._started_at = started
        created = _ts(st.create_time)
        if new in TERMINAL:
            self._expires_at = None
        elif created is not None and st.effective_max_lifetime_seconds > 0:
            self._expires_at = datetime.fromtimestamp(
                created.timestamp() + st.effective_max_lifetime_seconds, tz=timezone.utc
            )
        if st.services:
            self._service_urls = tuple((s.port, s.name, s.url) for s in st.services if s.url)
            self._exposed_ports = tuple(
                (s.port, s.name) for s in st.services if s.visibility
            ) or None
        if st.effective_egress:
            self._dns_egress_names = tuple(r.dns_name for r in st.effective_egress if r.dns_name)
        if st.HasField("effective_resource_requirements"):
            req = st.effective_resource_requirements
            self._resource_requests = resources_from_proto(req.requests)
            self._resource_limits = resources_from_proto(req.limits)
            self._resource_gpu = gpu_from_proto(req.requests) or gpu_from_proto(req.limits)
        if new in TERMINAL and st.HasField("exit_code"):
            self._returncode = st.exit_code

    def _force_status(self, status: SandboxStatus) -> None:
        if self._status in TERMINAL:
            return
        self._status = status
        self._status_updated_at = _now()

    def _reason_code(self) -> str | None:
        match = _REASON_TOKEN.match(self._state_reason or "")
        return match.group(1) if match else None

    def _describe_end(self) -> str:
        parts = []
        if self._returncode is not None:
            parts.append(f"exit code {self._returncode}")
        if self._state_reason:
            parts.append(self._state_reason)
        return f" ({'; '.join(parts)})" if parts else ""

    def _failed_error(self) -> SandboxFailedError:
        return SandboxFailedError(
            f"Sandbox {self._sandbox_id} failed{self._describe_end()}", reason=self._reason_code()
        )

    def _terminated_error(self) -> SandboxTerminatedError:
        return SandboxTerminatedError(
            f"Sandbox {self._sandbox_id} was terminated{self._describe_end()}",
            reason=self._reason_code(),
        )

    def _deregister(self) -> None:
        if self._session is not None:
            self._session._deregister(self)

    def _submit(self, coro: Any) -> OperationRef[Any]:
        return OperationRef(_loop.submit(coro))

    # ----------------------------------------------------------------------------------------
    # Start

    def start(self) -> OperationRef[None]:
        """Sends the create request (once; later calls are no-ops). Does not wait for RUNNING."""
        return self._submit(self._start_async())

    async def _start_async(self) -> None:
        if self._cancelled:
            raise SandboxNotRunningError("Sandbox has been stopped")
        if self._sandbox_id is not None:
            return
        task = self._start_task
        if task is None:
            task = self._start_task = asyncio.ensure_future(self._create())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and self._start_task is task:
                self._start_task = None
            raise
        except BaseException:
            if self._start_task is task:
                self._start_task = None
            raise

    async def _create(self) -> None:
        request = create_request(self._config, self._request_id)
        msg = await unary(
            self._address, "CreateSandbox", request, timeout=self._config.request_timeout_seconds
        )
        if not msg.sandbox_id:
            raise SandboxError("CreateSandbox returned no sandbox id")
        self._sandbox_id = msg.sandbox_id
        self._created_here = True
        self._status = SandboxStatus.PENDING
        self._status_updated_at = _now()
        if msg.HasField("status"):
            self._apply_status(msg.status, polling=False)

    # ----------------------------------------------------------------------------------------
    # Polling

    async def _poll_once(self, timeout: float | None = None) -> None:
        rpc_timeout = self._config.poll_rpc_timeout_seconds
        if timeout is not None:
            rpc_timeout = max(0.001, min(rpc_timeout, timeout))
        msg = await unary(
            self._address,
            "GetSandbox",
            sandbox_pb2.GetSandboxRequest(sandbox_id=self._sandbox_id),
            timeout=rpc_timeout,
            sandbox_id=self._sandbox_id,
        )
        self._apply_status(msg.status, polling=True)

    async def _poll_until(
        self,
        done: Callable[[SandboxStatus | None], bool],
        deadline: float | None,
        *,
        after_stop: bool = False,
        missing_ok: bool = False,
    ) -> SandboxStatus:
        interval = POLL_INITIAL_INTERVAL
        transient_since: float | None = None
        missing_since: float | None = None
        while True:
            if done(self._status):
                assert self._status is not None
                return self._status
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                raise _Deadline()
            try:
                await self._poll_once(remaining)
                transient_since = None
            except SandboxNotFoundError:
                if not after_stop:
                    raise
                if missing_ok:
                    self._force_status(SandboxStatus.TERMINATED)
                    continue
                missing_since = missing_since or now
                if now - missing_since >= STOP_NOT_FOUND_GRACE_SECONDS:
                    raise SandboxTerminalStateUnavailableError(
                        f"Stop of sandbox {self._sandbox_id} succeeded, but its terminal state is "
                        "not observable (the server no longer knows it)"
                    ) from None
            except (SandboxUnavailableError, SandboxRequestTimeoutError):
                transient_since = transient_since or now
                if now - transient_since >= self._config.poll_retry_budget_seconds:
                    raise
            if done(self._status):
                continue
            sleep = interval if remaining is None else min(interval, max(0.0, deadline - time.monotonic()))  # type: ignore[operator]
            await asyncio.sleep(sleep)
            interval = min(interval * POLL_BACKOFF, POLL_MAX_INTERVAL)

    async def _wait_stable(self, timeout: float | None) -> SandboxStatus:
        """Starts if needed, then waits until the sandbox left PENDING/CREATING."""
        await self._start_async()
        timeout = self._config.request_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            return await self._poll_until(lambda s: s not in STARTING_STATES, deadline)
        except _Deadline:
            # A sandbox the node has no room for yet says what it waits for.
            why = f" ({self._status.name}: {self._state_reason})" if self._state_reason else ""
            raise SandboxTimeoutError(
                f"Sandbox {self._sandbox_id} did not become ready within {timeout:g}s{why}",
                reason=self._reason_code(),
            ) from None

    async def _ensure_running(self) -> str:
        """For operations that need a running sandbox: auto-start, wait for RUNNING, return the id."""
        if self._cancelled or self._stopped_by_client:
            name = f"Sandbox {self._sandbox_id}" if self._sandbox_id else "Sandbox"
            raise SandboxNotRunningError(f"{name} has been stopped")
        status = await self._wait_stable(None)
        if status in RUNNING_STATES:
            assert self._sandbox_id is not None
            return self._sandbox_id
        if status is SandboxStatus.FAILED:
            raise self._failed_error()
        if status is SandboxStatus.TERMINATING:
            raise SandboxNotRunningError(f"Sandbox {self._sandbox_id} has been stopped")
        raise SandboxNotRunningError(
            f"Sandbox {self._sandbox_id} is {status.value}{self._describe_end()}"
        )

    async def _ensure_readable(self) -> str:
        """For reads of files: a running sandbox, or one that has ended, whose files sbxd keeps
        for a while (``files_retention_seconds``); sbxd says so when they are gone."""
        if self._cancelled or self._stopped_by_client:
            name = f"Sandbox {self._sandbox_id}" if self._sandbox_id else "Sandbox"
            raise SandboxNotRunningError(f"{name} has been stopped")
        status = await self._wait_stable(None)
        if (status in RUNNING_STATES or status in TERMINAL) and self._sandbox_id is not None:
            return self._sandbox_id
        return await self._ensure_running()

    # ----------------------------------------------------------------------------------------
    # Waiting

    def wait(self, timeout: float | None = None) -> "Sandbox":
        """Blocks until the sandbox is RUNNING (or already finished normally); returns self.

        ``timeout`` defaults to ``request_timeout_seconds``. Raises ``SandboxFailedError``,
        ``SandboxTerminatedError``, ``SandboxTimeoutError``, ``SandboxNotRunningError``.
        """
        return _loop.run_sync(self._wait_async(_check_timeout("timeout", timeout)))

    async def _wait_async(self, timeout: float | None) -> "Sandbox":
        if self._cancelled:
            raise SandboxNotRunningError("Sandbox has been stopped before it started")
        status = await self._wait_stable(timeout)
        if status in RUNNING_STATES and not self._stopped_by_client:
            return self
        if status is SandboxStatus.FAILED:
            raise self._failed_error()
        if status is SandboxStatus.TERMINATED or self._stopped_by_client:
            raise self._terminated_error()
        return self

    def _waitable_future(self) -> concurrent.futures.Future[Any]:
        return _loop.submit(self._wait_async(None))

    def wait_until_complete(
        self, timeout: float | None = None, *, raise_on_termination: bool = True
    ) -> OperationRef["Sandbox"]:
        """Waits until the sandbox finished (COMPLETED, FAILED or TERMINATED); resolves to self.

        ``returncode`` is then set. Raises ``SandboxFailedError`` for FAILED and, unless
        ``raise_on_termination=False``, ``SandboxTerminatedError`` when it was stopped.
        """
        timeout = _check_timeout("timeout", timeout)
        return self._submit(self._wait_complete_async(timeout, raise_on_termination))

    async def _wait_complete_async(
        self, timeout: float | None, raise_on_termination: bool
    ) -> "Sandbox":
        if self._cancelled:
            raise SandboxNotRunningError("Sandbox has been stopped before it started")
        await self._start_async()
        timeout = self._config.request_timeout_seconds if timeout is None else timeout
        try:
            status = await self._poll_until(
                lambda s: s in TERMINAL, time.monotonic() + timeout, after_stop=self._stopped_by_client
            )
        except _Deadline:
            raise SandboxTimeoutError(f"Timed out waiting for sandbox {self._sandbox_id}") from None
        if status is SandboxStatus.FAILED:
            raise self._failed_error()
        if raise_on_termination and (
            status is SandboxStatus.TERMINATED or self._stopped_by_client
        ):
            raise self._terminated_error()
        return self

    def __await__(self) -> Any:
        """``await sandbox`` starts it if needed and waits until it is running."""
        return asyncio.wrap_future(_loop.submit(self._wait_async(None))).__await__()

    def get_status(self) -> SandboxStatus:
        """Asks sbxd for the current status (cached once the sandbox finished)."""
        if self._cancelled:
            raise SandboxNotRunningError("Sandbox was cancelled before starting")
        if self._sandbox_id is None and self._start_task is None:
            raise SandboxNotRunningError("Sandbox has not been started")
        if self._status in TERMINAL:
            self._status_updated_at = _now()
            return self._status  # type: ignore[return-value]
        return _loop.run_sync(self._get_status_async())

    async def _get_status_async(self) -> SandboxStatus:
        await self._start_async()
        await self._poll_once()
        assert self._status is not None
        return self._status

    # ----------------------------------------------------------------------------------------
    # Stop

    def stop(
        self,
        *,
        snapshot_on_stop: bool = False,
        graceful_shutdown_seconds: float = 10.0,
        missing_ok: bool = False,
        wait_for_ready: bool = True,
        request_id: str | None = None,
    ) -> OperationRef[None]:
        """Stops the sandbox: SIGTERM to the main process, SIGKILL after
        ``graceful_shutdown_seconds``. Resolves when sbxd reports a terminal state.

        A sandbox that was never started is just marked stopped. Concurrent calls share one stop.
        ``missing_ok=True`` treats an unknown sandbox as already stopped.
        """
        if snapshot_on_stop:
            raise _snapshots_unsupported("stop(snapshot_on_stop=True)")
        grace = float(graceful_shutdown_seconds)
        if not math.isfinite(grace) or grace < 0:
            raise ValueError("graceful_shutdown_seconds must be a finite number >= 0")
        return self._submit(self._stop_async(grace, missing_ok, request_id))

    async def _stop_async(self, grace: float, missing_ok: bool, request_id: str | None) -> None:
        if self._stop_task is None:
            if self._sandbox_id is None and self._start_task is None:
                self._cancelled = True
                self._deregister()
                return
            if self._status in TERMINAL:
                await self._delete_ended()
                self._deregister()
                return
            self._stop_task = asyncio.ensure_future(self._do_stop(grace, missing_ok, request_id))
        task = self._stop_task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except BaseException:
            if self._stop_task is task:
                self._stop_task = None
            raise

    async def _delete_ended(self) -> None:
        """A sandbox that ended by itself is still deleted: sbxd keeps its files for reading until
        then (``files_retention_seconds``), and a stop means they are no longer wanted."""
        if self._stopped_by_client or self._sandbox_id is None:
            return
        self._stopped_by_client = True
        request = sandbox_pb2.DeleteSandboxRequest(sandbox_id=self._sandbox_id, allow_missing=True)
        try:
            await unary(
                self._address,
                "DeleteSandbox",
                request,
                timeout=self._config.request_timeout_seconds,
                sandbox_id=self._sandbox_id,
            )
        except SandboxNotFoundError:
            pass  # deleted already, or its record is gone: nothing is kept either way

    async def _do_stop(self, grace: float, missing_ok: bool, request_id: str | None) -> None:
        if self._sandbox_id is None and self._start_task is not None:
            try:
                await asyncio.shield(self._start_task)
            except Exception:  # noqa: BLE001 - the create failed: there is nothing to stop
                self._cancelled = True
                self._deregister()
                return
        if self._status in TERMINAL:
            await self._delete_ended()
            self._deregister()
            return
        self._stopped_by_client = True
        request = sandbox_pb2.DeleteSandboxRequest(
            sandbox_id=self._sandbox_id,
            grace_period_seconds=int(math.ceil(grace)),
            allow_missing=missing_ok,
            request_id=request_id or "",
        )
        try:
            response = await unary(
                self._address,
                "DeleteSandbox",
                request,
                timeout=grace + STOP_RPC_MARGIN_SECONDS,
                sandbox_id=self._sandbox_id,
            )
        except SandboxNotFoundError:
            if not missing_ok:
                raise
            self._force_status(SandboxStatus.TERMINATED)
            self._deregister()
            return
        if response.HasField("sandbox") and response.sandbox.sandbox_id:
            self._apply_status(response.sandbox.status, polling=False)
        elif missing_ok:
            self._force_status(SandboxStatus.TERMINATED)
        if self._status not in TERMINAL:
            self._force_status(SandboxStatus.TERMINATING)
        budget = max(self._config.request_timeout_seconds, grace + 30.0)
        try:
            await self._poll_until(
                lambda s: s in TERMINAL,
                time.monotonic() + budget,
                after_stop=True,
                missing_ok=missing_ok,
            )
        except _Deadline:
            raise SandboxTimeoutError(
                f"Sandbox {self._sandbox_id} did not finish within {budget:g}s of being stopped"
            ) from None
        self._deregister()

    @classmethod
    def delete(
        cls,
        sandbox_id: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
        missing_ok: bool = False,
    ) -> OperationRef[None]:
        """Deletes a sandbox by id immediately (no grace period) without waiting for it to end."""
        address = parse_base_url(resolve_base_url(base_url))
        timeout = _check_timeout("timeout_seconds", timeout_seconds) or SandboxDefaults.request_timeout_seconds

        async def run() -> None:
            request = sandbox_pb2.DeleteSandboxRequest(
                sandbox_id=sandbox_id, allow_missing=missing_ok
            )
            try:
                await unary(address, "DeleteSandbox", request, timeout=timeout, sandbox_id=sandbox_id)
            except SandboxNotFoundError:
                if not missing_ok:
                    raise

        return OperationRef(_loop.submit(run()))

    # ----------------------------------------------------------------------------------------
    # Hosted-product features sbx does not provide: they validate their arguments, then raise.

    @classmethod
    def run_from_template(
        cls,
        template_id: str,
        /,
        *args: str,
        command: str | None = None,
        defaults: SandboxDefaults | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> "Sandbox":
        """Creates a sandbox from a server-side template (hosted product; sbx raises
        ``UnsupportedFeatureError``)."""
        if not isinstance(template_id, str) or not template_id:
            raise ValueError("template_id must be a non-empty string")
        raise unsupported("sandbox templates", "Sandbox.run_from_template()")

    def snapshot(
        self, *, wait_for_ready: bool = True, request_id: str | None = None
    ) -> OperationRef[str]:
        """Snapshots the sandbox's workspace volume (hosted product; sbx raises
        ``SnapshotNotSupportedError``)."""
        raise _snapshots_unsupported("Sandbox.snapshot()")

    @classmethod
    def get_snapshot(
        cls,
        file_system_snapshot_id: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
    ) -> OperationRef[FileSystemSnapshot]:
        """A file-system snapshot by id (hosted product; sbx raises ``SnapshotNotSupportedError``)."""
        _check_snapshot_id(file_system_snapshot_id)
        _check_timeout("timeout_seconds", timeout_seconds)
        raise _snapshots_unsupported("Sandbox.get_snapshot()")

    @classmethod
    def list_snapshots(
        cls,
        *,
        source_sandbox_id: str | None = None,
        status: FileSystemSnapshotStatus | str | None = None,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
    ) -> OperationRef[list[FileSystemSnapshot]]:
        """File-system snapshots, optionally of one sandbox or in one status (hosted product;
        sbx raises ``SnapshotNotSupportedError``)."""
        if status is not None:
            FileSystemSnapshotStatus(str(status).lower())
        _check_timeout("timeout_seconds", timeout_seconds)
        raise _snapshots_unsupported("Sandbox.list_snapshots()")

    @classmethod
    def delete_snapshot(
        cls,
        file_system_snapshot_id: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
        missing_ok: bool = False,
    ) -> OperationRef[None]:
        """Deletes a file-system snapshot (hosted product; sbx raises
        ``SnapshotNotSupportedError``)."""
        _check_snapshot_id(file_system_snapshot_id)
        _check_timeout("timeout_seconds", timeout_seconds)
        raise _snapshots_unsupported("Sandbox.delete_snapshot()")

    @classmethod
    def get_snapshot_bucket_config(
        cls, *, base_url: str | None = None, timeout_seconds: float | None = None
    ) -> OperationRef[FileSystemSnapshotBucketConfig]:
        """Where snapshots are archived (hosted product; sbx raises
        ``SnapshotNotSupportedError``)."""
        _check_timeout("timeout_seconds", timeout_seconds)
        raise _snapshots_unsupported("Sandbox.get_snapshot_bucket_config()")

    @classmethod
    def set_snapshot_bucket_config(
        cls,
        *,
        bucket_name: str,
        region: str = "",
        base_url: str | None = None,
        timeout_seconds: float | None = None,
    ) -> OperationRef[FileSystemSnapshotBucketConfig]:
        """Sets where snapshots are archived (hosted product; sbx raises
        ``SnapshotNotSupportedError``)."""
        if not isinstance(bucket_name, str) or not bucket_name:
            raise ValueError("bucket_name must be a non-empty string")
        _check_timeout("timeout_seconds", timeout_seconds)
        raise _snapshots_unsupported("Sandbox.set_snapshot_bucket_config()")

    # ----------------------------------------------------------------------------------------
    # Discovery

    @classmethod
    def list(
        cls,
        *,
        tags: Sequence[str] | None = None,
        status: str | SandboxStatus | None = None,
        profile_ids: Any = None,
        profile_names: Any = None,
        runner_ids: Any = None,
        show_terminated: bool = False,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
        poll_retry_budget_seconds: float | None = None,
        poll_rpc_timeout_seconds: float | None = None,
    ) -> OperationRef[list["Sandbox"]]:
        """Lists sandboxes that carry all ``tags`` (and have ``status``, if given).

        Finished sandboxes are included with ``show_terminated=True`` or a terminal ``status``.
        """
        check_removed({"profile_ids": profile_ids, "profile_names": profile_names})
        if runner_ids:
            raise unsupported("runner placement", "runner_ids")
        request = _listing.list_request(tags, status, show_terminated)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        settings = _listing.AttachSettings.make(
            resolve_base_url(base_url), None, poll_retry_budget_seconds, poll_rpc_timeout_seconds
        )

        async def run() -> list[Sandbox]:
            found = await _listing.list_sandboxes(settings, request, timeout)
            return [cls._from_proto(msg, settings) for msg in found]

        return OperationRef(_loop.submit(run()))

    @classmethod
    def from_id(
        cls,
        sandbox_id: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float | None = None,
        poll_retry_budget_seconds: float | None = None,
        poll_rpc_timeout_seconds: float | None = None,
    ) -> OperationRef["Sandbox"]:
        """Attaches to an existing sandbox (running or finished) by id."""
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        settings = _listing.AttachSettings.make(
            resolve_base_url(base_url), None, poll_retry_budget_seconds, poll_rpc_timeout_seconds
        )

        async def run() -> Sandbox:
            return cls._from_proto(await _listing.get_sandbox(settings, sandbox_id, timeout), settings)

        return OperationRef(_loop.submit(run()))

    # ----------------------------------------------------------------------------------------
    # Exec

    def exec(
        self,
        command: Sequence[str],
        *,
        cwd: str | None = None,
        check: bool = False,
        timeout_seconds: float | None = None,
        stdin: bool = False,
    ) -> Process:
        """Runs ``command`` (an argv list, no shell) in the sandbox; returns a ``Process`` at once.

        Starts the sandbox and waits for RUNNING first if needed (not counted in the timeout).
        ``cwd`` must be absolute. ``check=True`` raises ``SandboxExecutionError`` on a non-zero
        exit. ``timeout_seconds`` (default ``request_timeout_seconds``) kills the command and
        raises ``SandboxTimeoutError``. ``stdin=True`` gives ``process.stdin``.
        """
        argv = _check_command(command)
        wire = argv
        if cwd is not None:
            if not isinstance(cwd, str) or not cwd.startswith("/"):
                raise ValueError("cwd must be an absolute path")
            wire = _exec.with_cwd(argv, cwd)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        if timeout is None:
            timeout = self._config.request_timeout_seconds
        stdout: StreamReader[str] = StreamReader()
        stderr: StreamReader[str] = StreamReader()
        writer = StreamWriter() if stdin else None
        future = _loop.submit(
            _exec.run_process(
                self._address,
                self._ensure_running,
                argv,
                wire,
                timeout=timeout,
                check=bool(check),
                stdout=stdout,
                stderr=stderr,
                stdin=writer,
                stats=self._exec_stats,
            )
        )
        return Process(future, command=argv, stdout=stdout, stderr=stderr, stdin=writer)

    def shell(
        self,
        command: Sequence[str] | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
    ) -> TerminalSession:
        """Starts an interactive TTY session (default ``/bin/bash``), without a deadline."""
        argv = _check_command(command) if command is not None else ["/bin/bash"]
        output: StreamReader[bytes] = StreamReader()
        writer = StreamWriter()
        future = _loop.submit(
            _exec.run_terminal(
                self._address, self._ensure_running, argv, width or 0, height or 0, output, writer
            )
        )
        return TerminalSession(future, command=argv, output=output, stdin=writer)

    # ----------------------------------------------------------------------------------------
    # Files

    def read_file(self, filepath: str, *, timeout_seconds: float | None = None) -> OperationRef[bytes]:
        """Reads a file of the sandbox (relative paths: from the image's working directory).

        Also once the sandbox has ended by itself, while sbxd keeps its files
        (``files_retention_seconds``, an hour by default) and until it is deleted."""
        path = _check_path(filepath)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        timeout = timeout or self._config.request_timeout_seconds

        async def run() -> bytes:
            sandbox_id = await self._ensure_readable()
            return await _files.read_file(self._address, sandbox_id, path, timeout)

        return self._submit(run())

    def write_file(
        self, filepath: str, contents: bytes, *, timeout_seconds: float | None = None
    ) -> OperationRef[None]:
        """Writes ``contents`` to a file of the sandbox, creating parent directories and replacing
        the file atomically."""
        path = _check_path(filepath)
        if isinstance(contents, str):
            raise TypeError("contents must be bytes; encode text first (e.g. text.encode())")
        if not isinstance(contents, (bytes, bytearray, memoryview)):
            raise TypeError(f"contents must be bytes, not {type(contents).__name__}")
        data = bytes(contents)
        if len(data) > _files.MAX_BUFFERED_FILE_BYTES:
            raise _files.too_large(path, len(data), "write_file")
        timeout = _check_timeout("timeout_seconds", timeout_seconds) or self._config.request_timeout_seconds

        async def run() -> None:
            sandbox_id = await self._ensure_running()
            await _files.write_file(self._address, sandbox_id, path, data, timeout)

        return self._submit(run())

    def read_file_streaming(
        self, filepath: str, *, timeout_seconds: float | None = None
    ) -> StreamReader[bytes]:
        """Streams a file of the sandbox as ``bytes`` chunks, any size. ``close()`` cancels."""
        path = _check_path(filepath)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        holder: list[concurrent.futures.Future[None]] = []
        reader: StreamReader[bytes] = StreamReader(
            maxsize=64, on_close=lambda: holder and holder[0].cancel()
        )

        async def run() -> None:
            error: BaseException | None = None
            try:
                sandbox_id = await self._ensure_readable()
                await _files.stream_read(
                    self._address, sandbox_id, path, timeout=timeout, on_chunk=reader._put
                )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                error = exc
            finally:
                reader._finish(error)

        holder.append(_loop.submit(run()))
        return reader

    def write_file_streaming(
        self,
        filepath: str,
        source: bytes | Iterable[bytes] | AsyncIterable[bytes],
        *,
        timeout_seconds: float | None = None,
    ) -> OperationRef[None]:
        """Writes a file of any size from bytes, an iterable or an async iterable of bytes."""
        path = _check_path(filepath)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        chunks = _files.chunk_source(source)

        async def run() -> None:
            sandbox_id = await self._ensure_running()
            await _files.stream_write(self._address, sandbox_id, path, chunks, timeout=timeout)

        return self._submit(run())

    def upload_dir(
        self, local_dir: str | os.PathLike[str], remote_dir: str, *, timeout_seconds: float | None = None
    ) -> OperationRef[None]:
        """Copies the contents of the local directory ``local_dir`` into ``remote_dir`` of the
        sandbox (created with its parents when missing; existing files are replaced).

        sbx addition, over sbxd's directory-copy API: the tree streams as a tar, a file at a
        time, never whole in memory. Symbolic links are copied as links; devices, FIFOs and
        sockets are left out. No deadline unless ``timeout_seconds`` is given."""
        local = _check_local_dir(local_dir, "local_dir", must_exist=True)
        remote = _check_path(remote_dir)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)

        async def run() -> None:
            sandbox_id = await self._ensure_running()
            await _trees.upload(self._address, sandbox_id, local, remote, timeout=timeout)

        return self._submit(run())

    def extend_lifetime(
        self, seconds: float, *, timeout_seconds: float | None = None
    ) -> OperationRef[datetime]:
        """sbx extension: adds ``seconds`` to the running sandbox's lifetime (up to the node's
        ``max_lifetime_seconds`` in all, else ``SandboxValidationError``) and resolves to when
        sbxd will now stop it (also ``expires_at``). A sandbox that is not running raises
        ``SandboxNotRunningError``."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError("seconds must be a number")
        if not math.isfinite(seconds) or seconds < 1 or seconds > 2**31 - 1:
            raise ValueError("seconds must be at least 1 (and fit in 32 bits)")
        timeout = _check_timeout("timeout_seconds", timeout_seconds) or self._config.request_timeout_seconds

        async def run() -> datetime:
            sandbox_id = await self._ensure_running()
            stub = sbx_pb2_grpc.LifetimeServiceStub(_channel.channel(self._address))
            try:
                reply = await stub.ExtendLifetime(
                    sbx_pb2.ExtendLifetimeRequest(sandbox_id=sandbox_id, seconds=math.ceil(seconds)),
                    timeout=timeout,
                    metadata=_channel.call_metadata(),
                )
            except grpc.aio.AioRpcError as err:
                raise _errors.translate(
                    err, operation="ExtendLifetime", endpoint=self._address, sandbox_id=sandbox_id
                ) from None
            expires = reply.expire_time.ToDatetime(tzinfo=timezone.utc)
            self._expires_at = expires
            return expires

        return self._submit(run())

    def download_dir(
        self, remote_dir: str, local_dir: str | os.PathLike[str], *, timeout_seconds: float | None = None
    ) -> OperationRef[None]:
        """Copies the contents of ``remote_dir`` of the sandbox into the local directory
        ``local_dir`` (created with its parents when missing; existing files are replaced).

        sbx addition, over sbxd's directory-copy API: each entry is written as it arrives. What
        comes out of a sandbox is untrusted, so nothing is written outside ``local_dir``: an
        entry with an absolute name or ``..``, a symbolic link pointing outside, a hard link, a
        device or a FIFO fails the download with ``SandboxFileError`` naming it. No deadline
        unless ``timeout_seconds`` is given."""
        remote = _check_path(remote_dir)
        local = _check_local_dir(local_dir, "local_dir", must_exist=False)
        timeout = _check_timeout("timeout_seconds", timeout_seconds)

        async def run() -> None:
            sandbox_id = await self._ensure_readable()
            await _trees.download(self._address, sandbox_id, remote, local, timeout=timeout)

        return self._submit(run())

    # ----------------------------------------------------------------------------------------
    # Logs

    def stream_logs(
        self,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        since_time: datetime | None = None,
        timestamps: bool = False,
        timeout_seconds: float | None = None,
    ) -> StreamReader[str]:
        """The main process's output, line by line. ``follow=True`` keeps streaming until the
        sandbox ends (no deadline); otherwise what was logged so far is returned."""
        if since_time is not None and (since_time.tzinfo is None or since_time.utcoffset() is None):
            raise ValueError("since_time must be timezone-aware")
        if tail_lines is not None and (isinstance(tail_lines, bool) or not isinstance(tail_lines, int) or tail_lines < 0):
            raise ValueError("tail_lines must be a non-negative integer")
        timeout = _check_timeout("timeout_seconds", timeout_seconds)
        holder: list[concurrent.futures.Future[None]] = []
        reader: StreamReader[str] = StreamReader(
            maxsize=1024, on_close=lambda: holder and holder[0].cancel()
        )

        async def run() -> None:
            error: BaseException | None = None
            try:
                if follow:
                    await self._ensure_running_for_follow()
                else:
                    if self._cancelled:
                        raise SandboxNotRunningError("Sandbox has been stopped before it started")
                    await self._wait_stable(None)
                await _logs.stream_logs(
                    self._address,
                    self._sandbox_id,  # type: ignore[arg-type]
                    follow=follow,
                    tail_lines=tail_lines,
                    since_time=since_time,
                    timestamps=timestamps,
                    timeout=None if follow else (timeout or self._config.request_timeout_seconds),
                    emit=reader._put,
                )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                error = exc
            finally:
                reader._finish(error)

        holder.append(_loop.submit(run()))
        return reader

    async def _ensure_running_for_follow(self) -> str:
        if self._status is SandboxStatus.TERMINATING:
            raise SandboxNotRunningError(
                f"Sandbox {self._sandbox_id} is terminating (follow=True requires a running sandbox)"
            )
        return await self._ensure_running()

    # ----------------------------------------------------------------------------------------
    # Context managers and finalisation

    def __enter__(self) -> "Sandbox":
        self.start().result()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._exit(exc is not None)

    def _exit(self, in_error: bool) -> None:
        if self._sandbox_id is None and self._start_task is None:
            return
        try:
            self.stop().result()
        except Exception as error:  # noqa: BLE001
            if not in_error:
                raise
            _log.warning("stopping sandbox %s failed: %s", self._sandbox_id, error)

    async def __aenter__(self) -> "Sandbox":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._sandbox_id is None and self._start_task is None:
            return
        try:
            await self.stop()
        except Exception as error:  # noqa: BLE001
            if exc is None:
                raise
            _log.warning("stopping sandbox %s failed: %s", self._sandbox_id, error)

    def __del__(self) -> None:
        try:
            if (
                self._created_here
                and self._session is None
                and self._status not in TERMINAL
                and not self._stopped_by_client
            ):
                warnings.warn(
                    f"Sandbox {self._sandbox_id} was not stopped. Use 'sandbox.stop().result()' "
                    "or the context manager pattern.",
                    ResourceWarning,
                    stacklevel=2,
                )
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


__all__ = ["Sandbox", "SandboxStatus"]
