"""How many idle sandboxes one machine holds: sbxd against Docker, same image (busybox from the
local registry), same run.

  python3 bench/daemon/density.py --socket SOCK --registry 127.0.0.1:5000 \
      [--count 5000] [--docker-count 200] [--workers 8] [--network public|none] [--json out.json]

Creates `--count` sandboxes idling in `sleep` (sbxd's defaults: no requests, its network) with
`--workers` creates in flight, until all run or one fails (or waits PENDING for a minute: the
node says why). Reports how many ran, the wall time, the host memory each took (MemAvailable
before and after, divided by the count), and the teardown's wall time. Docker runs
`--docker-count` containers of the same image the same way, for the per-container memory beside
sbx's. Nothing here is a pass or a fail: the figures go to docs/benchmarks.md.
"""

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from grpc_stubs import load_stubs  # noqa: E402


def available_memory():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def settle():
    """Lets the kernel's deferred frees finish so that MemAvailable means what is held."""
    subprocess.run(["sync"], check=False)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    time.sleep(2)


class Sbx:
    def __init__(self, socket, image, network):
        import grpc
        self.pb, pb_grpc = load_stubs()
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.stub = pb_grpc.SandboxServiceStub(self.channel)
        self.image = image
        self.network = network
        self.tag = "density-" + uuid.uuid4().hex[:8]

    def create(self):
        pb = self.pb
        req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
        s = req.sandbox.spec
        c = s.containers.add(name="main", image=self.image, command="/bin/sleep")
        c.args.append("1000000")
        s.tags.append(self.tag)
        if self.network == "none":
            s.network.egress.deny_egress = True
        sb = self.stub.CreateSandbox(req, timeout=300)
        deadline = time.monotonic() + 60
        while sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sb.sandbox_id} still {pb.State.Name(sb.status.state)}: "
                                   f"{sb.status.state_reason}")
            time.sleep(0.05)
            sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id))
        if sb.status.state != pb.STATE_RUNNING:
            raise RuntimeError(f"{sb.sandbox_id} {pb.State.Name(sb.status.state)}: "
                               f"{sb.status.state_reason}")
        return sb.sandbox_id

    def remove_all(self, ids):
        pb = self.pb
        self.stub.PurgeSandboxes(pb.PurgeSandboxesRequest(tags=[self.tag]), timeout=600)
        for sid in ids:
            while True:
                sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
                if sb.status.state in (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED):
                    break
                time.sleep(0.05)


class Docker:
    def __init__(self, image, network):
        self.image = image
        self.network = network
        self.label = "sbx-density=" + uuid.uuid4().hex[:8]
        # Pulled ahead, so that the pull is not part of the fill.
        subprocess.run(["docker", "pull", "-q", image], check=False, capture_output=True)

    def create(self):
        args = ["docker", "run", "-d", "--label", self.label]
        if self.network == "none":
            args += ["--network", "none"]
        out = subprocess.run(args + [self.image, "sleep", "1000000"], check=True,
                             capture_output=True, text=True).stdout
        return out.strip()

    def remove_all(self, ids):
        for start in range(0, len(ids), 100):
            subprocess.run(["docker", "rm", "-f", *ids[start:start + 100]], check=True,
                           capture_output=True)


def fill(system, count, workers):
    settle()
    before = available_memory()
    ids, error = [], None
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending = {pool.submit(system.create) for _ in range(min(count, workers))}
        submitted = len(pending)
        while pending:
            done, pending = concurrent.futures.wait(pending,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            for f in done:
                try:
                    ids.append(f.result())
                except Exception as e:  # noqa: BLE001 - the first failure ends the fill
                    error = error or str(e)
                if error is None and submitted < count:
                    pending.add(pool.submit(system.create))
                    submitted += 1
            if len(ids) and len(ids) % 500 == 0:
                print(f"  {len(ids)} running", file=sys.stderr, flush=True)
    fill_s = time.monotonic() - started
    settle()
    held = before - available_memory()
    started = time.monotonic()
    system.remove_all(ids)
    return {"running": len(ids), "fill_s": round(fill_s, 1),
            "memory_per_sandbox_mib": round(held / max(len(ids), 1) / (1 << 20), 2),
            "teardown_s": round(time.monotonic() - started, 1), "first_error": error}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--docker-count", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--network", choices=["public", "none"], default="public")
    ap.add_argument("--json")
    args = ap.parse_args()
    image = "busybox:latest"
    results = {"sbx": fill(Sbx(args.socket, image, args.network), args.count, args.workers)}
    if args.docker_count > 0:
        results["docker"] = fill(Docker(f"{args.registry}/library/busybox:latest", args.network),
                                 args.docker_count, args.workers)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
