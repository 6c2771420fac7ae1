"""Attacks on what the kernel keeps apart: host user ids, per-user kernel counters, the OOM killer's
choice, devices, and the root filesystem's inode numbers, played from inside sandboxes of a real
sbxd (SECURITY.md, "Kernel-level isolation")."""

import ctypes
import json
import os
import stat
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import Daemon, _become_subreaper

BUSYBOX = "busybox:latest"
PYTHON = "python:3.11"
KEEPALIVE = ["-c", 'trap "exit 0" TERM INT; sleep 100000 & wait']


def create(stub, pb, image=BUSYBOX, command="/bin/sh", args=KEEPALIVE, memory=""):
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image=image, command=command)
    c.args.extend(args)
    if memory:
        c.resources.memory = memory
    sb = stub.CreateSandbox(req, timeout=120)
    deadline = time.monotonic() + 120  # the first create of an image pulls it
    while sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING):
        assert time.monotonic() < deadline, f"{sb.sandbox_id} did not start"
        time.sleep(0.05)
        sb = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id))
    assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
    return sb.sandbox_id


def stop(stub, pb, sid):
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=0))
    deadline = time.monotonic() + 60
    while stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).status.state not in (
            pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED):
        assert time.monotonic() < deadline, f"{sid} did not stop"
        time.sleep(0.05)


def sh(stub, pb, sid, script):
    r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["sh", "-c", script]), timeout=60)
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


def host_range(stub, pb, sid):
    """(first host uid, first host gid, size) of the sandbox's user namespace."""
    code, out, err = sh(stub, pb, sid, "cat /proc/self/uid_map /proc/self/gid_map")
    assert code == 0, err
    (u_inside, uid, size), (g_inside, gid, gsize) = [line.split() for line in out.splitlines()]
    assert u_inside == g_inside == "0" and size == gsize
    return int(uid), int(gid), int(size)


def overlaps(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] or a[1] < b[1] + b[2] and b[1] < a[1] + a[2]


def init_pid(daemon, sid):
    state = json.loads((daemon.state / "run/sandboxes" / sid / "state.json").read_text())
    return state["init_pid"]


def layers_range(daemon):
    config = json.loads(daemon.config.read_text())
    return (config.get("id_map_uid", 1000000), config.get("id_map_gid", 1000000),
            config.get("id_map_size", 65536))


