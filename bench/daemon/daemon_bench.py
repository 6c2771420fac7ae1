"""sbxd against Docker, same machine, same image (python:3.11 from the local registry), same run.

  python3 bench/daemon/daemon_bench.py --socket /run/sbx/sbxd.sock --registry 127.0.0.1:5000 \
      [--runs 50] [--burst 100] [--gap-ms 250] [--json out.json] [--no-docker]

Measures, for each system:
  * create -> first output of `python -c 'print(1)'` (a new sandbox/container each run, the
    previous one gone and --gap-ms of quiet before each, as for an agent creating sandboxes now
    and then). For sbx two ways: as the SDK's Sandbox.run() + exec() does it (create, wait for
    RUNNING, StreamExec), and as `docker run` does it (the sandbox's main command, its output
    followed by StreamLogs); the latter also back to back, without the quiet;
  * exec round trip of `true` in a running sandbox/container (sbx: unary Exec over gRPC);
  * a burst of N concurrent creates, each followed by one exec (wall time for all);
  * teardown of those N (wall time until every one is gone).
And, as the floor both systems stand on, the host itself: `python3 -c 'print(1)'` (Debian's
python3, the same 3.11 the image is made of) spawned → first output, and a spawn of `/bin/true`.
Prints a table; ratios are Docker / sbx. Uses raw gRPC stubs generated from api/proto.
"""

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from grpc_stubs import load_stubs  # noqa: E402


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


