"""The harness of the suites that run against a real sbxd (tests/e2e, tests/security): the daemon
with the local registry as docker.io's mirror, raw gRPC stubs generated from the project's own
protos, and child processes whose exit status survives the test process being a subreaper.

A suite's conftest.py re-exports these names, so pytest finds the fixtures and tests import the
helpers from `conftest`. The tests run only with SBX_E2E=1 (tools/dev.sh test sets it) and need
SBX_BIN_DIR (the build's bin directory) and a running local registry (tools/registry/registry.sh
up).
"""

import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ("tests/e2e", "tests/security")
API_KEY_A = "tenant-a-key-0123456789"
API_KEY_B = "tenant-b-key-0123456789"
API_KEY_OPERATOR = "operator-key-0123456789"
QUOTA_B = 3


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SBX_E2E") == "1":
        return
    skip = pytest.mark.skip(reason="tests against sbxd need SBX_E2E=1 (run tools/dev.sh test)")
    for item in items:
        if any(suite in str(item.fspath) for suite in SUITES):
            item.add_marker(skip)


_REAPING = []


def _become_subreaper():
    """Sandboxes' init processes are re-parented to us if sbxd is killed: reap them, as a host's
    init would, so a killed daemon leaves no zombie behind. Once per test process."""
    if _REAPING:
        return
    _REAPING.append(True)
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    own = _OWN_CHILDREN

    def reap():
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                time.sleep(0.2)
                continue
            if info is None:
                continue
            with _SPAWN_LOCK:
                mine = info.si_pid in own
            if not mine:
                try:
                    os.waitpid(info.si_pid, 0)
                except ChildProcessError:
                    pass
            else:
                time.sleep(0.05)

    threading.Thread(target=reap, daemon=True).start()


_OWN_CHILDREN = set()
# Held while a child is started and registered, so the reaper cannot take a child that exits
# at once for an orphan (its exit code would be lost).
_SPAWN_LOCK = threading.Lock()


def spawn(*args, **kwargs):
    """subprocess.Popen for a child whose exit status the test needs: the reaper leaves it
    alone. Call forget() once it has been waited for."""
    with _SPAWN_LOCK:
        proc = subprocess.Popen(*args, **kwargs)
        _OWN_CHILDREN.add(proc.pid)
    return proc


def forget(proc):
    with _SPAWN_LOCK:
        _OWN_CHILDREN.discard(proc.pid)


