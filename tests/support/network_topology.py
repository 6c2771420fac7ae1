"""A private topology of network namespaces for the tests of sandbox networking, and sbxd in it.

sbxd runs in a namespace made for the test ("host"). Its uplink is a veth pair to an "internet"
namespace, on a LAN of documentation addresses (198.51.100.0/24, public to sbxd's built-in deny
set): the host is 198.51.100.1, its default gateway (a router) 198.51.100.2, and another machine of
the LAN 198.51.100.3. Behind the router, the "internet" proper: 203.0.113.10 and .20 (an HTTP
server on port 80 for every address of the namespace, and a DNS server answering names from a
table). A second veth pair leads to a "private" namespace on an RFC 1918 address (192.168.77.10)
that also holds the cloud metadata address (169.254.169.254). Nothing has a route to the machine's
real interfaces: no test packet leaves the machine. sbxd reaches the local registry through a
relay whose two ends are sockets of this process, one in each namespace.

Used by tests/e2e/test_network.py, the adversarial network tests in tests/security/, and (for
in_netns and relay) the network benchmark.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc

from netns_util import accept_each, in_netns, relay
from sbxd_harness import run as run_process
from sbxd_harness import spawn

BUSYBOX = "busybox:latest"
PYTHON = "python:3.11"
HOST_INET = "198.51.100.1"  # the host's address on its uplink LAN
ROUTER = "198.51.100.2"  # the host's default gateway, on that LAN
LAN_PEER = "198.51.100.3"  # another machine of the LAN
INET = "203.0.113.10"  # the internet, behind the router
INET2 = "203.0.113.20"
PRIVATE = "192.168.77.10"
HOST_PRIVATE = "192.168.77.1"
METADATA = "169.254.169.254"
HOST_SERVICE_PORT = 8099
METRICS_PORT = 9464  # sbxd's, on loopback of the topology's host namespace

DNS_TABLE = {
    "public.test": [INET],
    "unlisted.test": [INET2],
    "rebind.test": [PRIVATE],  # a public name whose answer is a private address
    "metadata.test": [METADATA],
    "lan.test": [LAN_PEER],  # a public name whose answer is on the host's LAN
}


def sh(*args, check=True):
    return run_process(list(args), check=check, capture_output=True, text=True)


def listener(address, port, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    return s


def serve_forever(fn):
    threading.Thread(target=fn, daemon=True).start()


def http_server(sock, body):
    def handle(conn):
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body.encode())
            except OSError:
                pass

    accept_each(sock, handle)


def dns_answer(query):
    """(name, answer) for a query: the table's addresses for A, an empty answer for other types of
    a known name, NXDOMAIN otherwise. Names that end in a table name resolve like it
    ("x1.public.test" like "public.test"), so a test can ask many distinct names."""
    qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
    if qdcount != 1:
        return None, None
    pos, labels = 12, []
    while query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode().lower())
        pos += 1 + n
    qtype, _qclass = struct.unpack(">HH", query[pos + 1:pos + 5])
    question = query[12:pos + 5]
    name = ".".join(labels)
    addresses = next((a for known, a in DNS_TABLE.items()
                      if name == known or name.endswith("." + known)), None)
    answers = b""
    count = 0
    if addresses and qtype == 1:
        for a in addresses:
            answers += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(a)
            count += 1
    rcode = 0 if addresses is not None else 3
    return name, struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0) + question + answers


class DnsServer:
    """The internet's DNS server; counts the queries it is asked, by name."""

    def __init__(self, sock):
        self.sock = sock
        self.queries = {}
        self.lock = threading.Lock()
        serve_forever(self.loop)

    def loop(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                name, answer = dns_answer(data)
            except (IndexError, struct.error, UnicodeDecodeError):
                name, answer = None, None
            if name is not None:
                with self.lock:
                    self.queries[name] = self.queries.get(name, 0) + 1
            if answer:
                try:
                    self.sock.sendto(answer, peer)
                except OSError:
                    pass

    def count(self, predicate=lambda name: True):
        with self.lock:
            return sum(n for name, n in self.queries.items() if predicate(name))


def fnv1a(text):
    h = 2166136261
    for c in text.encode():
        h ^= c
        h = (h * 16777619) & 0xFFFFFFFF
    return h


class Topology:
    """Three namespaces (host, internet, private) wired with veth pairs; more LANs on demand."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.host, self.inet, self.priv = (f"sbxt-{self.tag}-{n}" for n in ("host", "inet", "priv"))
        self.links = (f"sbxt{self.tag}i", f"sbxt{self.tag}p")
        self.extra = []  # namespaces added by add_lan
        self.sockets = []
        self.dns = None

    def path(self, ns):
        return f"/run/netns/{ns}"

    def listen(self, ns, *args):
        s = in_netns(self.path(ns), lambda: listener(*args))
        self.sockets.append(s)
        return s

    def up(self):
        for ns in (self.host, self.inet, self.priv):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        hi, hp = self.links
        sh("ip", "link", "add", hi, "netns", self.host, "type", "veth", "peer", "name", "eth0",
           "netns", self.inet)
        sh("ip", "link", "add", hp, "netns", self.host, "type", "veth", "peer", "name", "eth0",
           "netns", self.priv)
        sh("ip", "-n", self.host, "addr", "add", f"{HOST_INET}/24", "dev", hi)
        sh("ip", "-n", self.host, "addr", "add", f"{HOST_PRIVATE}/24", "dev", hp)
        for address in (f"{ROUTER}/24", f"{LAN_PEER}/24", f"{INET}/32", f"{INET2}/32"):
            sh("ip", "-n", self.inet, "addr", "add", address, "dev", "eth0")
        sh("ip", "-n", self.priv, "addr", "add", f"{PRIVATE}/24", "dev", "eth0")
        sh("ip", "-n", self.priv, "addr", "add", f"{METADATA}/32", "dev", "eth0")
        for ns, link in ((self.host, hi), (self.host, hp), (self.inet, "eth0"),
                         (self.priv, "eth0")):
            sh("ip", "-n", ns, "link", "set", link, "up")
        # The internet is behind the host's default gateway; the private network and the metadata
        # address are one hop away on the other side, as on a cloud machine.
        sh("ip", "-n", self.host, "route", "add", "default", "via", ROUTER)
        sh("ip", "-n", self.host, "route", "add", f"{METADATA}/32", "via", PRIVATE)
        sh("ip", "-n", self.priv, "route", "add", "default", "via", HOST_PRIVATE)

        http_server(self.listen(self.inet, "0.0.0.0", 80), "hello from the internet")
        self.dns = DnsServer(self.listen(self.inet, INET, 53, socket.SOCK_DGRAM))
        http_server(self.listen(self.priv, "0.0.0.0", 80), "private data")
        # Services of the host itself: on loopback and on every address (the gateway included).
        http_server(self.listen(self.host, "127.0.0.1", HOST_SERVICE_PORT), "host loopback service")
        http_server(self.listen(self.host, "0.0.0.0", HOST_SERVICE_PORT + 1), "host service")

    def add_lan(self, host_address, peer_address, prefix=24):
        """A new LAN of the host's (a veth pair to a new namespace, `host_address/prefix` on the
        host's side), with an HTTP server on `peer_address`. Returns (namespace, host link)."""
        n = len(self.extra)
        ns, link = f"sbxt-{self.tag}-lan{n}", f"sbxt{self.tag}l{n}"
        sh("ip", "netns", "add", ns)
        self.extra.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", link, "netns", self.host, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{peer_address}/{prefix}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", host_address)
        http_server(self.listen(ns, peer_address, 80), "hello from the new lan")
        sh("ip", "-n", self.host, "link", "set", link, "up")
        sh("ip", "-n", self.host, "addr", "add", f"{host_address}/{prefix}", "dev", link)
        return ns, link

    def relay_registry(self, registry):
        host, port = registry.rsplit(":", 1)
        s = self.listen(self.host, "127.0.0.1", int(port))
        relay(s, (host, int(port)))

    def down(self):
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for ns in (self.host, self.inet, self.priv, *self.extra):
            sh("ip", "netns", "del", ns, check=False)


