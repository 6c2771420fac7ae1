"""sbxd killed at any step of a create, an end, a pull or its own recovery: the next start
converges. A sandbox is either running and usable or ended with a state; one that ended leaves no
cgroup, process, mount or file behind; an image is either whole or absent.

Each test arms a named failpoint (SBX_FAILPOINTS, src/base/failpoint.h) that makes sbxd die by
SIGKILL exactly there, then restarts it without and checks the host. SECURITY.md, "It cannot
exhaust the host": what a crash would leak is what a hostile tenant could make it leak.
"""

import concurrent.futures
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import daemon_running

KEEPALIVE = ["-c", 'trap "exit 0" TERM INT; sleep 100000 & wait']
IMAGE = "busybox:1.36"


def connect(d, protos):
    channel = grpc.insecure_channel("unix://" + d.socket)
    return channel, protos.grpc.SandboxServiceStub(channel)


def create_through_crash(d, protos, request_id):
    """A create during which sbxd dies: the call fails UNAVAILABLE. After the restart the client
    retries with the same request id, as a client should, and gets the one sandbox of it."""
    channel, stub = connect(d, protos)
    with channel:
        with pytest.raises(grpc.RpcError) as cut:
            create(stub, protos.pb, request_id)
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
    d.wait_crashed()
    d.start()
    channel, stub = connect(d, protos)
    with channel:
        return create(stub, protos.pb, request_id).sandbox_id


def create(stub, pb, request_id=None):
    req = pb.CreateSandboxRequest(request_id=request_id or str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image=IMAGE, command="/bin/sh")
    c.args.extend(KEEPALIVE)
    return stub.CreateSandbox(req, timeout=120)


def settle(stub, pb, sid, states, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        got = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid), timeout=30)
        if got.status.state in states:
            return got
        assert time.monotonic() < deadline, got.status
        time.sleep(0.05)


def ended(pb):
    return (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED)


def usable_or_ended(stub, pb, sid):
    """The one outcome a client may see after a restart: running and answering, or ended."""
    got = settle(stub, pb, sid, (pb.STATE_RUNNING,) + ended(pb))
    if got.status.state == pb.STATE_RUNNING:
        r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["echo", "alive"]), timeout=60)
        assert r.stdout == b"alive\n"
    return got.status.state


def delete_and_check(d, stub, pb, ids):
    for sid in ids:
        try:
            stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid), timeout=60)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
    for sid in ids:
        try:
            settle(stub, pb, sid, ended(pb))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
    assert d.leftovers(ids) == []


def assert_no_sandbox_cgroups(d):
    """Nothing of any sandbox, even one whose id the test never learnt, is left under the
    daemon's cgroups."""
    for root in Path("/sys/fs/cgroup").iterdir():
        parent = root / d.cgroup_parent
        if parent.is_dir():
            assert not [p for p in parent.iterdir() if p.is_dir()], parent


def pull(d, protos):
    channel = grpc.insecure_channel("unix://" + d.socket)
    with channel:
        images = protos.sbx_grpc.ImageServiceStub(channel)
        for _ in images.PullImage(protos.sbx.PullImageRequest(reference=IMAGE), timeout=120):
            pass


@pytest.mark.parametrize("point", ["create.after_image", "create.after_network",
                                   "create.after_runtime"])
def test_a_create_cut_short_converges(registry, protos, point):
    with daemon_running(registry, overrides={"warm_pool_size": 0}) as d:
        pull(d, protos)  # the image is here: the crash is in the create itself
        d.stop()
        d.start(failpoints=[point])
        request_id = str(uuid.uuid4())
        sid = create_through_crash(d, protos, request_id)
        channel, stub = connect(d, protos)
        with channel:
            usable_or_ended(stub, protos.pb, sid)
            # The request made one sandbox, not two.
            assert create(stub, protos.pb, request_id).sandbox_id == sid
            delete_and_check(d, stub, protos.pb, [sid])


@pytest.mark.parametrize("point", ["end.before_teardown", "end.after_teardown"])
def test_an_end_cut_short_converges(registry, protos, point):
    with daemon_running(registry, overrides={"warm_pool_size": 0}) as d:
        channel, stub = connect(d, protos)
        with channel:
            sid = create(stub, protos.pb).sandbox_id
            settle(stub, protos.pb, sid, (protos.pb.STATE_RUNNING,))
        # What the check below looks for is there while the sandbox runs.
        assert any("/" + sid in found for found in d.leftovers([sid]))
        d.kill9()
        d.start(failpoints=[point])
        channel, stub = connect(d, protos)
        with channel:
            try:
                stub.DeleteSandbox(protos.pb.DeleteSandboxRequest(sandbox_id=sid), timeout=60)
            except grpc.RpcError as cut:  # the crash may come before the answer
                assert cut.code() == grpc.StatusCode.UNAVAILABLE
            d.wait_crashed()
        d.start()
        channel, stub = connect(d, protos)
        with channel:
            got = settle(stub, protos.pb, sid, ended(protos.pb))
            assert got.status.state in ended(protos.pb)
            assert d.leftovers([sid]) == []


