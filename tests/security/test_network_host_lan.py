"""A sandbox that tries the host's own networks: its LAN, its router, a LAN that appears while
sbxd runs, where their addresses are public ones (outside RFC 1918, CGNAT, link-local and the
other ranges the built-in deny set covers).

Defence (SECURITY.md, "It cannot reach the host, ..."; docs/networking.md, "The deny set"): sbxd
adds the subnets of the host's addresses, its on-link routes and its gateways to the deny set,
follows their changes through an rtnetlink subscription and replaces the set's elements in one
nftables transaction; `network_allow` still opens what an operator lists. The host's LANs and
their peers are namespaces of the test's own (tests/support/network_topology.py).
"""

import ipaddress
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from network_topology import (  # noqa: E402
    INET, LAN_PEER, ROUTER, create, fetch, host_get, network_daemon, resolve, sh, stop, wait_for)

ALLOWED_PEER = "198.51.100.4"  # on the host's LAN too, and in network_allow


@pytest.fixture(scope="module")
def net(registry, protos):
    yield from network_daemon(registry, protos, {"network_allow": [f"{ALLOWED_PEER}/32"]})


def deny_covers(d, address):
    """Whether the daemon's deny set, as installed in the kernel, holds `address`."""
    listing = d.nft("list", "set", "inet", d.table, "deny")
    ip = ipaddress.ip_address(address)
    for first, last in re.findall(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)(?:-(\d+\.\d+\.\d+\.\d+))?",
                                  listing.split("elements", 1)[-1]):
        if last:
            if ipaddress.ip_address(first) <= ip <= ipaddress.ip_address(last):
                return True
        elif ip in ipaddress.ip_network(first, strict=False):
            return True
    return False


def test_the_hosts_lan_and_router_are_closed(net):
    inet = net.topo.inet
    sh("ip", "-n", inet, "addr", "add", f"{ALLOWED_PEER}/24", "dev", "eth0")
    host = net.topo.path(net.topo.host)
    # The LAN's machines answer the host: a refusal below is the deny set, not a dead peer.
    for peer in (LAN_PEER, ROUTER, ALLOWED_PEER):
        assert host_get(host, f"http://{peer}/") == "hello from the internet"
    sid = create(net).sandbox_id
    # The same server is reachable through its internet address...
    assert fetch(net, sid, f"http://{INET}/") == (True, "hello from the internet")
    # ...and not through the host's LAN, although 198.51.100.0/24 is public.
    for peer in (LAN_PEER, ROUTER):
        ok, body = fetch(net, sid, f"http://{peer}/")
        assert not ok, f"{peer} answered: {body}"
    # A public name that resolves into the host's LAN resolves to nothing.
    assert resolve(net, sid, "lan.test") == []
    # What the operator allows stays open.
    assert fetch(net, sid, f"http://{ALLOWED_PEER}/") == (True, "hello from the internet")
    stop(net, sid)


def test_a_lan_the_host_joins_later_is_closed_at_once(net):
    sid = create(net).sandbox_id
    assert not deny_covers(net, "192.0.2.10")
    _, link = net.topo.add_lan("192.0.2.1", "192.0.2.10")
    assert host_get(net.topo.path(net.topo.host), "http://192.0.2.10/") == "hello from the new lan"
    # The change reaches sbxd as a notification, not at its next poll.
    wait_for(lambda: deny_covers(net, "192.0.2.10"), 5, "the new LAN never entered the deny set")
    ok, body = fetch(net, sid, "http://192.0.2.10/")
    assert not ok, body
    # A network routed on that link is the host's too.
    sh("ip", "-n", net.topo.host, "route", "add", "203.0.113.128/25", "dev", link)
    wait_for(lambda: deny_covers(net, "203.0.113.200"), 5, "an on-link route was not denied")
    assert not deny_covers(net, INET)
    # When the host leaves the LAN, its addresses are public again.
    sh("ip", "-n", net.topo.host, "link", "del", link)
    wait_for(lambda: not deny_covers(net, "192.0.2.10") and not deny_covers(net, "203.0.113.200"),
             5, "the deny set kept a network the host left")
    # The built-in ranges never leave.
    assert deny_covers(net, "10.1.2.3") and deny_covers(net, "169.254.169.254")
    stop(net, sid)