class NetDaemon:
    """sbxd in the topology's host namespace; `config` adds to (or replaces) its settings."""

    def __init__(self, bin_dir, topo, registry, protos, config=None):
        self.protos = protos
        self.pb = protos.pb
        self.stub = None
        self.channel = None
        self.bin_dir = Path(bin_dir)
        self.topo = topo
        self.state = Path(tempfile.mkdtemp(prefix="sbx-net-"))
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"sbt{tag}"
        self.table = f"sbt_{tag}"
        self.port_prefix = "sv" + format(fnv1a(self.bridge) & 0xFFFFFF, "06x")
        self.cgroup_parent = "sbx-net-" + tag
        self.run_dir = self.state / "run"
        self.metrics_port = METRICS_PORT
        self.config = self.state / "sbxd.json"
        settings = {
            "state_dir": str(self.state / "lib"),
            "run_dir": str(self.run_dir),
            "listen_unix": str(self.run_dir / "sbxd.sock"),
            "registry_mirrors": [f"http://{registry}"],
            "insecure_registries": [registry],
            "writable_layer": "tmpfs",
            "default_disk": "256Mi",
            "log_level": "debug",
            "cgroup_parent": self.cgroup_parent,
            "network_bridge": self.bridge,
            "network_table": self.table,
            "network_dns": [INET],
            "network_pool_size": 4,
            "metrics_listen": f"127.0.0.1:{self.metrics_port}",
        }
        settings.update(config or {})
        self.config.write_text(json.dumps(settings))
        self.proc = None

    @property
    def socket(self):
        return str(self.run_dir / "sbxd.sock")

    def start(self):
        # A socket left by a killed daemon would look like a live one.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        log = open(self.state / "sbxd.log", "ab")
        self.proc = spawn(
            ["nsenter", f"--net={self.topo.path(self.topo.host)}", str(self.bin_dir / "sbxd"),
             "--config", str(self.config)],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sbxd exited:\n" + self.log()[-4000:])
            if os.path.exists(self.socket):
                # A channel of its own: gRPC shares connections between channels by default, and
                # one to the previous daemon may be backing off.
                channel = grpc.insecure_channel("unix://" + self.socket,
                                                options=[("grpc.use_local_subchannel_pool", 1)])
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                except grpc.FutureTimeoutError:
                    channel.close()
                    time.sleep(0.05)
                    continue
                # A fresh channel per start: one that saw the old daemon die would be backing off.
                if self.channel is not None:
                    self.channel.close()
                self.channel = channel
                self.stub = self.protos.grpc.SandboxServiceStub(channel)
                return
            time.sleep(0.05)
        raise RuntimeError("sbxd did not come up:\n" + self.log()[-4000:])

    def log(self):
        return (self.state / "sbxd.log").read_text(errors="replace")

    def metrics(self):
        """sbxd's /metrics, fetched from inside the host namespace."""
        return host_get(self.topo.path(self.topo.host),
                        f"http://127.0.0.1:{self.metrics_port}/metrics")

    def nft(self, *args):
        """`nft` in sbxd's namespace, e.g. nft("list", "set", "inet", table, "deny")."""
        return sh("nsenter", f"--net={self.topo.path(self.topo.host)}", "nft", *args).stdout

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        # After a failed test sbxd may have left pins mounted under its run directory.
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith(str(self.state)):
                run_process(["umount", "-l", point], capture_output=True)
        for root in Path("/sys/fs/cgroup").iterdir():
            for parent in (root / self.cgroup_parent, Path("/sys/fs/cgroup") / self.cgroup_parent):
                if parent.is_dir():
                    try:
                        parent.rmdir()
                    except OSError:
                        pass
        shutil.rmtree(self.state, ignore_errors=True)


def network_daemon(registry, protos, config=None):
    """A generator for a module fixture: the topology up, sbxd started in it with `config`;
    everything removed afterwards."""
    bin_dir = os.environ.get("SBX_BIN_DIR")
    if not bin_dir:
        raise RuntimeError("SBX_BIN_DIR must point at the build's bin directory")
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        raise RuntimeError("the network tests need iproute2 and util-linux (nsenter)")
    topo = Topology()
    daemon = None
    try:
        topo.up()
        topo.relay_registry(registry)
        daemon = NetDaemon(bin_dir, topo, registry, protos, config)
        daemon.start()
        yield daemon
    finally:
        if daemon is not None:
            if daemon.channel is not None and daemon.proc.poll() is None:
                try:
                    stop_all(daemon)
                except (grpc.RpcError, AssertionError, AttributeError):
                    pass
            daemon.stop()
            daemon.cleanup()
        topo.down()


# ---------------------------------------------------------------------------------------------
# Sandboxes


def create(d, command=None, args=(), network=None, services=(), image=BUSYBOX):
    pb = d.pb
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    s = req.sandbox.spec
    c = s.containers.add(name="main", image=image)
    if command is None:
        c.command, args = "/bin/sh", ["-c", 'trap "exit 0" TERM; sleep 100000 & wait']
    else:
        c.command = command
    c.args.extend(args)
    if network is not None:
        s.network.CopyFrom(network)
    for svc in services:
        s.services.add().CopyFrom(svc)
    sb = d.stub.CreateSandbox(req, timeout=120)
    return wait_running(d, sb.sandbox_id)


def wait_running(d, sid, timeout=60):
    pb = d.pb
    deadline = time.monotonic() + timeout
    while True:
        sb = d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
        if sb.status.state == pb.STATE_RUNNING:
            return sb
        assert sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING), (
            f"{sid}: {pb.State.Name(sb.status.state)} {sb.status.state_reason}\n" + d.log()[-3000:])
        assert time.monotonic() < deadline, f"{sid} did not start"
        time.sleep(0.05)


