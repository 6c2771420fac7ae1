"""Sandbox networking end to end, on a private topology of network namespaces.

sbxd runs in a namespace made for the test ("host"), joined by veth pairs to an "internet"
namespace on a documentation address (203.0.113.10, public to sbxd's deny set) that runs an HTTP
server and a DNS server answering names from a table, and to a "private" namespace on an RFC 1918
address (192.168.77.10) that also holds the cloud metadata address (169.254.169.254). None of them
has a route to the machine's real interfaces: no test packet leaves the machine. sbxd reaches the
local registry through a relay whose two ends are sockets of this process, one in each namespace.

The tests check what operators rely on: public egress works and the deny set holds (private
hosts, metadata, the host's own services, other sandboxes), allowlists allow exactly what they
list (a rebinding DNS answer included), deny_egress is loopback only, an exposed port is
reachable, and teardown leaves no veth, namespace or nftables table of the daemon behind.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest

import conftest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from netns_util import accept_each, in_netns, relay  # noqa: E402

BUSYBOX = "busybox:latest"
INET = "203.0.113.10"
INET2 = "203.0.113.20"
HOST_INET = "203.0.113.1"
PRIVATE = "192.168.77.10"
HOST_PRIVATE = "192.168.77.1"
METADATA = "169.254.169.254"
HOST_SERVICE_PORT = 8099


DNS_TABLE = {
    "public.test": [INET],
    "unlisted.test": [INET2],
    "rebind.test": [PRIVATE],  # a public name whose answer is a private address
    "metadata.test": [METADATA],
}


def sh(*args, check=True):
    return conftest.run(list(args), check=check, capture_output=True, text=True)


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
    qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
    if qdcount != 1:
        return None
    pos, labels = 12, []
    while query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode().lower())
        pos += 1 + n
    qtype, _qclass = struct.unpack(">HH", query[pos + 1:pos + 5])
    question = query[12:pos + 5]
    addresses = DNS_TABLE.get(".".join(labels))
    answers = b""
    count = 0
    if addresses and qtype == 1:
        for a in addresses:
            answers += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(a)
            count += 1
    rcode = 0 if addresses is not None else 3
    return struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0) + question + answers


def dns_server(sock):
    def loop():
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return
            try:
                answer = dns_answer(data)
            except (IndexError, struct.error, UnicodeDecodeError):
                answer = None
            if answer:
                sock.sendto(answer, peer)

    serve_forever(loop)


def fnv1a(text):
    h = 2166136261
    for c in text.encode():
        h ^= c
        h = (h * 16777619) & 0xFFFFFFFF
    return h


class Topology:
    """Three namespaces (host, internet, private) wired with veth pairs."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.host, self.inet, self.priv = (f"sbxt-{tag}-{n}" for n in ("host", "inet", "priv"))
        self.links = (f"sbxt{tag}i", f"sbxt{tag}p")
        self.sockets = []

    def path(self, ns):
        return f"/run/netns/{ns}"

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
        sh("ip", "-n", self.inet, "addr", "add", f"{INET}/24", "dev", "eth0")
        sh("ip", "-n", self.inet, "addr", "add", f"{INET2}/24", "dev", "eth0")
        sh("ip", "-n", self.priv, "addr", "add", f"{PRIVATE}/24", "dev", "eth0")
        sh("ip", "-n", self.priv, "addr", "add", f"{METADATA}/32", "dev", "eth0")
        for ns, link in ((self.host, hi), (self.host, hp), (self.inet, "eth0"),
                         (self.priv, "eth0")):
            sh("ip", "-n", ns, "link", "set", link, "up")
        # The internet is the host's default route; the private network and the metadata address
        # are one hop away on the other side, as on a cloud machine.
        sh("ip", "-n", self.host, "route", "add", "default", "via", INET)
        sh("ip", "-n", self.host, "route", "add", f"{METADATA}/32", "via", PRIVATE)
        sh("ip", "-n", self.priv, "route", "add", "default", "via", HOST_PRIVATE)

        def make(ns, *args):
            s = in_netns(self.path(ns), lambda: listener(*args))
            self.sockets.append(s)
            return s

        http_server(make(self.inet, "0.0.0.0", 80), "hello from the internet")
        dns_server(make(self.inet, INET, 53, socket.SOCK_DGRAM))
        http_server(make(self.priv, "0.0.0.0", 80), "private data")
        # Services of the host itself: on loopback and on every address (the gateway included).
        http_server(make(self.host, "127.0.0.1", HOST_SERVICE_PORT), "host loopback service")
        http_server(make(self.host, "0.0.0.0", HOST_SERVICE_PORT + 1), "host service")

    def relay_registry(self, registry):
        host, port = registry.rsplit(":", 1)
        s = in_netns(self.path(self.host), lambda: listener("127.0.0.1", int(port)))
        self.sockets.append(s)
        relay(s, (host, int(port)))

    def down(self):
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for ns in (self.host, self.inet, self.priv):
            sh("ip", "netns", "del", ns, check=False)