class Sbx:
    def __init__(self, socket, image):
        import grpc
        self.pb, pb_grpc = load_stubs()
        self.channel = grpc.insecure_channel("unix://" + socket, options=[
            ("grpc.max_receive_message_length", 100 << 20)])
        self.stub = pb_grpc.SandboxServiceStub(self.channel)
        self.image = image

    def create_rpc(self, command, args):
        """CreateSandbox for a sandbox of the benchmark's image whose main command is given."""
        req = self.pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
        c = req.sandbox.spec.containers.add(name="main", image=self.image, command=command)
        c.args.extend(args)
        req.sandbox.spec.tags.append("bench")
        return self.stub.CreateSandbox(req, timeout=300)

    def create(self, command="/bin/sh", args=("-c", 'trap "exit 0" TERM; sleep 100000 & wait')):
        pb = self.pb
        sb = self.create_rpc(command, args)
        while sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING):
            sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id))
        assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
        return sb.sandbox_id

    def first_output(self, sid, argv):
        pb = self.pb
        call = self.stub.StreamExec(iter([pb.ExecStreamRequest(
            init=pb.ExecStreamInit(sandbox_id=sid, command=argv))]), timeout=60)
        for r in call:
            if r.WhichOneof("message") == "output":
                return r.output.data
        raise RuntimeError("no output")

    def run_main(self, argv):
        """Creates a sandbox whose main command is argv; returns its id and first output."""
        pb = self.pb
        sb = self.create_rpc(argv[0], argv[1:])
        logs = self.stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sb.sandbox_id, follow=True),
                                    timeout=60)
        for entry in logs:
            if entry.data:
                logs.cancel()
                return sb.sandbox_id, entry.data
        raise RuntimeError("no output: " + sb.sandbox_id)

    def exec(self, sid, argv):
        return self.stub.Exec(self.pb.ExecRequest(sandbox_id=sid, command=argv), timeout=60)

    def delete(self, sid):
        self.stub.DeleteSandbox(self.pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))

    def wait_gone(self, sid):
        pb = self.pb
        while True:
            sb = self.stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
            if sb.status.state in (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED):
                return
            time.sleep(0.005)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=250,
                    help="quiet before each sequential create (untimed)")
    ap.add_argument("--json")
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    sbx = Sbx(args.socket, "python:3.11")
    results = {}

    # Warm up: the image is pulled and unpacked once; both systems then use their local copy.
    sid = sbx.create()
    sbx.delete(sid)
    sbx.wait_gone(sid)

    def host_first_output(argv):
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE)
        line = p.stdout.readline()
        ms = (time.perf_counter() - t) * 1000
        p.wait()
        assert line.strip() == b"1"
        return ms

    host = []
    for _ in range(args.runs):
        time.sleep(args.gap_ms / 1000)
        host.append(host_first_output(["/usr/bin/python3", "-c", "print(1)"]))
    results["host python3 -c print(1), spawn -> first output (no sandbox)"] = host
    spawn_ms = []
    for _ in range(200):
        t = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        spawn_ms.append((time.perf_counter() - t) * 1000)
    results["host spawn + wait of /bin/true (no sandbox)"] = spawn_ms

    def sequential(run, gap_ms):
        # Each run's sandbox is deleted and gone (untimed, like the removal `docker run --rm` does
        # before it returns), then the machine is left quiet for gap_ms, before the next run.
        create_ms = []
        for _ in range(args.runs):
            time.sleep(gap_ms / 1000)
            t = time.perf_counter()
            sid, out = run()
            create_ms.append((time.perf_counter() - t) * 1000)
            assert out.strip() == b"1"
            sbx.delete(sid)
            sbx.wait_gone(sid)
        return create_ms

    def create_then_exec():
        sid = sbx.create()
        return sid, sbx.first_output(sid, ["python", "-c", "print(1)"])

    results["sbx create->first output (python -c print(1))"] = sequential(
        create_then_exec, args.gap_ms)
    results["sbx create(main cmd)->first output (python -c print(1))"] = sequential(
        lambda: sbx.run_main(["python", "-c", "print(1)"]), args.gap_ms)
    results["sbx create(main cmd)->first output, back to back"] = sequential(
        lambda: sbx.run_main(["python", "-c", "print(1)"]), 0)

    sid = sbx.create()
    exec_ms = []
    for _ in range(max(args.runs * 4, 200)):
        t = time.perf_counter()
        r = sbx.exec(sid, ["true"])
        exec_ms.append((time.perf_counter() - t) * 1000)
        assert r.exit_code == 0
    results["sbx exec round trip (true, unary gRPC)"] = exec_ms
    sbx.delete(sid)

    def burst_sbx(i):
        s = sbx.create()
        r = sbx.exec(s, ["python", "-c", f"print({i})"])
        assert r.stdout.strip() == str(i).encode()
        return s

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.burst) as pool:
        ids = list(pool.map(burst_sbx, range(args.burst)))
    results[f"sbx {args.burst} concurrent creates + exec (wall)"] = [(time.perf_counter() - t) * 1000]
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.burst) as pool:
        list(pool.map(sbx.delete, ids))
        list(pool.map(sbx.wait_gone, ids))
    results[f"sbx teardown of {args.burst} (wall)"] = [(time.perf_counter() - t) * 1000]

    if not args.no_docker:
        image = f"{args.registry}/library/python:3.11"
        docker("pull", "-q", image)
        create_ms = []
        for _ in range(args.runs):
            time.sleep(args.gap_ms / 1000)
            t = time.perf_counter()
            p = subprocess.Popen(["docker", "run", "--rm", "--network", "none", image, "python", "-c", "print(1)"],
                                 stdout=subprocess.PIPE)
            line = p.stdout.readline()
            create_ms.append((time.perf_counter() - t) * 1000)
            p.wait()
            assert line.strip() == b"1"
        results["docker run --rm -> first output (python -c print(1))"] = create_ms
        name = "sbx-bench-" + uuid.uuid4().hex[:6]
        docker("run", "-d", "--network", "none", "--name", name, image, "sleep", "100000")
        exec_ms = []
        for _ in range(max(args.runs * 4, 200)):
            t = time.perf_counter()
            docker("exec", name, "true")
            exec_ms.append((time.perf_counter() - t) * 1000)
        results["docker exec round trip (true)"] = exec_ms
        docker("rm", "-f", name)

        def burst_docker(i):
            n = f"sbx-bench-{uuid.uuid4().hex[:8]}"
            docker("run", "-d", "--network", "none", "--name", n, image, "sleep", "100000")
            out = docker("exec", n, "python", "-c", f"print({i})").stdout
            assert out.strip() == str(i)
            return n

        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.burst) as pool:
            names = list(pool.map(burst_docker, range(args.burst)))
        results[f"docker {args.burst} concurrent run -d + exec (wall)"] = [(time.perf_counter() - t) * 1000]
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.burst) as pool:
            list(pool.map(lambda n: docker("rm", "-f", n), names))
        results[f"docker teardown of {args.burst} (rm -f, wall)"] = [(time.perf_counter() - t) * 1000]

    print(f"{'measurement':60} {'n':>5} {'p50 ms':>10} {'p99 ms':>10}")
    summary = {}
    for name, values in results.items():
        summary[name] = {"n": len(values), "p50_ms": pct(values, 0.5), "p99_ms": pct(values, 0.99),
                         "mean_ms": statistics.fmean(values)}
        print(f"{name:60} {len(values):>5} {pct(values, 0.5):>10.2f} {pct(values, 0.99):>10.2f}")
    pairs = [
        ("docker run --rm -> first output (python -c print(1))",
         "sbx create->first output (python -c print(1))"),
        ("docker run --rm -> first output (python -c print(1))",
         "sbx create(main cmd)->first output (python -c print(1))"),
        ("docker run --rm -> first output (python -c print(1))",
         "sbx create(main cmd)->first output, back to back"),
        ("docker exec round trip (true)", "sbx exec round trip (true, unary gRPC)"),
        ("docker run --rm -> first output (python -c print(1))",
         "host python3 -c print(1), spawn -> first output (no sandbox)"),
        (f"docker {args.burst} concurrent run -d + exec (wall)",
         f"sbx {args.burst} concurrent creates + exec (wall)"),
        (f"docker teardown of {args.burst} (rm -f, wall)", f"sbx teardown of {args.burst} (wall)"),
    ]
    for peer, ours in pairs:
        if peer in summary and ours in summary:
            ratio = summary[peer]["p50_ms"] / summary[ours]["p50_ms"]
            summary[f"ratio: {ours}"] = {"docker_over_sbx_p50": ratio}
            print(f"{'docker / ' + ours:76} {ratio:>8.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
