"""``Session``: a group of sandboxes sharing ``SandboxDefaults``; closing it stops them all.

A session exists only in the client. It tracks the sandboxes it created (``session.sandbox()``)
or adopted (``adopt()``, ``list(adopt=True)``, ``from_id()``); a sandbox stopped on its own leaves
the session. Open sessions are closed at interpreter exit and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from typing import Any, Callable, Mapping, Sequence

from . import _cleanup, _listing, _loop
from ._channel import resolve_base_url
from ._defaults import SandboxDefaults, coerce_defaults
from ._sandbox import Sandbox
from ._status import SandboxStatus
from ._types import OperationRef
from ._function import P, R, RemoteFunction
from .exceptions import SandboxError, unsupported

_log = logging.getLogger("sbx")

CLOSE_GRACE_SECONDS = 10.0


class Session:
    """Creates sandboxes from shared defaults and stops every one of them on ``close()``."""

    def __init__(
        self,
        defaults: SandboxDefaults | Mapping[str, Any] | None = None,
        report_to: list[str] | None = None,
    ) -> None:
        self._defaults = coerce_defaults(defaults)
        self._report_to = report_to
        self._lock = threading.Lock()
        self._sandboxes: dict[int, Sandbox] = {}
        self._closed = False
        self._close_ref: OperationRef[None] | None = None
        _cleanup.register_session(self)

    @property
    def defaults(self) -> SandboxDefaults:
        return self._defaults

    @property
    def sandbox_count(self) -> int:
        """How many sandboxes the session currently tracks (stopped ones are forgotten)."""
        with self._lock:
            return len(self._sandboxes)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session sandboxes={self.sandbox_count} status={state}>"

    # ----------------------------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise SandboxError(f"Cannot {action}: session is closed. Create a new Session.")

    def _track(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._sandboxes[id(sandbox)] = sandbox
        sandbox._session = self

    def _attach_settings(self) -> _listing.AttachSettings:
        d = self._defaults
        return _listing.AttachSettings.make(
            resolve_base_url(None, d.base_url),
            d.request_timeout_seconds,
            d.poll_retry_budget_seconds,
            d.poll_rpc_timeout_seconds,
        )

    def _deregister(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._sandboxes.pop(id(sandbox), None)

    def sandbox(
        self,
        *,
        command: str | None = None,
        args: list[str] | None = None,
        container_image: str | None = None,
        tags: list[str] | None = None,
        runner_ids: Any = None,
        resources: Any = None,
        mounted_files: Any = None,
        network: Any = None,
        services: Any = None,
        volumes: Any = None,
        file_system_snapshot: Any = None,
        placement_mode: Any = None,
        placement_spillover: Any = None,
        template_id: Any = None,
        image_pull_credentials: Any = None,
        environment_variables: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        secrets: Any = None,
        request_timeout_seconds: float | None = None,
        **kwargs: Any,
    ) -> Sandbox:
        """An unstarted sandbox with the session's defaults; it starts on its first operation."""
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise TypeError(f"session.sandbox() got unexpected keyword argument(s): {names}")
        self._check_open("create sandbox")
        sandbox = Sandbox(
            command=command,
            args=args,
            defaults=self._defaults,
            container_image=container_image,
            tags=tags,
            runner_ids=runner_ids,
            resources=resources,
            mounted_files=mounted_files,
            network=network,
            services=services,
            volumes=volumes,
            file_system_snapshot=file_system_snapshot,
            placement_mode=placement_mode,
            placement_spillover=placement_spillover,
            template_id=template_id,
            image_pull_credentials=image_pull_credentials,
            environment_variables=environment_variables,
            annotations=annotations,
            secrets=secrets,
            request_timeout_seconds=request_timeout_seconds,
            _session=self,
        )
        self._track(sandbox)
        return sandbox

    def adopt(self, sandbox: Sandbox) -> None:
        """Makes the session responsible for stopping ``sandbox``."""
        self._check_open("adopt sandbox")
        if sandbox.sandbox_id is None:
            raise ValueError("Cannot adopt sandbox without sandbox_id")
        self._track(sandbox)

    def list(
        self,
        *,
        tags: Sequence[str] | None = None,
        status: str | SandboxStatus | None = None,
        profile_ids: Any = None,
        profile_names: Any = None,
        runner_ids: Any = None,
        show_terminated: bool = False,
        adopt: bool = False,
    ) -> OperationRef[list[Sandbox]]:
        """Lists sandboxes carrying the session's default tags (plus ``tags``).

        With ``adopt=True`` the found sandboxes join the session, so ``close()`` stops them —
        the way to clean up after a crashed run that used the same tags.
        """
        from ._spec import check_removed

        check_removed({"profile_ids": profile_ids, "profile_names": profile_names})
        if runner_ids:
            raise unsupported("runner placement", "runner_ids")
        if adopt:
            self._check_open("adopt sandboxes")
        request = _listing.list_request(self._defaults.merge_tags(tags), status, show_terminated)
        settings = self._attach_settings()

        async def run() -> list[Sandbox]:
            found = await _listing.list_sandboxes(settings, request, None)
            sandboxes = [Sandbox._from_proto(msg, settings) for msg in found]
            if adopt:
                for sandbox in sandboxes:
                    self._track(sandbox)
            return sandboxes

        return OperationRef(_loop.submit(run()))

    def from_id(self, sandbox_id: str, *, adopt: bool = True) -> OperationRef[Sandbox]:
        """Attaches to a sandbox by id; by default the session adopts it."""
        if adopt:
            self._check_open("adopt sandbox")
        settings = self._attach_settings()

        async def run() -> Sandbox:
            sandbox = Sandbox._from_proto(await _listing.get_sandbox(settings, sandbox_id, None), settings)
            if adopt:
                self._track(sandbox)
            return sandbox

        return OperationRef(_loop.submit(run()))

    def function(
        self,
        *,
        container_image: str | None = None,
        temp_dir: str | None = None,
        runner_ids: Any = None,
        resources: Any = None,
        mounted_files: Any = None,
        network: Any = None,
        services: Any = None,
        volumes: Any = None,
        file_system_snapshot: Any = None,
        placement_mode: Any = None,
        placement_spillover: Any = None,
        environment_variables: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        request_timeout_seconds: float | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]:
        """A decorator making a function a ``RemoteFunction``; the keywords configure the
        sandboxes its calls would run in.

        sbx does not run remote functions yet: the decorated function's ``local()`` works, and
        ``remote()``/``map()`` raise ``UnsupportedFeatureError``."""
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise TypeError(f"session.function() got unexpected keyword argument(s): {names}")
        self._check_open("create a remote function")
        options = {
            name: value
            for name, value in locals().items()
            if name not in ("self", "kwargs") and value is not None
        }

        def decorate(fn: Callable[P, R]) -> RemoteFunction[P, R]:
            return RemoteFunction(fn, options)

        return decorate

    def log_metrics(self, step: int | None = None, *, reset: bool = True) -> bool:
        """W&B metrics reporting of the hosted SDK: sbx raises ``UnsupportedFeatureError``."""
        raise unsupported("W&B metrics reporting", "Session.log_metrics()")

    def get_metrics(self) -> dict[str, Any]:
        """W&B metrics reporting of the hosted SDK: sbx raises ``UnsupportedFeatureError``;
        each sandbox's ``exec_stats`` has its command counts."""
        raise unsupported("W&B metrics reporting", "Session.get_metrics()")

    # ----------------------------------------------------------------------------------------

    def close(self) -> OperationRef[None]:
        """Stops every tracked sandbox, concurrently. Idempotent."""
        with self._lock:
            if self._close_ref is not None:
                return self._close_ref
            self._closed = True
            sandboxes = list(self._sandboxes.values())
            self._close_ref = OperationRef(_loop.submit(self._close_async(sandboxes)))
            ref = self._close_ref
        _cleanup.unregister_session(self)
        return ref

    async def _close_async(self, sandboxes: list[Sandbox]) -> None:
        outcomes = await asyncio.gather(
            *(sb._stop_async(CLOSE_GRACE_SECONDS, True, None) for sb in sandboxes),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if not failures:
            return
        for sandbox, outcome in zip(sandboxes, outcomes):
            if isinstance(outcome, BaseException):
                _log.warning("could not stop sandbox %s: %s", sandbox.sandbox_id, outcome)
        error = SandboxError(
            f"Failed to stop {len(failures)} sandbox(es). Some sandboxes may still be running."
        )
        group_type = getattr(builtins, "ExceptionGroup", None)
        causes = [f for f in failures if isinstance(f, Exception)]
        if group_type is not None and causes:
            raise error from group_type("sandbox stop failures", causes)
        raise error from failures[0]

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close().result()
        except Exception as error:  # noqa: BLE001
            if exc is None:
                raise
            _log.warning("closing the session failed: %s", error)

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.close()
        except Exception as error:  # noqa: BLE001
            if exc is None:
                raise
            _log.warning("closing the session failed: %s", error)
