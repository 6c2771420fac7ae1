"""Filling the host's disk: many sandboxes each with a sparse writable layer far larger than what
the disk holds, and images whose layers expand far beyond their download (decompression bombs).

Defences (SECURITY.md, "It cannot exhaust the host"; docs/configuration.md, "Disk"): admission
reserves each sandbox's disk request against the node's disk capacity, as it does CPU and memory;
creates, pulls and loads stop with RESOURCE_EXHAUSTED rather than leave less than the disk reserve
free; an unpacking layer checks the reserve as it grows and leaves nothing behind when it stops.
"""

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import urllib.request
import uuid
import zlib

import grpc
import pytest

from conftest import own_daemon


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def create(stub, pb, image="busybox:latest"):
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image=image)
    c.command, c.args[:] = "/bin/sh", ["-c", "sleep 100000"]
    return stub.CreateSandbox(req, timeout=120)


def wait_state(stub, pb, sandbox_id, state, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        got = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sandbox_id), timeout=30)
        if got.status.state == state or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def stubs(d, protos):
    channel = grpc.insecure_channel("unix://" + d.socket)
    return channel, protos.grpc.SandboxServiceStub(channel), protos.sbx_grpc.ImageServiceStub(channel)


def test_creates_and_pulls_stop_at_the_disk_reserve(registry, protos):
    """A node whose disk has less free than its reserve takes no new sandbox and pulls nothing,
    and says why."""
    reserve = free_bytes(tempfile.gettempdir()) + (1 << 40)  # more than is free: full
    with own_daemon(registry, disk_reserve=str(reserve)) as d:
        channel, stub, images = stubs(d, protos)
        with channel:
            with pytest.raises(grpc.RpcError) as created:
                create(stub, protos.pb)
            assert created.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "disk is nearly full" in created.value.details()
            with pytest.raises(grpc.RpcError) as pulled:
                for _ in images.PullImage(protos.sbx.PullImageRequest(reference="busybox:latest"),
                                          timeout=120):
                    pass
            assert pulled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "disk is nearly full" in pulled.value.details()
            listed = images.ListImages(protos.sbx.ListImagesRequest(), timeout=30)
            assert not listed.images


def test_disk_capacity_bounds_the_sandboxes_a_node_takes(registry, protos):
    """Sparse layers of 1 GiB each on a node whose disk capacity is 3 GiB at 1 GiB a sandbox: the
    fourth waits until one ends, exactly as for CPU and memory."""
    with own_daemon(registry, capacity_disk="3Gi", default_disk_request="1Gi",
                    warm_pool_size=0) as d:
        channel, stub, _ = stubs(d, protos)
        pb = protos.pb
        with channel:
            running = [create(stub, pb) for _ in range(3)]
            running = [wait_state(stub, pb, s.sandbox_id, pb.STATE_RUNNING) for s in running]
            assert all(s.status.state == pb.STATE_RUNNING for s in running)
            waiting = create(stub, pb)
            assert waiting.status.state == pb.STATE_PENDING
            stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=running[0].sandbox_id,
                                                       grace_period_seconds=0), timeout=30)
            got = wait_state(stub, pb, waiting.sandbox_id, pb.STATE_RUNNING)
            assert got.status.state == pb.STATE_RUNNING
            for s in running[1:] + [got]:
                stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=s.sandbox_id,
                                                           grace_period_seconds=0), timeout=30)


def push_bomb(registry, repo, expanded_bytes):
    """An image of one layer: a file of zeros that gzip shrinks a thousandfold. Built as a
    stream: the layer never exists uncompressed in memory."""
    info = tarfile.TarInfo("zeros")
    info.size = expanded_bytes
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    padding = (-expanded_bytes) % 512
    end = bytes(1024)
    total = len(header) + expanded_bytes + padding + len(end)
    trailer = bytes((-total) % tarfile.RECORDSIZE)
    diff = hashlib.sha256()
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)
    compressed = bytearray()
    zeros = bytes(1 << 20)

    def feed(data):
        diff.update(data)
        compressed.extend(gz.compress(data))

    feed(header)
    left = expanded_bytes
    while left:
        n = min(left, len(zeros))
        feed(zeros[:n])
        left -= n
    feed(bytes(padding) + end + trailer)
    compressed.extend(gz.flush())
    layer = bytes(compressed)
    diff_id = "sha256:" + diff.hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {"Cmd": ["/zeros"]}}).encode()

    def put_blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.Request(f"http://{registry}/v2/{repo}/blobs/uploads/",
                                       method="POST")
        with urllib.request.urlopen(start) as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(put).close()
        return digest, len(data)

    layer_digest, layer_size = put_blob(layer)
    config_digest, config_size = put_blob(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }).encode()
    put = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/latest", data=manifest,
                                 method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(put).close()
    return layer_size


def test_a_decompression_bomb_stops_at_the_disk_reserve(registry, protos):
    """A layer of a few MiB that expands to 3 GiB, pulled while the reserve leaves room for a
    third of it: the pull stops with RESOURCE_EXHAUSTED as the layer grows, and nothing of it
    stays on disk."""
    expanded = 3 << 30
    repo = "sbx-test/bomb-" + uuid.uuid4().hex[:8]
    downloaded = push_bomb(registry, repo, expanded)
    assert downloaded < expanded // 100
    reserve = free_bytes(tempfile.gettempdir()) - (1 << 30)
    if reserve < (1 << 30):
        pytest.skip("this host has too little free disk for the test")
    with own_daemon(registry, disk_reserve=str(reserve)) as d:
        channel, _, images = stubs(d, protos)
        before = free_bytes(str(d.state))
        with channel:
            with pytest.raises(grpc.RpcError) as pulled:
                for _ in images.PullImage(protos.sbx.PullImageRequest(reference=f"{repo}:latest"),
                                          timeout=600):
                    pass
            assert pulled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, pulled.value.details()
            assert "disk is nearly full" in pulled.value.details()
            assert not images.ListImages(protos.sbx.ListImagesRequest(), timeout=30).images
        leftovers = [p for p in (d.state / "lib/images/tmp").glob("*")] \
            if (d.state / "lib/images/tmp").exists() else []
        assert leftovers == []
        # What the failed pull wrote was removed: the disk has what it had before, give or take
        # the compressed blob and other writers on this host.
        assert free_bytes(str(d.state)) > before - (256 << 20)
