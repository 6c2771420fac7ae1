"""Create and teardown rates of sbxd with networking on and off.

  python3 bench/network/network_bench.py --bin build/release/bin --registry 127.0.0.1:5000 \
      [--runs 100] [--burst 100] [--json out.json]

For each configuration -- `network: none` (loopback only), `network: bridge` with the default
pool of prepared namespaces, and `network: bridge` with no pool (every namespace and veth pair
made on the create path) -- a fresh sbxd runs in a network namespace made for the benchmark (so
nothing is added to the machine's own network; the local registry is reached through a relay of
this process; warm sandboxes are off, so every create makes or takes its network), and the
script measures:

  * sequential create (request -> RUNNING, busybox, tmpfs writable layer) and teardown
    (delete -> TERMINATED), one sandbox at a time;
  * a burst of N concurrent creates, each followed by one exec, and the teardown of those N
    (wall time until every sandbox is terminal);
  * with networking, how long after that teardown the kernel objects are gone (the veth pairs
    that are left are the pool's): the part of teardown that happens off the request path.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests/support"))
from grpc_stubs import load_stubs  # noqa: E402
from netns_util import in_netns, relay  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))] if s else float("nan")


class Daemon:
    def __init__(self, bin_dir, netns, registry, network, pool):
        self.netns = netns
        self.state = Path(tempfile.mkdtemp(prefix="sbx-netbench-"))
        self.socket = str(self.state / "run/sbxd.sock")
        tag = uuid.uuid4().hex[:6]
        config = {
            "state_dir": str(self.state / "lib"), "run_dir": str(self.state / "run"),
            "listen_unix": self.socket, "registry_mirrors": [f"http://{registry}"],
            "insecure_registries": [registry], "writable_layer": "tmpfs",
            "default_disk": "256Mi", "log_level": "warn", "cgroup_parent": "sbx-netbench-" + tag,
            "network": network, "network_bridge": "sbb" + tag, "network_table": "sbb_" + tag,
            "network_dns": ["192.0.2.53"],
            # What a network costs a create: a warm sandbox would have made its network ahead of
            # time (and would keep one attached after the teardown).
            "warm_pool_size": 0,
        }
        if pool is not None:
            config["network_pool_size"] = pool
        (self.state / "sbxd.json").write_text(json.dumps(config))
        self.bridge = config["network_bridge"]
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", f"{bin_dir}/sbxd", "--config",
             str(self.state / "sbxd.json")],
            stdout=open(self.state / "sbxd.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        for _ in range(600):
            if os.path.exists(self.socket):
                return
            if self.proc.poll() is not None:
                raise RuntimeError((self.state / "sbxd.log").read_text())
            time.sleep(0.05)
        raise RuntimeError("sbxd did not start")

    def veths(self):
        out = subprocess.run(["ip", "-n", self.netns, "-o", "link", "show", "type", "veth"],
                             capture_output=True, text=True).stdout
        return sum(1 for line in out.splitlines() if f"master {self.bridge}" in line)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(self.state)], check=False)


class Client:
    def __init__(self, socket_path, pb, pb_grpc):
        import grpc
        self.pb = pb
        self.channel = grpc.insecure_channel("unix://" + socket_path)
        self.stub = pb_grpc.SandboxServiceStub(self.channel)

    def create(self):
        pb = self.pb
        req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
        c = req.sandbox.spec.containers.add(name="main", image="busybox:latest",
                                            command="/bin/sh")
        c.args.extend(["-c", 'trap "exit 0" TERM; sleep 100000 & wait'])
        sb = self.stub.CreateSandbox(req, timeout=300)
        while sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING):
            time.sleep(0.002)
            sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id))
        assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
        return sb.sandbox_id

    def delete(self, sid):
        pb = self.pb
        self.stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))
        while True:
            sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
            if sb.status.state in (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED):
                return
            time.sleep(0.002)

    def exec(self, sid):
        r = self.stub.Exec(self.pb.ExecRequest(sandbox_id=sid, command=["true"]), timeout=60)
        assert r.exit_code == 0


def measure(name, daemon, client, runs, burst, pool):
    results = {}
    sid = client.create()  # the image is pulled once
    client.delete(sid)
    # Let the pool fill, as on a daemon that has been idle for a moment.
    time.sleep(2)
    create_ms, delete_ms = [], []
    for _ in range(runs):
        t = time.perf_counter()
        sid = client.create()
        create_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        client.delete(sid)
        delete_ms.append((time.perf_counter() - t) * 1000)
    results[f"{name}: create -> RUNNING"] = create_ms
    results[f"{name}: delete -> TERMINATED"] = delete_ms
    time.sleep(2)

    def one(_):
        s = client.create()
        client.exec(s)
        return s

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=burst) as ex:
        ids = list(ex.map(one, range(burst)))
    results[f"{name}: {burst} concurrent creates + exec (wall)"] = [(time.perf_counter() - t) * 1000]
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=burst) as ex:
        list(ex.map(client.delete, ids))
    results[f"{name}: teardown of {burst} (wall)"] = [(time.perf_counter() - t) * 1000]
    if pool is not None:
        # Until only the pool's veth pairs are left (the pool refills in the meantime, so count
        # down to at most its size).
        deadline = time.monotonic() + 120
        while daemon.veths() > pool and time.monotonic() < deadline:
            time.sleep(0.01)
        results[f"{name}: {burst} networks released after teardown (wall)"] = [
            (time.perf_counter() - t) * 1000]
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "build/release/bin"))
    ap.add_argument("--registry", required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--pool", type=int, default=16)
    ap.add_argument("--json")
    args = ap.parse_args()
    pb, pb_grpc = load_stubs()
    netns = "sbx-netbench-" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    results = {}
    try:
        host, port = args.registry.rsplit(":", 1)

        def listen():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(port)))
            s.listen(256)
            return s

        relay(in_netns(f"/run/netns/{netns}", listen), (host, int(port)))
        for name, network, pool in [("network none", "none", None),
                                    (f"network bridge, pool {args.pool}", "bridge", args.pool),
                                    ("network bridge, no pool", "bridge", 0)]:
            daemon = Daemon(args.bin, netns, args.registry, network, pool)
            try:
                client = Client(daemon.socket, pb, pb_grpc)
                results.update(measure(name, daemon, client, args.runs, args.burst, pool))
                client.channel.close()
            finally:
                daemon.stop()
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    print(f"{'measurement':62} {'n':>4} {'p50 ms':>9} {'p99 ms':>9}")
    summary = {}
    for name, values in results.items():
        summary[name] = {"n": len(values), "p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99),
                         "mean_ms": statistics.fmean(values)}
        print(f"{name:62} {len(values):>4} {pct(values, 0.5):>9.2f} {pct(values, 0.99):>9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
