"""Sandbox states (``SandboxStatus``) and their wire values."""

from __future__ import annotations

import enum
import logging

from ._proto import sandbox_pb2

_log = logging.getLogger("sbx")


class SandboxStatus(str, enum.Enum):
    """A sandbox's state. String-valued: ``SandboxStatus.RUNNING == "running"``."""

    RUNNING = "running"
    CREATING = "creating"
    PENDING = "pending"
    PAUSED = "paused"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"
    UNSPECIFIED = "unspecified"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_proto(cls, value: int) -> "SandboxStatus":
        status = _FROM_PROTO.get(value)
        if status is None:
            _log.warning("unknown sandbox state %d from the server; treating it as unspecified", value)
            return cls.UNSPECIFIED
        return status

    def to_proto(self) -> int:
        return _TO_PROTO[self]

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_running(self) -> bool:
        return self in RUNNING_STATES


_TO_PROTO = {
    SandboxStatus.UNSPECIFIED: sandbox_pb2.STATE_UNSPECIFIED,
    SandboxStatus.CREATING: sandbox_pb2.STATE_CREATING,
    SandboxStatus.RUNNING: sandbox_pb2.STATE_RUNNING,
    SandboxStatus.COMPLETED: sandbox_pb2.STATE_COMPLETED,
    SandboxStatus.FAILED: sandbox_pb2.STATE_FAILED,
    SandboxStatus.TERMINATING: sandbox_pb2.STATE_TERMINATING,
    SandboxStatus.TERMINATED: sandbox_pb2.STATE_TERMINATED,
    SandboxStatus.PENDING: sandbox_pb2.STATE_PENDING,
    SandboxStatus.PAUSED: sandbox_pb2.STATE_PAUSED,
}
_FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}

TERMINAL = frozenset({SandboxStatus.COMPLETED, SandboxStatus.FAILED, SandboxStatus.TERMINATED})
RUNNING_STATES = frozenset({SandboxStatus.RUNNING, SandboxStatus.PAUSED})
STARTING_STATES = frozenset(
    {SandboxStatus.PENDING, SandboxStatus.CREATING, SandboxStatus.UNSPECIFIED}
)
