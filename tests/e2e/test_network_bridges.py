"""More sandboxes than a bridge takes: a Linux bridge holds at most 1023 ports, so sbxd puts
sandboxes beyond `network_sandboxes_per_bridge` on more bridges, each on a /22 of the subnet of
its own. Here every bridge takes one sandbox, on the private topology of test_network.py: each
sandbox, whatever its bridge, has public egress and DNS, is isolated from the others, and can
expose a port; teardown removes every bridge."""

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from network_topology import (  # noqa: E402
    INET, address_of, create, fetch, host_get, network_daemon, resolve, run, sh, stop, stop_all)


@pytest.fixture(scope="module")
def net(registry, protos):
    yield from network_daemon(registry, protos, {"network_sandboxes_per_bridge": 1})


def test_each_bridge_of_sandboxes_meets_the_same_rules(net):
    pb = net.pb
    web = pb.Service(port=8080, name="web", visibility=pb.VISIBILITY_PRIVATE)
    script = "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www"
    server = create(net, "/bin/sh", ["-c", script], services=[web])
    others = [create(net), create(net)]
    sids = [server.sandbox_id] + [sb.sandbox_id for sb in others]
    addresses = [ipaddress.ip_address(address_of(net, sid)) for sid in sids]
    blocks = {ipaddress.ip_network(f"{a}/22", strict=False) for a in addresses}
    assert len(blocks) == 3, addresses  # one bridge, and one /22, each
    links = sh("ip", "-n", net.topo.host, "-o", "link", "show", "type", "bridge").stdout
    assert f"{net.bridge}-1" in links and f"{net.bridge}-2" in links, links
    host = net.topo.path(net.topo.host)
    assert host_get(host, server.status.services[0].url) == "served\n"
    for sid in sids[1:]:
        # Egress and sbxd's DNS forwarder from every bridge.
        assert fetch(net, sid, f"http://{INET}/") == (True, "hello from the internet")
        assert resolve(net, sid, "public.test") == [INET]
        # No way to another bridge's sandbox.
        assert fetch(net, sid, f"http://{addresses[0]}:8080/") == (False, "")
    code, routes, _ = run(net, sids[1], "ip", "-4", "route")
    assert code == 0 and "default via " in routes
    for sid in sids:
        stop(net, sid)
    stop_all(net)
    net.stop()
    links = sh("ip", "-n", net.topo.host, "-o", "link").stdout
    assert net.bridge not in links, links
