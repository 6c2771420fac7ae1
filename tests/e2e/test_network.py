"""Sandbox networking end to end, on a private topology of network namespaces
(tests/support/network_topology.py): sbxd in a "host" namespace whose uplink LAN leads to a router
and the "internet" behind it (documentation addresses, public to sbxd's deny set), and a "private"
namespace on an RFC 1918 address that also holds the cloud metadata address. No test packet leaves
the machine.

The tests check what operators rely on: public egress works and the deny set holds (private
hosts, metadata, the host's own services, other sandboxes), allowlists allow exactly what they
list (a rebinding DNS answer included), deny_egress is loopback only, an exposed port is
reachable, and teardown leaves no veth, namespace or nftables table of the daemon behind.
"""

import socket
import sys
import time
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from network_topology import (  # noqa: E402
    HOST_INET, HOST_PRIVATE, HOST_SERVICE_PORT, INET, INET2, METADATA, PRIVATE, address_of, create,
    egress, fetch, host_get, network_daemon, resolve, run, sh, stop, stop_all)


@pytest.fixture(scope="module")
def net(registry, protos):
    yield from network_daemon(registry, protos)


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


def wait_answers(opener, url):
    deadline = time.monotonic() + 10
    while True:
        try:
            return host_get(opener, url)
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def test_exposed_port_is_reachable_from_the_host(net):
    pb = net.pb
    web = pb.Service(port=8080, name="web", visibility=pb.VISIBILITY_PRIVATE)
    # Declared without a visibility: not exposed, so no URL (as the hosted service does).
    internal = pb.Service(port=9000, name="internal")
    script = ("mkdir -p /www && echo exposed > /www/index.html && "
              "httpd -p 9000 -h /www && exec httpd -f -p 8080 -h /www")
    sb = create(net, "/bin/sh", ["-c", script], services=[web, internal])
    sid = sb.sandbox_id
    services = {s.name: s for s in sb.status.services}
    assert set(services) == {"web", "internal"}
    assert services["web"].port == 8080
    assert services["internal"].url == ""
    url = services["web"].url
    host_port = int(url.rsplit(":", 1)[1])
    host = net.topo.path(net.topo.host)
    assert wait_answers(host, url) == "exposed\n"
    # The host reaches it on its other addresses too; other machines do not reach a private one.
    assert host_get(host, f"http://{HOST_INET}:{host_port}/") == "exposed\n"
    inet = net.topo.path(net.topo.inet)
    with pytest.raises(OSError):
        host_get(inet, f"http://{HOST_INET}:{host_port}/", timeout=2)
    stop(net, sid)
    # Once the sandbox is gone, so is the port; the status lists only the declared service.
    after = net.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).status.services
    assert [(s.name, s.url) for s in after] == [("internal", "")]
    with pytest.raises(OSError):
        host_get(host, url, timeout=2)


def test_public_port_is_reachable_from_other_machines(net):
    pb = net.pb
    # Port 80: root in the sandbox binds low ports in the namespaces sbxd prepares, too.
    public = pb.Service(port=80, name="open", visibility=pb.VISIBILITY_PUBLIC)
    script = "mkdir -p /www && echo public > /www/index.html && exec httpd -f -p 80 -h /www"
    sb = create(net, "/bin/sh", ["-c", script], services=[public])
    open_port = int(sb.status.services[0].url.rsplit(":", 1)[1])
    inet = net.topo.path(net.topo.inet)
    assert wait_answers(inet, f"http://{HOST_INET}:{open_port}/") == "public\n"
    stop(net, sb.sandbox_id)


def test_services_the_hosted_service_refuses_are_refused(net):
    pb = net.pb
    mixed = [pb.Service(port=80, visibility=pb.VISIBILITY_PUBLIC),
             pb.Service(port=81, visibility=pb.VISIBILITY_PRIVATE)]
    with pytest.raises(grpc.RpcError) as info:
        create(net, services=mixed)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sandbox.spec.services[1].visibility" in info.value.details()
    assert "mixed" in info.value.details()
    # SCTP is exposed where the host's kernel speaks it; elsewhere the create says why not.
    sctp = pb.Service(port=5000, protocol=pb.SERVICE_PROTOCOL_SCTP,
                      visibility=pb.VISIBILITY_PRIVATE)
    if kernel_speaks_sctp():
        sb = create(net, services=[sctp])
        assert sb.status.services[0].url.startswith("sctp://")
        stop(net, sb.sandbox_id)
    else:
        with pytest.raises(grpc.RpcError) as info:
            create(net, services=[sctp])
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SCTP" in info.value.details()
    declared = pb.Service(port=5000, protocol=pb.SERVICE_PROTOCOL_SCTP)
    sb = create(net, services=[declared])
    assert [(s.protocol, s.url) for s in sb.status.services] == [(pb.SERVICE_PROTOCOL_SCTP, "")]
    stop(net, sb.sandbox_id)


def kernel_speaks_sctp():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


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
