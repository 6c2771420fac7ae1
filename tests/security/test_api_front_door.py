"""Attacks on sbxd's front door, the sockets its API listens on: a process that shares or takes
over its addresses, connections and messages meant to use up its descriptors and its memory
before anyone authenticates. SECURITY.md, "The API front door"."""

import os
import select
import socket
import subprocess
import threading
import time

import grpc
import pytest

from conftest import API_KEY_A, auth, daemon_running, free_port, run

# A daemon that starts fast: no networks or disks prepared ahead.
LIGHT = {"network": "none", "disk_pool_size": 0, "warm_pool_size": 0}


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def memory_mb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(field)


def reset_peak_memory(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def list_over_unix(d, protos, timeout=10):
    with grpc.insecure_channel("unix://" + d.socket) as ch:
        return protos.grpc.SandboxServiceStub(ch).ListSandboxes(
            protos.pb.ListSandboxesRequest(), timeout=timeout)


def list_over_tcp(d, protos, timeout=10):
    with grpc.insecure_channel(f"127.0.0.1:{d.tcp_port}") as ch:
        return protos.grpc.SandboxServiceStub(ch).ListSandboxes(
            protos.pb.ListSandboxesRequest(), metadata=auth(API_KEY_A), timeout=timeout)


def eventually(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, grpc.RpcError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout}s: {e}") from e
        time.sleep(0.1)


def closed_by_peer(sockets):
    """How many of `sockets` the other side has closed. What the server sent first (its HTTP/2
    settings) is read and dropped on the way to the end of the stream."""
    poller = select.poll()
    for s in sockets:
        poller.register(s, select.POLLIN)
    by_fd = {s.fileno(): s for s in sockets}
    count = 0
    for fd, _ in poller.poll(0):
        try:
            while by_fd[fd].recv(65536, socket.MSG_DONTWAIT):
                pass
            count += 1
        except BlockingIOError:
            pass
        except OSError:
            count += 1
    return count


def reuseport_socket():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return s


@pytest.fixture(scope="module")
def small(registry, protos):
    """A daemon with 1024 descriptors and a 3-second idle timeout on TCP."""
    with daemon_running(registry, {**LIGHT, "tcp_idle_timeout_seconds": 3}, nofile=1024) as d:
        yield d


def test_an_impostor_sharing_the_tcp_port_keeps_sbxd_from_starting(registry):
    """sbxd binds its TCP address without SO_REUSEPORT and refuses to start when another socket
    holds it, instead of sharing the port (and its clients' API keys) with that process."""
    port = free_port()
    with reuseport_socket() as impostor:
        impostor.bind(("127.0.0.1", port))
        impostor.listen(16)
        with daemon_running(registry, {**LIGHT, "listen_tcp": f"127.0.0.1:{port}"},
                            start=False) as d:
            with pytest.raises(RuntimeError) as exited:
                d.start()
            assert "EADDRINUSE" in str(exited.value), exited.value


def test_no_process_can_bind_beside_a_running_sbxd(daemon):
    """While sbxd listens, a process asking for SO_REUSEPORT cannot bind its address."""
    with reuseport_socket() as impostor:
        with pytest.raises(OSError) as refused:
            impostor.bind(("127.0.0.1", daemon.tcp_port))
        assert refused.value.errno == 98  # EADDRINUSE


def test_a_second_sbxd_cannot_take_over_the_unix_socket(daemon, registry, protos):
    """A daemon started with the unix socket path of a running one refuses to start instead of
    unlinking the path from under it."""
    before = os.stat(daemon.socket).st_ino
    with daemon_running(registry, {**LIGHT, "listen_unix": daemon.socket}, start=False) as other:
        with pytest.raises(RuntimeError) as exited:
            other.start()
        assert "another process listens" in str(exited.value), exited.value
    assert os.stat(daemon.socket).st_ino == before
    list_over_unix(daemon, protos)


def test_idle_connections_cannot_use_up_the_descriptors(small, protos):
    """Connections that never authenticate are capped (per client host, and at half of sbxd's
    descriptors in all): over the cap they are closed at once, sbxd keeps descriptors for the
    unix socket and its sandboxes, and the TCP port serves again once they are gone."""
    pid = small.proc.pid
    most = [0]
    attacking = threading.Event()
    attacking.set()

    def watch():
        while attacking.is_set():
            most[0] = max(most[0], open_fds(pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    attackers = []
    try:
        for _ in range(1500):
            attackers.append(socket.create_connection(("127.0.0.1", small.tcp_port), timeout=5))
        # 256 per client host are let in; every other connection is closed by sbxd.
        eventually(lambda: assert_at_least(closed_by_peer(attackers), 1500 - 256), 60,
                   "closing the connections over the limit")
        list_over_unix(small, protos)
    finally:
        attacking.clear()
        watcher.join()
        for s in attackers:
            s.close()
    assert most[0] < 1024 - 256, f"sbxd held {most[0]} descriptors"
    eventually(lambda: list_over_tcp(small, protos, timeout=5), 60, "a TCP call after the attack")


def assert_at_least(value, minimum):
    assert value >= minimum, f"{value} < {minimum}"
    return value


def test_the_listeners_recover_after_descriptors_ran_out(small, protos):
    """When the process runs out of descriptors anyway, the pending connections are shed and the
    listeners pause; they accept again once descriptors are free (gRPC's own listener stopped for
    good after EMFILE)."""
    pid = small.proc.pid
    out = run(["prlimit", f"--pid={pid}", "--nofile", "--raw", "--noheadings", "--output=SOFT"],
              capture_output=True, text=True, check=True).stdout.strip()
    soft = int(out)
    tight = open_fds(pid) + 8
    run(["prlimit", f"--pid={pid}", f"--nofile={tight}:{soft}"], check=True)
    clients = []
    try:
        for _ in range(40):
            clients.append(socket.create_connection(("127.0.0.1", small.tcp_port), timeout=5))
        eventually(lambda: assert_at_least(closed_by_peer(clients), 1), 30, "shedding a connection")
        log = (small.state / "sbxd.log").read_text()
        assert "out of file descriptors" in log
    finally:
        for s in clients:
            s.close()
        run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{soft}"], check=True)
    eventually(lambda: list_over_tcp(small, protos, timeout=5), 60, "a TCP call")
    eventually(lambda: list_over_unix(small, protos, timeout=5), 60, "a unix-socket call")


def test_a_connection_that_never_finishes_its_handshake_is_closed(daemon):
    """A client that connects and sends nothing, or only part of the HTTP/2 preface, is
    disconnected after the handshake timeout (10 s by default; gRPC's own is 2 minutes)."""
    silent = socket.create_connection(("127.0.0.1", daemon.tcp_port))
    partial = socket.create_connection(("127.0.0.1", daemon.tcp_port))
    partial.sendall(b"PRI * HTTP/2.0\r\n")
    start = time.monotonic()
    try:
        eventually(lambda: assert_at_least(closed_by_peer([silent, partial]), 2), 30,
                   "closing connections that never finish their handshake")
        assert time.monotonic() - start < 30
    finally:
        silent.close()
        partial.close()


def test_a_connection_without_calls_is_closed_after_the_idle_timeout(small, protos):
    """An authenticated client's connection that carries no call for tcp_idle_timeout_seconds
    is closed; the channel reconnects when it next needs to."""
    states = []
    with grpc.insecure_channel(f"127.0.0.1:{small.tcp_port}") as ch:
        ch.subscribe(states.append, try_to_connect=False)
        protos.grpc.SandboxServiceStub(ch).ListSandboxes(
            protos.pb.ListSandboxesRequest(), metadata=auth(API_KEY_A), timeout=10)
        def went_idle():
            assert grpc.ChannelConnectivity.READY in states, states
            ready = states.index(grpc.ChannelConnectivity.READY)
            assert grpc.ChannelConnectivity.IDLE in states[ready:], states

        eventually(went_idle, 30, "the server closing the idle connection")
        protos.grpc.SandboxServiceStub(ch).ListSandboxes(
            protos.pb.ListSandboxesRequest(), metadata=auth(API_KEY_A), timeout=10)


def send_large_requests(d, protos, size, count, metadata):
    codes = []

    def one():
        with grpc.insecure_channel(f"127.0.0.1:{d.tcp_port}",
                                   options=[("grpc.max_send_message_length", 200 << 20)]) as ch:
            try:
                protos.grpc.SandboxServiceStub(ch).GetSandbox(
                    protos.pb.GetSandboxRequest(sandbox_id="a" * size), metadata=metadata,
                    timeout=120)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_unauthenticated_messages_are_refused_before_they_are_read(daemon, protos):
    """The API key is checked on a request's headers: eight 99 MiB messages without a valid key
    are refused without sbxd buffering them. When the key was checked after the message had been
    read, they grew sbxd's peak memory by 1.4 GB; now by a few tens of MB (read buffers, kept a
    while by ASan's quarantine)."""
    pid = daemon.proc.pid
    before = memory_mb(pid, "VmRSS")
    reset_peak_memory(pid)
    codes = send_large_requests(daemon, protos, 99 << 20, 4, ())
    codes += send_large_requests(daemon, protos, 99 << 20, 4, auth("not-a-valid-key-000000"))
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 8
    grown = memory_mb(pid, "VmHWM") - before
    assert grown < 200, f"sbxd grew by {grown} MB"


def test_no_call_takes_a_message_larger_than_a_file_write(daemon, protos):
    """Messages are bounded by what the largest call needs (a WriteFile of max_file_bytes), not
    100 MiB: an authenticated 64 MiB GetSandbox is refused as it arrives."""
    pid = daemon.proc.pid
    before = memory_mb(pid, "VmRSS")
    reset_peak_memory(pid)
    codes = send_large_requests(daemon, protos, 64 << 20, 4, auth(API_KEY_A))
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
    grown = memory_mb(pid, "VmHWM") - before
    assert grown < 4 * 64, f"sbxd grew by {grown} MB"


def test_tls_checks_the_key_before_the_body_too(registry, protos, tmp_path):
    """With tls_cert and tls_key the TCP side speaks TLS, and the key is still checked before a
    request's body is read."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with daemon_running(registry, {**LIGHT, "tls_cert": str(cert), "tls_key": str(key)}) as d:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        options = [("grpc.ssl_target_name_override", "localhost"),
                   ("grpc.max_send_message_length", 200 << 20)]
        with grpc.secure_channel(f"127.0.0.1:{d.tcp_port}", creds, options=options) as ch:
            stub = protos.grpc.SandboxServiceStub(ch)
            stub.ListSandboxes(protos.pb.ListSandboxesRequest(), metadata=auth(API_KEY_A),
                               timeout=10)
            pid = d.proc.pid
            before = memory_mb(pid, "VmRSS")
            reset_peak_memory(pid)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetSandbox(protos.pb.GetSandboxRequest(sandbox_id="a" * (32 << 20)),
                                timeout=60)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            grown = memory_mb(pid, "VmHWM") - before
            assert grown < 24, f"sbxd grew by {grown} MB"
        # Plain text to the TLS port gets nowhere.
        with pytest.raises(grpc.RpcError):
            list_over_tcp(d, protos, timeout=5)