class NetDaemon:
    """sbxd in the topology's host namespace."""

    def __init__(self, bin_dir, topo, registry, protos):
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
        self.config = self.state / "sbxd.json"
        self.config.write_text(json.dumps({
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
        }))
        self.proc = None

    @property
    def socket(self):
        return str(self.run_dir / "sbxd.sock")

    def start(self):
        # A socket left by a killed daemon would look like a live one.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        log = open(self.state / "sbxd.log", "ab")
        self.proc = conftest.spawn(
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
                conftest.run(["umount", "-l", point], capture_output=True)
        for root in Path("/sys/fs/cgroup").iterdir():
            for parent in (root / self.cgroup_parent, Path("/sys/fs/cgroup") / self.cgroup_parent):
                if parent.is_dir():
                    try:
                        parent.rmdir()
                    except OSError:
                        pass
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture(scope="module")
def net(registry, protos):
    bin_dir = os.environ.get("SBX_BIN_DIR")
    if not bin_dir:
        pytest.fail("SBX_BIN_DIR must point at the build's bin directory")
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        pytest.fail("the network tests need iproute2 and util-linux (nsenter)")
    topo = Topology()
    daemon = None
    try:
        topo.up()
        topo.relay_registry(registry)
        daemon = NetDaemon(bin_dir, topo, registry, protos)
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
# Helpers


def create(d, command=None, args=(), network=None, services=()):
    pb = d.pb
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    s = req.sandbox.spec
    c = s.containers.add(name="main", image=BUSYBOX)
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


def run(d, sid, *command):
    r = d.stub.Exec(d.pb.ExecRequest(sandbox_id=sid, command=list(command)), timeout=60)
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


# ---------------------------------------------------------------------------------------------
# Tests


def test_public_egress_reaches_the_internet(net):
    sb = create(net)
    sid = sb.sandbox_id
    # Reported: every public destination.
    assert [r.any for r in sb.status.effective_egress] == [True]
    assert fetch(net, sid, f"http://{INET}/") == (True, "hello from the internet")
    # DNS inside the sandbox is sbxd's forwarder, which asks the configured upstream.
    code, resolv, _ = run(net, sid, "cat", "/etc/resolv.conf")
    assert code == 0 and "nameserver 10." in resolv
    assert resolve(net, sid, "public.test") == [INET]
    assert fetch(net, sid, "http://public.test/") == (True, "hello from the internet")
    # IPv6 is off inside the sandbox: eth0 has no IPv6 address at all.
    code, out, _ = run(net, sid, "ip", "-6", "addr", "show", "dev", "eth0")
    assert "inet6" not in out
    stop(net, sid)


def test_deny_set_holds_in_public_mode(net):
    sid = create(net).sandbox_id
    gateway = run(net, sid, "cat", "/etc/resolv.conf")[1].split()[1]
    # The targets exist and answer the host: a refusal below is the deny set, not a dead host.
    assert host_get(net.topo.path(net.topo.host), f"http://{PRIVATE}/") == "private data"
    assert host_get(net.topo.path(net.topo.host), f"http://{METADATA}/") == "private data"
    assert host_get(net.topo.path(net.topo.host),
                    f"http://{gateway}:{HOST_SERVICE_PORT + 1}/") == "host service"
    for url in [f"http://{PRIVATE}/",                                # RFC 1918
                f"http://{METADATA}/latest/meta-data/",              # cloud metadata
                f"http://{gateway}:{HOST_SERVICE_PORT + 1}/",        # the host, via the gateway
                f"http://{HOST_INET}:{HOST_SERVICE_PORT + 1}/",      # the host's own address
                f"http://{HOST_PRIVATE}:{HOST_SERVICE_PORT + 1}/",
                f"http://127.0.0.1:{HOST_SERVICE_PORT}/"]:           # loopback is the sandbox's
        ok, body = fetch(net, sid, url)
        assert not ok, f"{url} answered: {body}"
    # A public name that resolves to a private address resolves to nothing.
    assert resolve(net, sid, "rebind.test") == []
    assert resolve(net, sid, "metadata.test") == []
    stop(net, sid)


def test_sandboxes_cannot_reach_each_other(net):
    server = create(net, "/bin/sh", ["-c", "mkdir -p /www && echo from-a > /www/index.html && "
                                           "exec httpd -f -p 8080 -h /www"]).sandbox_id
    client = create(net).sandbox_id
    a = address_of(net, server)
    b = address_of(net, client)
    assert a != b
    # The server answers on its own address...
    deadline = time.monotonic() + 10
    while fetch(net, server, f"http://{a}:8080/") != (True, "from-a\n"):
        assert time.monotonic() < deadline, "httpd did not start"
        time.sleep(0.1)
    # ...but not to another sandbox, directly or through the gateway.
    ok, body = fetch(net, client, f"http://{a}:8080/")
    assert not ok, body
    code, _, _ = run(net, client, "ping", "-c", "1", "-W", "1", a)
    assert code != 0
    stop(net, server)
    stop(net, client)


def test_allowlist_by_name_allows_only_what_it_lists(net):
    pb = net.pb
    rule = pb.EgressRule(dns_name="public.test", ports=[pb.PortRange(protocol="tcp", port=80)])
    rebind = pb.EgressRule(dns_name="rebind.test", ports=[pb.PortRange(protocol="tcp", port=80)])
    sb = create(net, network=egress(net, rule, rebind))
    sid = sb.sandbox_id
    assert [r.dns_name for r in sb.status.effective_egress] == ["public.test", "rebind.test"]
    # Before resolving, the address is not allowed: sbxd only lets through what it resolved.
    ok, _ = fetch(net, sid, f"http://{INET}/")
    assert not ok
    assert fetch(net, sid, "http://public.test/") == (True, "hello from the internet")
    # Names not listed do not resolve; their addresses stay closed even when public.
    assert resolve(net, sid, "unlisted.test") == []
    ok, _ = fetch(net, sid, f"http://{INET2}/")
    assert not ok
    # A listed name whose answer is private (DNS rebinding) widens nothing.
    assert resolve(net, sid, "rebind.test") == []
    ok, _ = fetch(net, sid, f"http://{PRIVATE}/")
    assert not ok
    stop(net, sid)


def test_allowlist_by_cidr_and_port(net):
    pb = net.pb
    rule = pb.EgressRule(cidr=pb.CidrBlock(cidr=f"{INET2}/32"),
                         ports=[pb.PortRange(protocol="tcp", port=80)])
    sid = create(net, network=egress(net, rule)).sandbox_id
    assert fetch(net, sid, f"http://{INET2}/") == (True, "hello from the internet")
    ok, _ = fetch(net, sid, f"http://{INET}/")
    assert not ok
    # A listed CIDR never opens the deny set.
    private = pb.EgressRule(cidr=pb.CidrBlock(cidr="192.168.0.0/16"))
    sid2 = create(net, network=egress(net, private)).sandbox_id
    ok, _ = fetch(net, sid2, f"http://{PRIVATE}/")
    assert not ok
    stop(net, sid)
    stop(net, sid2)


def test_deny_egress_is_loopback_only(net):
    sid = create(net, network=net.pb.NetworkOptions(deny_egress=True)).sandbox_id
    code, out, _ = run(net, sid, "ip", "-o", "link")
    assert code == 0
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    ok, _ = fetch(net, sid, f"http://{INET}/")
    assert not ok
    stop(net, sid)


def test_exposed_port_is_reachable_from_the_host(net):
    pb = net.pb
    web = pb.Service(port=8080, name="web")
    # Port 80: root in the sandbox binds low ports in the namespaces sbxd prepares, too.
    public = pb.Service(port=80, name="open", visibility=pb.VISIBILITY_PUBLIC)
    script = ("mkdir -p /www && echo exposed > /www/index.html && "
              "httpd -p 80 -h /www && exec httpd -f -p 8080 -h /www")
    sb = create(net, "/bin/sh", ["-c", script], services=[web, public])
    sid = sb.sandbox_id
    services = {s.name: s for s in sb.status.services}
    assert set(services) == {"web", "open"}
    assert services["web"].port == 8080
    url = services["web"].url
    host_port = int(url.rsplit(":", 1)[1])
    open_port = int(services["open"].url.rsplit(":", 1)[1])
    host = net.topo.path(net.topo.host)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert host_get(host, url) == "exposed\n"
            break
        except OSError:
            assert time.monotonic() < deadline, "exposed port never answered"
            time.sleep(0.1)
    # The host reaches it on its other addresses too; other machines only reach the public one.
    assert host_get(host, f"http://{HOST_INET}:{host_port}/") == "exposed\n"
    inet = net.topo.path(net.topo.inet)
    assert host_get(inet, f"http://{HOST_INET}:{open_port}/") == "exposed\n"
    with pytest.raises(OSError):
        host_get(inet, f"http://{HOST_INET}:{host_port}/", timeout=2)
    stop(net, sid)
    # Once the sandbox is gone, so is the port, and the status no longer lists it.
    assert not net.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).status.services
    with pytest.raises(OSError):
        host_get(host, url, timeout=2)


