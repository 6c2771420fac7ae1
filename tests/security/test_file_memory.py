"""A tenant reading large files in parallel to grow sbxd's memory. A unary ReadFile answers with
the whole file, so sbxd holds each file (twice: its content and the serialized response) until
the response is sent; that memory comes out of a budget, per tenant and in all, and calls wait
for their share. SECURITY.md, "The API front door"."""

import hashlib
import threading
import time
import urllib.request
import uuid

import grpc

from conftest import API_KEY_A, auth

FILE_BYTES = 32 << 20  # max_file_bytes
BUDGET_MB = 512  # response_memory
SHARE_MB = 256  # response_memory_per_tenant


def metrics_text(daemon):
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    return urllib.request.urlopen(url, timeout=10).read().decode()


def memory_mb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(field)


def sandbox_with_a_big_file(stub, pb, metadata=None):
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image="busybox:latest", command="/bin/sh")
    c.args.extend(["-c", f"head -c {FILE_BYTES} /dev/urandom > /tmp/big && head -c 65536 "
                         "/dev/urandom > /tmp/small && sleep 100000"])
    sid = stub.CreateSandbox(req, metadata=metadata, timeout=120).sandbox_id
    deadline = time.monotonic() + 60
    while True:
        r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["sh", "-c", "stat -c %s /tmp/big "
                                                                          "/tmp/small"]),
                      metadata=metadata, timeout=30)
        if r.stdout.split() == [str(FILE_BYTES).encode(), b"65536"]:
            return sid
        assert time.monotonic() < deadline, r
        time.sleep(0.1)


def digest_in_sandbox(stub, pb, sid, path, metadata=None):
    r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["sha256sum", path]), metadata=metadata,
                  timeout=60)
    return r.stdout.split()[0].decode()


def test_parallel_reads_of_large_files_stay_within_the_budget(daemon, protos, stub):
    """40 concurrent 32 MiB ReadFiles all succeed, and sbxd's peak memory grows by the budget,
    not by 40 files (1.8 GB in a release build, 3 GB under ASan, before the budget)."""
    pb = protos.pb
    sid = sandbox_with_a_big_file(stub, pb)
    want = digest_in_sandbox(stub, pb, sid, "/tmp/big")
    pid = daemon.proc.pid
    before = memory_mb(pid, "VmRSS")
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    results = []

    def read():
        options = [("grpc.max_receive_message_length", 100 << 20)]
        with grpc.insecure_channel("unix://" + daemon.socket, options=options) as ch:
            try:
                r = protos.grpc.SandboxServiceStub(ch).ReadFile(
                    pb.ReadFileRequest(sandbox_id=sid, path="/tmp/big"), timeout=600)
                results.append(hashlib.sha256(r.content).hexdigest())
            except grpc.RpcError as e:
                results.append(e.code())

    threads = [threading.Thread(target=read) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = memory_mb(pid, "VmHWM") - before
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))
    assert results == [want] * 40
    # ASan's quarantine keeps freed buffers a while: the slack above the budget.
    assert grown < BUDGET_MB + 384, f"sbxd grew by {grown} MB"
    # Every call gave its share back once its response was sent.
    deadline = time.monotonic() + 30
    while "sbx_response_memory_bytes 0\n" not in metrics_text(daemon):
        assert time.monotonic() < deadline, metrics_text(daemon)
        time.sleep(0.1)


def test_one_tenant_cannot_take_more_than_its_share(daemon, protos, stub, tcp_stub):
    """A tenant may hold half of the budget: its flood of large reads grows sbxd by its share
    only, and another tenant's read meanwhile does not wait for the flood to drain."""
    pb = protos.pb
    md_a = auth(API_KEY_A)
    flooded = sandbox_with_a_big_file(tcp_stub, pb, md_a)
    mine = sandbox_with_a_big_file(stub, pb)
    pid = daemon.proc.pid
    before = memory_mb(pid, "VmRSS")
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    done = []

    def flood():
        options = [("grpc.max_receive_message_length", 100 << 20)]
        with grpc.insecure_channel(f"127.0.0.1:{daemon.tcp_port}", options=options) as ch:
            protos.grpc.SandboxServiceStub(ch).ReadFile(
                pb.ReadFileRequest(sandbox_id=flooded, path="/tmp/big"), metadata=md_a,
                timeout=600)
            done.append(1)

    threads = [threading.Thread(target=flood) for _ in range(24)]
    for t in threads:
        t.start()
    try:
        r = stub.ReadFile(pb.ReadFileRequest(sandbox_id=mine, path="/tmp/small"), timeout=600)
        assert len(r.content) == 65536
        # The other tenant's flood is still being served when this read is back.
        assert len(done) < len(threads), "the read waited for the whole flood"
    finally:
        for t in threads:
            t.join()
        grown = memory_mb(pid, "VmHWM") - before
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=mine, grace_period_seconds=0))
        tcp_stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=flooded, grace_period_seconds=0),
                               metadata=md_a)
    assert len(done) == len(threads)
    assert grown < SHARE_MB + 384, f"sbxd grew by {grown} MB"