def wait_for_file(stub, pb, sid, path, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        code, out, _ = sh(stub, pb, sid, f"cat {path} 2>/dev/null")
        if code == 0 and out:
            return out
        assert time.monotonic() < deadline, f"{path} never appeared in {sid}"
        time.sleep(0.1)


def test_each_sandbox_owns_host_ids_no_other_sandbox_has(daemon, stub, protos):
    """A process that ever got out as one sandbox's root would own nothing of another's: no two
    live sandboxes share a host uid or gid, none has the image layers' ids, and what a sandbox's
    root makes belongs to its own range on the host."""
    pb = protos.pb
    a, b = create(stub, pb), create(stub, pb)
    ra, rb = host_range(stub, pb, a), host_range(stub, pb, b)
    assert not overlaps(ra, rb), (ra, rb)
    layers = layers_range(daemon)
    assert not overlaps(ra, layers) and not overlaps(rb, layers), (ra, rb, layers)
    code, _, err = sh(stub, pb, a, "echo mine > /tmp/mine && echo more >> /etc/group")
    assert code == 0, err
    for path in ("/tmp/mine", "/etc/group"):
        st = os.lstat(f"/proc/{init_pid(daemon, a)}/root{path}")
        assert (st.st_uid, st.st_gid) == (ra[0], ra[1]), path
        assert not rb[0] <= st.st_uid < rb[0] + rb[2]
    # Inside, the image's files are root's, as in any container.
    code, out, _ = sh(stub, pb, b, "stat -c %u:%g /bin /etc/passwd")
    assert out == "0:0\n0:0\n"
    stop(stub, pb, a)
    stop(stub, pb, b)


def metric(daemon, key):
    text = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_prepared_sandbox_has_a_range_of_its_own(daemon, stub, protos):
    """Sandboxes made ahead of time (warm) get their own range too, and keep it when claimed."""
    pb = protos.pb
    image = "busybox:1.36"
    first = create(stub, pb, image=image)
    deadline = time.monotonic() + 60
    while metric(daemon, f'sbx_warm_sandboxes{{image="{image}"}}') < 1:
        assert time.monotonic() < deadline, "no sandbox was prepared ahead of time"
        time.sleep(0.05)
    hits = metric(daemon, 'sbx_warm_claims_total{result="hit"}')
    claimed = create(stub, pb, image=image)
    assert metric(daemon, 'sbx_warm_claims_total{result="hit"}') == hits + 1
    r_first, r_claimed = host_range(stub, pb, first), host_range(stub, pb, claimed)
    assert not overlaps(r_first, r_claimed), (r_first, r_claimed)
    stop(stub, pb, first)
    stop(stub, pb, claimed)


@pytest.fixture
def own_daemon(registry, protos, tmp_path_factory):
    """A daemon of this test's own, without warm sandboxes (so that ranges are given in order) and
    without networks (which the test does not need)."""
    bin_dir = os.environ["SBX_BIN_DIR"]
    _become_subreaper()
    d = Daemon(bin_dir, tmp_path_factory.mktemp("sbx-ids-"), registry)
    config = json.loads(d.config.read_text())
    config["warm_pool_size"] = 0
    config["network"] = "none"
    d.config.write_text(json.dumps(config))
    d.start()
    yield d
    d.stop()


def test_ranges_stay_taken_across_a_restart_and_are_freed_at_the_end(own_daemon, protos):
    """sbxd restarts while sandboxes run: a sandbox created after the restart gets a range no
    running sandbox holds; a range comes free once its sandbox has ended."""
    pb = protos.pb
    channel = grpc.insecure_channel("unix://" + own_daemon.socket)
    stub = protos.grpc.SandboxServiceStub(channel)
    a = create(stub, pb)
    ra = host_range(stub, pb, a)
    channel.close()
    own_daemon.kill9()
    own_daemon.start()
    channel = grpc.insecure_channel("unix://" + own_daemon.socket)
    stub = protos.grpc.SandboxServiceStub(channel)
    b = create(stub, pb)
    rb = host_range(stub, pb, b)
    assert not overlaps(ra, rb), (ra, rb)
    assert host_range(stub, pb, a) == ra
    stop(stub, pb, a)
    c = create(stub, pb)
    assert host_range(stub, pb, c) == ra  # the lowest free range is given first
    for sid in (b, c):
        stop(stub, pb, sid)
    channel.close()


INOTIFY_HOG = """
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
held = 0
while libc.inotify_init1(0) >= 0:
    held += 1
open("/tmp/held.tmp", "w").write(f"{held} {ctypes.get_errno()}")
import os
os.rename("/tmp/held.tmp", "/tmp/held")
time.sleep(100000)
"""

INOTIFY_ONE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.inotify_init1(0) >= 0 else ctypes.get_errno())
"""


def test_inotify_exhaustion_stays_in_its_sandbox(daemon, stub, protos):
    """The kernel charges inotify instances per user. A sandbox that takes every one it may have
    must leave host root and other sandboxes theirs: the sandbox's user namespace belongs to its
    own host user, not to root."""
    pb = protos.pb
    hog = create(stub, pb, image=PYTHON, command="python3", args=["-c", INOTIFY_HOG])
    try:
        other = create(stub, pb, image=PYTHON)
        held, errno = wait_for_file(stub, pb, hog, "/tmp/held").split()
        assert int(errno) == 24, "stopped by EMFILE"  # EMFILE
        assert int(held) > 0
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(0)
        assert fd >= 0, f"host root got no inotify instance: errno {ctypes.get_errno()}"
        os.close(fd)
        r = stub.Exec(pb.ExecRequest(sandbox_id=other, command=["python3", "-c", INOTIFY_ONE]),
                      timeout=60)
        assert r.exit_code == 0, f"the other sandbox got no inotify instance: errno {r.exit_code}"
        stop(stub, pb, other)
    finally:
        stop(stub, pb, hog)  # what it holds is host root's on a kernel without the defence


def test_processes_start_with_tight_defaults(daemon, stub, protos):
    """Files come out 644/755 (umask 022); nothing is inheritable across exec; a sandbox's
    processes are the OOM killer's first victims (oom_score_adj 1000) and sbx-init is not."""
    pb = protos.pb
    sid = create(stub, pb, args=["-c", "{ umask; grep CapInh /proc/self/status; "
                                       "cat /proc/self/oom_score_adj; } > /tmp/main.tmp; "
                                       "mv /tmp/main.tmp /tmp/main; sleep 100000"])
    main = wait_for_file(stub, pb, sid, "/tmp/main")
    assert main == "0022\nCapInh:\t0000000000000000\n1000\n", main
    code, out, err = sh(stub, pb, sid, "umask; grep CapInh /proc/self/status; "
                                       "cat /proc/self/oom_score_adj; touch /tmp/f; mkdir /tmp/d; "
                                       "stat -c %a /tmp/f /tmp/d")
    assert code == 0, err
    assert out == "0022\nCapInh:\t0000000000000000\n1000\n644\n755\n", out
    init_score = int(Path(f"/proc/{init_pid(daemon, sid)}/oom_score_adj").read_text())
    assert init_score <= int(Path(f"/proc/{daemon.proc.pid}/oom_score_adj").read_text())
    stop(stub, pb, sid)