@pytest.mark.parametrize("point", ["pull.after_download", "pull.during_unpack"])
def test_a_pull_cut_short_leaves_no_half_image(registry, protos, point):
    with daemon_running(registry, overrides={"warm_pool_size": 0}, start=False) as d:
        d.start(failpoints=[point])
        with pytest.raises(grpc.RpcError):
            pull(d, protos)
        d.wait_crashed()
        d.start()
        tmp = d.state / "lib/images/tmp"
        assert not tmp.exists() or not any(tmp.iterdir())
        channel, stub = connect(d, protos)
        with channel:
            images = protos.sbx_grpc.ImageServiceStub(channel)
            listed = images.ListImages(protos.sbx.ListImagesRequest(), timeout=30).images
            assert not listed  # nothing half made is offered
            sid = create(stub, protos.pb).sandbox_id  # pulls it whole now
            assert usable_or_ended(stub, protos.pb, sid) == protos.pb.STATE_RUNNING
            listed = images.ListImages(protos.sbx.ListImagesRequest(), timeout=30).images
            assert len(listed) == 1
            delete_and_check(d, stub, protos.pb, [sid])


@pytest.mark.parametrize("point", ["recovery.after_plan", "recovery.after_leftovers"])
def test_a_recovery_cut_short_converges(registry, protos, point):
    with daemon_running(registry, overrides={"warm_pool_size": 0}) as d:
        channel, stub = connect(d, protos)
        with channel:
            ids = [create(stub, protos.pb).sandbox_id for _ in range(3)]
            for sid in ids:
                settle(stub, protos.pb, sid, (protos.pb.STATE_RUNNING,))
            stub.DeleteSandbox(protos.pb.DeleteSandboxRequest(sandbox_id=ids[0]), timeout=60)
        d.kill9()
        with pytest.raises(RuntimeError, match="sbxd exited"):
            d.start(failpoints=[point])
        d.wait_crashed()
        d.start()
        channel, stub = connect(d, protos)
        with channel:
            assert usable_or_ended(stub, protos.pb, ids[0]) in ended(protos.pb)
            for sid in ids[1:]:
                assert usable_or_ended(stub, protos.pb, sid) == protos.pb.STATE_RUNNING
            delete_and_check(d, stub, protos.pb, ids)


def test_forty_creates_and_deletes_killed_midway_leave_nothing(registry, protos):
    """Creates and deletes in flight together when sbxd dies: after the restart every sandbox is
    running or ended, and once all are deleted nothing of any remains."""
    with daemon_running(registry, overrides={"warm_pool_size": 0}) as d:
        pull(d, protos)
        channel, stub = connect(d, protos)
        ids, lock = [], threading.Lock()
        killed = threading.Event()

        def create_then_delete(i):
            try:
                sid = create(stub, protos.pb).sandbox_id
                with lock:
                    ids.append(sid)
                if i % 2 == 0:
                    stub.DeleteSandbox(protos.pb.DeleteSandboxRequest(sandbox_id=sid), timeout=60)
            except grpc.RpcError:
                assert killed.is_set()  # only the kill may cut a call short

        with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
            futures = [pool.submit(create_then_delete, i) for i in range(40)]
            # The kill lands while creates and deletes are in flight.
            deadline = time.monotonic() + 60
            while len(ids) < 20:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            killed.set()
            d.kill9()
            for f in futures:
                f.result()
        channel.close()
        d.start()
        channel, stub = connect(d, protos)
        with channel:
            # Creates whose answer the kill cut off may have made a sandbox all the same.
            listed = stub.ListSandboxes(protos.pb.ListSandboxesRequest(page_size=1000), timeout=30)
            every = set(ids) | {sb.sandbox_id for sb in listed.sandboxes}
            for sid in every:
                usable_or_ended(stub, protos.pb, sid)
            delete_and_check(d, stub, protos.pb, every)
        assert_no_sandbox_cgroups(d)


@pytest.mark.parametrize("delay_ms", [20, 80, 150])
def test_forty_deletes_killed_midway_leave_nothing(registry, protos, delay_ms):
    """40 running sandboxes, all deleted at once, sbxd killed `delay_ms` later: after the restart
    every one ends, and nothing of any remains (once, bundles and cgroup directories of some were
    left for good)."""
    with daemon_running(registry, overrides={"warm_pool_size": 0}) as d:
        channel, stub = connect(d, protos)
        pb = protos.pb
        with channel:
            ids = [create(stub, pb).sandbox_id for _ in range(40)]
            for sid in ids:
                settle(stub, pb, sid, (pb.STATE_RUNNING,))
            futures = [stub.DeleteSandbox.future(pb.DeleteSandboxRequest(sandbox_id=sid), timeout=60)
                       for sid in ids]
            time.sleep(delay_ms / 1000)  # the kill lands this long into the deletes, as measured
            d.kill9()
            for f in futures:
                try:
                    f.result()
                except grpc.RpcError as cut:
                    assert cut.code() == grpc.StatusCode.UNAVAILABLE
        d.start()
        channel, stub = connect(d, protos)
        with channel:
            delete_and_check(d, stub, pb, ids)
        assert_no_sandbox_cgroups(d)