def run(args, check=False, input=None, timeout=None, **kwargs):
    """subprocess.run whose exit status survives the reaper (see spawn)."""
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = spawn(args, stdin=subprocess.PIPE if input is not None else kwargs.pop("stdin", None),
                 **kwargs)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        forget(proc)
    result = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    out = tmp_path_factory.mktemp("proto")
    files = [
        "coreweave/sandbox/v1/sandbox.proto",
        "coreweave/sandbox/v1/discovery.proto",
        "sbx/v1/sbx.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ]
    run(
        ["protoc", f"--proto_path={ROOT / 'api/proto'}", "--proto_path=/usr/include",
         f"--python_out={out}", f"--grpc_python_out={out}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", *files],
        check=True)
    # Implicit namespace packages: no __init__.py, so the generated google/rpc joins Debian's
    # google.protobuf instead of shadowing it.
    sys.path.insert(0, str(out))
    import grpc  # noqa: F401
    from coreweave.sandbox.v1 import discovery_pb2, discovery_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc
    from google.rpc import error_details_pb2, status_pb2
    from sbx.v1 import sbx_pb2, sbx_pb2_grpc

    class P:
        pass

    p = P()
    p.pb = sandbox_pb2
    p.grpc = sandbox_pb2_grpc
    p.discovery = discovery_pb2
    p.discovery_grpc = discovery_pb2_grpc
    p.sbx = sbx_pb2
    p.sbx_grpc = sbx_pb2_grpc
    p.status = status_pb2
    p.details = error_details_pb2
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A running sbxd: start, kill -9, restart on the same state. `overrides` replaces fields of
    the configuration; `nofile` starts sbxd with that descriptor limit."""

    def __init__(self, bin_dir, state, registry, overrides=None, nofile=None):
        self.bin_dir = Path(bin_dir)
        self.state = Path(state)
        self.registry = registry
        self.tcp_port = free_port()
        self.metrics_port = free_port()
        self.proc = None
        self.nofile = nofile
        self.config = self.state / "sbxd.json"
        self.cgroup_parent = "sbx-e2e-" + uuid.uuid4().hex[:8]
        # Host ids of its own, as every daemon on a host needs (docs/configuration.md#host-ids):
        # 257 ranges (the layers' and 256 sandboxes') from a random block of them.
        self.id_base = (1 + random.randrange(250)) * 257 * 65536
        config = {
            "state_dir": str(self.state / "lib"),
            "run_dir": str(self.state / "run"),
            "listen_unix": str(self.state / "run/sbxd.sock"),
            "listen_tcp": f"127.0.0.1:{self.tcp_port}",
            "metrics_listen": f"127.0.0.1:{self.metrics_port}",
            "registry_mirrors": [f"http://{registry}"],
            "insecure_registries": [registry],
            "api_keys": [
                {"key": API_KEY_A, "tenant": "tenant-a"},
                {"key": API_KEY_B, "tenant": "tenant-b", "max_sandboxes": QUOTA_B},
                {"key": API_KEY_OPERATOR, "tenant": "ops", "operator": True},
            ],
            "secrets_dir": str(self.state / "secrets"),
            "writable_layer": "loop",
            "disk_pool_size": 4,
            "default_disk": "1Gi",
            "log_level": "debug",
            "cgroup_parent": self.cgroup_parent,
            "id_map_uid": self.id_base,
            "id_map_gid": self.id_base,
            "id_map_ranges": 256,
        }
        config.update(overrides or {})
        self.config.write_text(json.dumps(config))
        (self.state / "secrets/team").mkdir(parents=True, exist_ok=True)
        (self.state / "secrets/team/HF_TOKEN").write_text("hf-secret-value\n")
        (self.state / "secrets/team/creds").write_text(json.dumps({"password": "pw-123"}))

    @property
    def socket(self):
        return str(self.state / "run/sbxd.sock")

    def start(self, failpoints=None):
        """Starts sbxd and waits until it answers. `failpoints` (names) are armed to crash it
        there (SBX_FAILPOINTS); a start that crashes raises."""
        log = open(self.state / "sbxd.log", "ab")
        command = [str(self.bin_dir / "sbxd"), "--config", str(self.config)]
        if self.nofile:
            command = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *command]
        env = dict(os.environ)
        env.pop("SBX_FAILPOINTS", None)
        # Tests that bound sbxd's memory measure its own: ASan keeps freed blocks in a quarantine
        # of up to 256 MB by default, which would read as growth. 32 MB still catches a use of
        # memory freed recently.
        if env.get("ASAN_OPTIONS") is not None and "quarantine_size_mb" not in env["ASAN_OPTIONS"]:
            env["ASAN_OPTIONS"] += ":quarantine_size_mb=32"
        if failpoints:
            env["SBX_FAILPOINTS"] = ",".join(f"{name}=crash" for name in failpoints)
        self.proc = spawn(command, stdout=log, stderr=log, start_new_session=True, env=env)
        deadline = time.monotonic() + 30
        import grpc
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sbxd exited:\n" + (self.state / "sbxd.log").read_text()[-4000:])
            if os.path.exists(self.socket):
                channel = grpc.insecure_channel("unix://" + self.socket)
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    channel.close()
                    return
                except grpc.FutureTimeoutError:
                    channel.close()
            time.sleep(0.05)
        raise RuntimeError("sbxd did not come up")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait_crashed(self, timeout=60):
        """Waits for sbxd to die at an armed failpoint (by SIGKILL, as `kill -9`)."""
        code = self.proc.wait(timeout=timeout)
        assert code == -signal.SIGKILL, f"sbxd exited with {code}, not at its failpoint"

    def leftovers(self, sandbox_ids):
        """What is left on the host of the given sandboxes: cgroups, processes, mounts, files of
        the daemon's state naming them. Empty once they are gone for good."""
        found = []
        ids = set(sandbox_ids)
        for root in Path("/sys/fs/cgroup").iterdir():
            parent = root / self.cgroup_parent
            if parent.is_dir():
                found += [str(p) for p in parent.iterdir() if p.is_dir() and p.name in ids]
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cgroups = (proc / "cgroup").read_text()
            except OSError:
                continue
            found += [f"process {proc.name} in {sid}" for sid in ids if f"/{sid}" in cgroups]
        mounts = Path("/proc/self/mountinfo").read_text()
        found += [f"mount of {sid}" for sid in ids if sid in mounts]
        for path in self.state.rglob("*"):
            found += [str(path) for sid in ids if sid in path.name]
        return found

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def registry():
    addr = os.environ.get("SBX_TEST_REGISTRY")
    if not addr:
        addr = run([str(ROOT / "tools/registry/registry.sh"), "addr"],
                   capture_output=True, text=True, check=True).stdout.strip()
    return addr


@contextlib.contextmanager
def daemon_running(registry, overrides=None, nofile=None, start=True):
    """A Daemon of its own (see Daemon for `overrides` and `nofile`), stopped and removed
    afterwards; not started when `start` is false."""
    bin_dir = os.environ.get("SBX_BIN_DIR")
    if not bin_dir:
        pytest.fail("SBX_BIN_DIR must point at the build's bin directory")
    _become_subreaper()
    d = Daemon(bin_dir, tempfile.mkdtemp(prefix="sbx-e2e-"), registry, overrides=overrides,
               nofile=nofile)
    try:
        if start:
            d.start()
        yield d
    finally:
        d.stop()
        remove_daemon_state(d)


def remove_daemon_state(d):
    """After a daemon's graceful stop: its cgroup parent directories (empty once its sandboxes are
    gone) and its state directory. A daemon a test left dead (killed at a failpoint) leaves its
    network namespaces pinned: they are unmounted first."""
    prefix = str(d.state) + "/"
    pinned = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(prefix)]
    for mount in sorted(pinned, key=len, reverse=True):
        run(["umount", "-l", mount])
    parents = [p for root in Path("/sys/fs/cgroup").iterdir()
               for p in (root / d.cgroup_parent, Path("/sys/fs/cgroup") / d.cgroup_parent)
               if p.is_dir()]
    # Sandboxes outlive a graceful stop (running ones, and ended ones keeping their files): the
    # daemon's state goes with them.
    _kill_cgroups([child for parent in parents for child in parent.iterdir() if child.is_dir()])
    for parent in parents:
        try:
            parent.rmdir()
        except OSError:
            pass
    run(["rm", "-rf", str(d.state)])


def _kill_cgroups(groups, timeout=30):
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        for group in groups:
            try:
                pids = (group / "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        remaining = []
        for group in groups:
            try:
                group.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                remaining.append(group)
        groups = remaining
        if groups:
            time.sleep(0.05)


@pytest.fixture(scope="session")
def daemon(registry, protos):
    with daemon_running(registry) as d:
        yield d


@contextlib.contextmanager
def own_daemon(registry, **overrides):
    """A daemon of the test's own, with `overrides` on top of the harness's configuration;
    stopped and removed afterwards."""
    with daemon_running(registry, overrides=overrides) as d:
        yield d


@pytest.fixture
def stub(daemon, protos):
    import grpc
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    yield protos.grpc.SandboxServiceStub(channel)
    channel.close()


@pytest.fixture
def tcp_stub(daemon, protos):
    """A stub on TCP; call with metadata=auth(KEY)."""
    import grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{daemon.tcp_port}")
    yield protos.grpc.SandboxServiceStub(channel)
    channel.close()


def auth(key):
    return (("authorization", f"Bearer {key}"),)
