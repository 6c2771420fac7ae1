"""A tenant reaching into the node's image store, which every tenant shares: listing the images
other tenants run, or removing one from under another tenant's sandbox. Image management is the
operator's right (the local socket, or an API key marked "operator"). SECURITY.md, "Images"."""

import uuid

import grpc
import pytest

from conftest import API_KEY_A, API_KEY_B, API_KEY_OPERATOR, auth

BUSYBOX = "docker.io/library/busybox:latest"


@pytest.fixture
def images(daemon, protos):
    with grpc.insecure_channel(f"127.0.0.1:{daemon.tcp_port}") as ch:
        yield protos.sbx_grpc.ImageServiceStub(ch)


@pytest.fixture
def local_images(daemon, protos):
    with grpc.insecure_channel("unix://" + daemon.socket) as ch:
        yield protos.sbx_grpc.ImageServiceStub(ch)


def pull(stub, sbx, reference, metadata=None):
    return list(stub.PullImage(sbx.PullImageRequest(reference=reference), metadata=metadata,
                               timeout=300))


def test_a_tenant_can_neither_list_nor_remove_the_nodes_images(daemon, protos, tcp_stub, images,
                                                               local_images):
    pb, sbx = protos.pb, protos.sbx
    # Tenant A runs a sandbox from busybox.
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image="busybox:latest", command="/bin/sh")
    c.args.extend(["-c", "sleep 100000"])
    a = tcp_stub.CreateSandbox(req, metadata=auth(API_KEY_A), timeout=120)
    try:
        for key in (API_KEY_A, API_KEY_B):
            for call in (lambda md: images.ListImages(sbx.ListImagesRequest(), metadata=md),
                         lambda md: images.RemoveImage(
                             sbx.RemoveImageRequest(reference=BUSYBOX, force=True), metadata=md),
                         lambda md: pull(images, sbx, "busybox:latest", md)):
                with pytest.raises(grpc.RpcError) as denied:
                    call(auth(key))
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "operator" in denied.value.details()
        # The image is still there for A's sandbox, and A's sandbox still runs.
        listed = local_images.ListImages(sbx.ListImagesRequest(), timeout=30)
        assert BUSYBOX in [i.reference for i in listed.images]
        got = tcp_stub.Exec(pb.ExecRequest(sandbox_id=a.sandbox_id, command=["true"]),
                            metadata=auth(API_KEY_A), timeout=30)
        assert got.exit_code == 0
        # The operator may, over TCP with its key as on the local socket.
        listed = images.ListImages(sbx.ListImagesRequest(), metadata=auth(API_KEY_OPERATOR),
                                   timeout=30)
        assert BUSYBOX in [i.reference for i in listed.images]
    finally:
        tcp_stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=a.sandbox_id),
                               metadata=auth(API_KEY_A))


def test_a_tenant_cannot_make_sbxd_read_an_image_archive(daemon, protos, images):
    """LoadImage streams a whole archive: a tenant is refused on its headers, before sbxd reads
    (or spools to disk) any of it."""
    sbx = protos.sbx

    def chunks():
        for _ in range(64):
            yield sbx.LoadImageChunk(data=b"\0" * (1 << 20))

    with pytest.raises(grpc.RpcError) as denied:
        images.LoadImage(chunks(), metadata=auth(API_KEY_B), timeout=60)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
