"""Where sbxd is and how to talk to it: base URL resolution, gRPC channels, credentials.

Base URL: an explicit ``base_url``, else ``$SBX_BASE_URL``, else ``$CWSANDBOX_BASE_URL``, else the
local socket ``unix:///run/sbx/sbxd.sock``. Accepted forms: ``unix:///path`` (or ``unix:/path``),
``http://host:port`` (plaintext) and ``https://host[:port]`` (TLS; ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``
selects a custom CA bundle). API key: ``$SBX_API_KEY``, else ``$CWSANDBOX_API_KEY``, else
``$WANDB_API_KEY``, sent as ``authorization: Bearer <key>``.

Channels are cached per endpoint and shared by all sandboxes; they live on the SDK's loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
import grpc.aio

from ._proto import sandbox_pb2_grpc
from ._version import __version__

DEFAULT_SOCKET_PATH = "/run/sbx/sbxd.sock"
DEFAULT_BASE_URL = f"unix://{DEFAULT_SOCKET_PATH}"
BASE_URL_ENV = ("SBX_BASE_URL", "CWSANDBOX_BASE_URL")
API_KEY_ENV = ("SBX_API_KEY", "CWSANDBOX_API_KEY", "WANDB_API_KEY")
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
USER_AGENT = f"sbx-python/{__version__}"


@dataclass(frozen=True)
class ServerAddress:
    base_url: str
    target: str
    secure: bool
    unix_path: str | None = None


def resolve_base_url(explicit: str | None = None, default: str | None = None) -> str:
    candidates = [explicit] + [os.environ.get(name) for name in BASE_URL_ENV] + [default]
    for candidate in candidates:
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/") or candidate.strip()
    return DEFAULT_BASE_URL


def parse_base_url(base_url: str) -> ServerAddress:
    url = base_url.strip()
    if url.startswith("unix:"):
        rest = url[len("unix:") :]
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ValueError(f"base_url {base_url!r} names no socket path")
        return ServerAddress(base_url=url, target=f"unix:{path}", secure=False, unix_path=path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base_url {base_url!r} is not supported; use unix:///path/to/sbxd.sock, "
            "http://host:port or https://host:port"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"base_url {base_url!r} must not have a path, query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"base_url {base_url!r} has an invalid port") from exc
    secure = parts.scheme == "https"
    if port is None:
        port = 443 if secure else 80
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return ServerAddress(base_url=url, target=f"{host}:{port}", secure=secure)


def api_key() -> str | None:
    for name in API_KEY_ENV:
        value = os.environ.get(name)
        if value and value.strip():
            return value.strip()
    return None


def call_metadata() -> tuple[tuple[str, str], ...]:
    key = api_key()
    return (("authorization", f"Bearer {key}"),) if key else ()


_channels: dict[tuple[str, bool], grpc.aio.Channel] = {}
_stubs: dict[tuple[str, bool], sandbox_pb2_grpc.SandboxServiceStub] = {}


def _forget_after_fork() -> None:
    # The parent's channels belong to its event loop thread, which a forked child does not have.
    _channels.clear()
    _stubs.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _options(endpoint: ServerAddress) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", USER_AGENT),
    ]
    if endpoint.unix_path is not None:
        options.append(("grpc.default_authority", "localhost"))
    return options


def channel(endpoint: ServerAddress) -> grpc.aio.Channel:
    """The shared channel for ``endpoint``; call on the SDK's loop only."""
    key = (endpoint.target, endpoint.secure)
    ch = _channels.get(key)
    if ch is None:
        if endpoint.secure:
            creds = grpc.ssl_channel_credentials()
            ch = grpc.aio.secure_channel(endpoint.target, creds, options=_options(endpoint))
        else:
            ch = grpc.aio.insecure_channel(endpoint.target, options=_options(endpoint))
        _channels[key] = ch
    return ch


def sandbox_stub(endpoint: ServerAddress) -> sandbox_pb2_grpc.SandboxServiceStub:
    key = (endpoint.target, endpoint.secure)
    stub = _stubs.get(key)
    if stub is None or key not in _channels:
        stub = sandbox_pb2_grpc.SandboxServiceStub(channel(endpoint))
        _stubs[key] = stub
    return stub


async def close_all() -> None:
    channels = list(_channels.values())
    _channels.clear()
    _stubs.clear()
    for ch in channels:
        try:
            await ch.close(grace=None)
        except Exception:  # noqa: BLE001 - closing at exit must not raise
            pass
