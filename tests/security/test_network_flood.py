"""A sandbox that floods the host's shared network state: its connection tracking table (one
conntrack entry per flow, 262144 by default for the whole machine) and, through the DNS
forwarder, the host's sockets and upstream resolvers.

Defences (SECURITY.md, "It cannot exhaust the host"; docs/networking.md, "Limits"): nftables
rules in sbxd's namespace drop a sandbox's new flows beyond its rate and beyond its count of
tracked flows, and beyond a count for all sandboxes together; the forwarder refuses a sandbox's
queries beyond its rate. The sandboxes run in a private topology of network namespaces
(tests/support/network_topology.py); the floods go to a namespace of the test's own.
"""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from network_topology import (  # noqa: E402
    INET, PYTHON, create, fetch, network_daemon, run, sh, stop)

FLOWS = 20000

# One UDP datagram to each of FLOWS ports of the internet host: as many flows, one packet each.
# Prints how long the sending took, and the sandbox's address.
UDP_FLOOD = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for port in range(1024, 1024 + {FLOWS}):
    try:
        s.sendto(b"x", ("{INET}", port))
    except OSError:
        pass  # an ICMP error of an earlier datagram, reported on this one
seconds = time.monotonic() - start
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.connect(("{INET}", 9))  # sends nothing: it only picks the source address
print(seconds, probe.getsockname()[0])
"""


@pytest.fixture(scope="module")
def net(registry, protos):
    """sbxd with the default limits."""
    yield from network_daemon(registry, protos)


@pytest.fixture(scope="module")
def small(registry, protos):
    """sbxd with small counts of tracked flows: per sandbox, and for all of them together."""
    yield from network_daemon(registry, protos,
                              {"network_sandbox_max_flows": 500, "network_max_flows": 800})


def tracked_flows(d, address=None):
    """Conntrack entries in sbxd's namespace started by `address` (any sandbox when None)."""
    table = sh("nsenter", f"--net={d.topo.path(d.topo.host)}", "cat",
               "/proc/net/nf_conntrack").stdout
    count = 0
    for line in table.splitlines():
        source = re.search(r"src=([0-9.]+) ", line)
        if not source:
            continue
        if address is None and source.group(1).startswith("10."):
            count += 1
        elif source.group(1) == address:
            count += 1
    return count


def limit_hits(d, limit):
    text = d.metrics()
    found = re.search(r'^sbx_network_limited_total\{limit="%s"\} (\d+)$' % limit, text, re.M)
    return int(found.group(1)) if found else 0


def flood(d, sid):
    """(seconds the flood took, the sandbox's address)."""
    code, out, err = run(d, sid, "python3", "-c", UDP_FLOOD, timeout=120)
    assert code == 0, err
    seconds, address = out.split()
    return float(seconds), address


def test_new_flows_of_a_sandbox_are_rate_limited(net):
    """A flood of one-packet flows takes no more of the host's table than the sandbox's rate of
    new flows allows (1000 a second, bursts of 2000, by default): the host's other users, the
    node's other sandboxes included, keep theirs."""
    flooder = create(net, image=PYTHON).sandbox_id
    other = create(net).sandbox_id
    seconds, address = flood(net, flooder)
    admitted = tracked_flows(net, address)
    # What the bucket held, and what it gained while the flood ran.
    assert admitted <= 2000 + 1000 * seconds + 10, (admitted, seconds)
    assert admitted < FLOWS / 2, admitted
    assert limit_hits(net, "sandbox_flow_rate") >= FLOWS - admitted - 10
    # The limit is the flooder's alone.
    assert fetch(net, other, f"http://{INET}/") == (True, "hello from the internet")
    stop(net, flooder)
    stop(net, other)


def test_tracked_flows_are_limited_per_sandbox_and_for_all(small):
    """Flows a sandbox has open at once are capped (network_sandbox_max_flows), and so are those
    of all sandboxes together (network_max_flows): many sandboxes cannot fill the table either."""
    first = create(small, image=PYTHON).sandbox_id
    second = create(small, image=PYTHON).sandbox_id
    # The rate limit (the default) admits more flows than these counts: only they are in play.
    first_flows = tracked_flows(small, flood(small, first)[1])
    assert 450 <= first_flows <= 500 + 5, first_flows
    assert limit_hits(small, "sandbox_flows") > 0
    _, second_address = flood(small, second)
    assert tracked_flows(small) <= 800 + 5
    assert tracked_flows(small, second_address) <= 800 - first_flows + 5
    assert limit_hits(small, "flows") > 0
    stop(small, first)
    stop(small, second)


# Asks the forwarder (the gateway) for QUERIES distinct names, one after the other, each answer
# awaited (or given up after a second). Prints the answers' rcodes and how long it all took.
DNS_QUERIES = """
import socket, struct, sys, time
gateway = open("/etc/resolv.conf").read().split()[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
rcodes = {}
start = time.monotonic()
for i in range(int(sys.argv[1])):
    labels = [b"q%d" % i, b"public", b"test"]
    name = b"".join(bytes([len(l)]) + l for l in labels) + b"\\0"
    s.sendto(struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1),
             (gateway, 53))
    try:
        while True:
            answer = s.recv(4096)
            if struct.unpack(">H", answer[:2])[0] == i:
                break
        rcode = answer[3] & 0xF
    except socket.timeout:
        rcode = -1
    rcodes[rcode] = rcodes.get(rcode, 0) + 1
print(time.monotonic() - start, rcodes)
"""


def test_dns_queries_of_a_sandbox_are_rate_limited(net):
    """Each query the forwarder sends upstream costs the host a socket, a conntrack entry that no
    limit of the sandbox's counts, and the upstream resolver's good will: a sandbox gets 100 a
    second (bursts of 200) by default, the rest are REFUSED at once."""
    sid = create(net, image=PYTHON).sandbox_id
    asked = lambda name: name.endswith(".public.test")  # noqa: E731
    before = net.topo.dns.count(asked)
    code, out, err = run(net, sid, "python3", "-c", DNS_QUERIES, "1000", timeout=300)
    assert code == 0, err
    seconds = float(out.split()[0])
    upstream = net.topo.dns.count(asked) - before
    assert upstream <= 200 + 100 * seconds + 5, (upstream, out)
    assert "5:" in out, out  # REFUSED
    assert limit_hits(net, "sandbox_dns_query_rate") >= 1000 - upstream - 5
    # Another sandbox's queries are its own.
    other = create(net).sandbox_id
    code, out, _ = run(net, other, "nslookup", "public.test")
    assert code == 0 and INET in out, out
    stop(net, sid)
    stop(net, other)
