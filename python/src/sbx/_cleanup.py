"""Stopping sessions' sandboxes when the program ends.

Open sessions are closed (their sandboxes stopped) at interpreter exit and on the first SIGINT or
SIGTERM; then the previous signal handler runs (``KeyboardInterrupt`` for SIGINT by default, or
the default action). A second signal during that cleanup exits at once with ``128 + signum``.
Sandboxes created directly with ``Sandbox.run()`` belong to no session and are not stopped here
(their lifetime limit ends them), as in the hosted product.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import _channel, _loop

if TYPE_CHECKING:
    from ._session import Session

_log = logging.getLogger("sbx")

EXIT_CLEANUP_TIMEOUT_SECONDS = 60.0

_lock = threading.Lock()
_sessions: dict[int, "Session"] = {}
_previous_handlers: dict[int, Any] = {}
_cleaning_up = False


def register_session(session: "Session") -> None:
    with _lock:
        _sessions[id(session)] = session
    _install()


def unregister_session(session: "Session") -> None:
    with _lock:
        _sessions.pop(id(session), None)


def _install() -> None:
    # Signal handlers can only be set from the main thread; a session created elsewhere first
    # leaves them to the next session created on the main thread.
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signum in _previous_handlers:
            continue
        try:
            previous = signal.getsignal(signum)
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not allowed here (e.g. embedded interpreters)
            continue
        _previous_handlers[signum] = previous


def _forget_after_fork() -> None:
    # A forked child must never stop the parent's sandboxes when it exits.
    _sessions.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def close_all_sessions(timeout: float = EXIT_CLEANUP_TIMEOUT_SECONDS) -> None:
    with _lock:
        sessions = list(_sessions.values())
    refs = []
    for session in sessions:
        try:
            refs.append(session.close())
        except Exception as error:  # noqa: BLE001 - cleanup must go on
            _log.warning("closing a session failed: %s", error)
    for ref in refs:
        try:
            ref.result(timeout)
        except Exception as error:  # noqa: BLE001
            _log.warning("stopping a session's sandboxes failed: %s", error)


def _at_exit() -> None:
    """Stops open sessions' sandboxes, then closes the channels and the SDK's loop."""
    close_all_sessions()
    if _loop.LOOP.running():
        try:
            _loop.run_sync(_channel.close_all(), timeout=5.0)
        except Exception:  # noqa: BLE001
            pass
        _loop.LOOP.shutdown()


def _on_signal(signum: int, frame: Any) -> None:
    global _cleaning_up
    if _cleaning_up:
        sys.exit(128 + signum)
    _cleaning_up = True
    try:
        close_all_sessions()
    finally:
        _cleaning_up = False
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# Registered when the SDK is imported, after grpc, so that it runs before grpc's own exit hooks.
atexit.register(_at_exit)