def has_capability(pid, cap):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << cap))
    return False


CAP_SYS_RESOURCE = 24


def test_sandbox_processes_cannot_lower_their_oom_score(daemon, stub, protos):
    """A sandbox's process cannot make itself less likely than the host's processes to be killed
    under memory pressure: 1000 is the floor of its score. sbx-init, which reports an OOM kill, and
    sbxd with its runtime helpers are the kernel's last victims."""
    if not has_capability(daemon.proc.pid, CAP_SYS_RESOURCE):
        pytest.skip("sbxd runs without CAP_SYS_RESOURCE here: it can lower no score, set no floor")
    pb = protos.pb
    sid = create(stub, pb)
    for lower in ("echo -1000 > /proc/self/oom_score_adj", "echo 0 > /proc/self/oom_score_adj",
                  "echo -17 > /proc/self/oom_adj"):
        code, out, _ = sh(stub, pb, sid, f"{lower} && cat /proc/self/oom_score_adj")
        assert code != 0, f"{lower}: {out}"
    init_score = int(Path(f"/proc/{init_pid(daemon, sid)}/oom_score_adj").read_text())
    assert -1000 < init_score < -900
    sbxd = daemon.proc.pid
    assert int(Path(f"/proc/{sbxd}/oom_score_adj").read_text()) == -999
    helpers = []
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(sbxd) and fields.get("Name") == "sbx-runtime":
            helpers.append(proc.name)
    assert helpers, "no runtime helper of this sbxd"
    for pid in helpers:
        assert int(Path(f"/proc/{pid}/oom_score_adj").read_text()) == -999
    stop(stub, pb, sid)


INODES = """
import os, sys
os.makedirs("/tmp/d/sub")
open("/tmp/d/f", "w").write("x")
os.link("/tmp/d/f", "/tmp/d/hard")
open("/etc/hostname-copy", "w").write("x")
with open("/etc/profile", "a") as f:
    f.write("# copied up\\n")
bad = []
for d in ("/", "/etc", "/usr", "/usr/bin", "/tmp", "/tmp/d", "/root"):
    for e in os.scandir(d):
        if e.is_dir(follow_symlinks=False) and os.path.ismount(e.path):
            continue  # /proc, /dev, /sys: the entry names the directory under the mount
        st = os.stat(e.path, follow_symlinks=False)
        if e.inode() != st.st_ino:
            bad.append(f"{e.path} d_ino={e.inode()} st_ino={st.st_ino}")
devices = {os.stat(p).st_dev for p in ("/", "/usr/bin/python3", "/tmp/d/f", "/etc/profile")}
print("\\n".join(bad) or f"ok {len(devices)}")
"""


def test_readdir_and_stat_agree_on_inode_numbers(daemon, stub, protos):
    """CPython's os.scandir, find -inum, du, rsync -H and hard-link detection compare readdir's
    d_ino with stat's st_ino: they agree on files and directories of the image, of the writable
    layer and copied up from one to the other, and the whole root is one device."""
    pb = protos.pb
    sid = create(stub, pb, image=PYTHON)
    r = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["python3", "-c", INODES]), timeout=60)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode() == "ok 1\n", r.stdout.decode()
    stop(stub, pb, sid)


def cgroup_v1_devices():
    return os.path.isdir("/sys/fs/cgroup/devices") and os.path.exists(
        "/sys/fs/cgroup/devices/devices.list")


@pytest.mark.skipif(not cgroup_v1_devices(), reason="the devices controller of cgroup v1")
def test_a_device_outside_the_allowlist_cannot_be_opened(daemon, stub, protos):
    """A device node that is not one of the sandbox's own is refused by the devices controller,
    even when it appears in the sandbox's /dev (here planted from the host)."""
    pb = protos.pb
    sid = create(stub, pb)
    planted = f"/proc/{init_pid(daemon, sid)}/root/dev/planted"
    os.mknod(planted, stat.S_IFCHR | 0o666, os.stat("/dev/loop-control").st_rdev)
    os.chmod(planted, 0o666)
    code, out, err = sh(stub, pb, sid, "exec 3<>/dev/planted && echo opened")
    assert code != 0 and "opened" not in out, out
    assert "not permitted" in err.lower() or "denied" in err.lower(), err
    code, out, _ = sh(stub, pb, sid, "exec 3<>/dev/null && echo opened")
    assert out == "opened\n"
    devices = Path(f"/sys/fs/cgroup/devices/{daemon.cgroup_parent}/{sid}")
    assert devices.is_dir()
    stop(stub, pb, sid)
    assert not devices.exists()