def run(d, sid, *command, timeout=60):
    r = d.stub.Exec(d.pb.ExecRequest(sandbox_id=sid, command=list(command)), timeout=timeout)
    return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def fetch(d, sid, url, timeout=2):
    """(ok, body) of an HTTP GET from inside the sandbox."""
    # busybox's own `wget -T` crashes in Debian's static build; `timeout` bounds it instead.
    code, out, _ = run(d, sid, "timeout", str(timeout), "wget", "-q", "-O", "-", url)
    return code == 0, out


def resolve(d, sid, name):
    code, out, _ = run(d, sid, "nslookup", name)
    if code != 0:
        return []
    # busybox prints the server first, then "Name: / Address: x" pairs for the answer.
    answer = out.split("Name:", 1)[1] if "Name:" in out else ""
    return re.findall(r"Address(?: \d+)?:\s*([0-9.]+)", answer)


def address_of(d, sid):
    code, out, _ = run(d, sid, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert code == 0, out
    return re.search(r"inet ([0-9.]+)/", out).group(1)


def stop(d, sid):
    pb = d.pb
    d.stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))
    deadline = time.monotonic() + 30
    while True:
        sb = d.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
        if sb.status.state in (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED):
            return sb
        assert time.monotonic() < deadline
        time.sleep(0.05)


def stop_all(d):
    for sb in d.stub.ListSandboxes(d.pb.ListSandboxesRequest()).sandboxes:
        stop(d, sb.sandbox_id)


def host_get(ns_path, url, timeout=3):
    def get():
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    return in_netns(ns_path, get)


def egress(d, *rules):
    n = d.pb.NetworkOptions()
    for r in rules:
        n.egress.add().CopyFrom(r)
    return n


def wait_for(condition, timeout, what):
    """Polls `condition` until it returns a true value (returned), or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