def test_networks_survive_a_daemon_crash(net):
    pb = net.pb
    public = create(net).sandbox_id
    rule = pb.EgressRule(dns_name="public.test", ports=[pb.PortRange(protocol="tcp", port=80)])
    listed = create(net, network=egress(net, rule)).sandbox_id
    assert fetch(net, listed, "http://public.test/")[0]
    net.kill9()
    net.start()
    # The sandboxes kept their namespaces; the rebuilt rules still apply to them.
    assert fetch(net, public, f"http://{INET}/") == (True, "hello from the internet")
    assert fetch(net, listed, "http://public.test/") == (True, "hello from the internet")
    ok, _ = fetch(net, listed, f"http://{INET2}/")
    assert not ok
    ok, _ = fetch(net, public, f"http://{PRIVATE}/")
    assert not ok
    # New sandboxes get fresh slots while the old daemon's unused ones are removed.
    fresh = create(net).sandbox_id
    assert address_of(net, fresh) not in (address_of(net, public), address_of(net, listed))
    for sid in (public, listed, fresh):
        stop(net, sid)


def test_teardown_leaves_nothing_behind(net):
    ids = create(net).sandbox_id, create(net).sandbox_id
    for sid in ids:
        stop(net, sid)
    stop_all(net)
    net.stop()
    host = net.topo.host
    links = sh("ip", "-n", host, "-o", "link").stdout
    assert net.bridge not in links
    assert net.port_prefix not in links
    tables = sh("nsenter", f"--net={net.topo.path(host)}", "nft", "list", "tables").stdout
    assert net.table not in tables
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(net.state) not in mounts, "a namespace pin is still mounted"
    assert not (net.run_dir / "network").exists()
