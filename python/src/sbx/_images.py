"""Images ahead of time: ``pull_image()`` over sbxd's ``sbx.v1.ImageService`` (an sbx addition;
the hosted service pulls on create only).

A create of an image the node does not have waits for the whole pull; pulling first shows its
progress and keeps that wait out of the create. Only operators may pull (the local socket, or an
API key with ``operator``): others get ``SandboxError`` with reason ``PERMISSION_DENIED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import grpc

from . import _channel, _errors, _loop
from ._channel import parse_base_url, resolve_base_url
from ._proto import sbx_pb2, sbx_pb2_grpc
from ._sandbox import _check_timeout
from ._types import OperationRef
from .exceptions import SandboxError


@dataclass(frozen=True, kw_only=True)
class LayerProgress:
    """One layer of a pull: ``phase`` is ``waiting``, ``downloading``, ``verifying``,
    ``unpacking``, ``done`` or ``cached``."""

    digest: str
    total_bytes: int
    done_bytes: int
    phase: str


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """An image in the node's store."""

    reference: str  # normalised, e.g. "docker.io/library/python:3.11"
    digest: str  # the manifest's
    size_bytes: int  # unpacked, on disk
    references: tuple[str, ...] = ()
    platform: str = ""


def pull_image(
    reference: str,
    *,
    progress: Callable[[list[LayerProgress]], None] | None = None,
    if_missing: bool = False,
    platform: str | None = None,
    base_url: str | None = None,
    timeout_seconds: float | None = None,
) -> OperationRef[ImageInfo]:
    """Pulls ``reference`` into the node's store through sbxd's mirrors and credentials.

    ``progress`` is called with every layer's state each time it changes (on the SDK's event
    loop thread: keep it quick). ``if_missing=True`` answers at once, without the registry, when
    the node already has the image. No deadline unless ``timeout_seconds`` is given.
    """
    if not isinstance(reference, str) or not reference:
        raise ValueError("reference must be a non-empty image reference, e.g. 'python:3.11'")
    if platform is not None and not isinstance(platform, str):
        raise TypeError("platform must be a string such as 'linux/amd64'")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable")
    timeout = _check_timeout("timeout_seconds", timeout_seconds)
    address = parse_base_url(resolve_base_url(base_url))

    async def run() -> ImageInfo:
        stub = sbx_pb2_grpc.ImageServiceStub(_channel.channel(address))
        request = sbx_pb2.PullImageRequest(
            reference=reference, platform=platform or "", if_missing=bool(if_missing)
        )
        call = stub.PullImage(request, timeout=timeout, metadata=_channel.call_metadata())
        image: ImageInfo | None = None
        try:
            async for message in call:
                if message.done:
                    i = message.image
                    image = ImageInfo(
                        reference=i.reference,
                        digest=i.digest,
                        size_bytes=i.size_bytes,
                        references=tuple(i.references),
                        platform=i.platform,
                    )
                elif progress is not None:
                    progress(
                        [
                            LayerProgress(
                                digest=layer.digest,
                                total_bytes=layer.total_bytes,
                                done_bytes=layer.done_bytes,
                                phase=layer.phase,
                            )
                            for layer in message.layers
                        ]
                    )
        except grpc.aio.AioRpcError as err:
            raise _errors.translate(err, operation="PullImage", endpoint=address) from None
        if image is None:
            raise SandboxError(f"pull of {reference}: sbxd ended the stream without the image")
        return image

    return OperationRef(_loop.submit(run()))
