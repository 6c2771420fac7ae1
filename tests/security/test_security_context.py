"""A container's security_context is applied or refused, never echoed back unapplied.

Defences (SECURITY.md, "What a sandbox's spec can ask for"): run_as_user and run_as_group choose
the main process's and execs' ids inside the sandbox; read_only_root_filesystem mounts the root
read-only; capabilities_drop removes capabilities from every process the sandbox starts (sbx-init
keeps what it needs to start them); privileged, capabilities_add, allow_privilege_escalation, an
unknown capability, a seccomp profile other than the default and ids outside the sandbox's range
are INVALID_ARGUMENT naming the field.
"""

import time
import uuid

import grpc
import pytest

KEEPALIVE = ["-c", 'trap "exit 0" TERM INT; sleep 100000 & wait']


def create(stub, pb, **security):
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    c = req.sandbox.spec.containers.add(name="main", image="busybox:1.36", command="/bin/sh")
    c.args.extend(KEEPALIVE)
    sc = c.security_context
    for key, value in security.items():
        if isinstance(value, list):
            getattr(sc, key).extend(value)
        else:
            setattr(sc, key, value)
    return stub.CreateSandbox(req, timeout=120)


def running(stub, pb, **security):
    sb = create(stub, pb, **security)
    deadline = time.monotonic() + 60
    while sb.status.state != pb.STATE_RUNNING:
        assert sb.status.state in (pb.STATE_PENDING, pb.STATE_CREATING), sb.status.state_reason
        assert time.monotonic() < deadline, sb.status
        time.sleep(0.05)
        sb = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id), timeout=30)
    return sb.sandbox_id


def sh(stub, pb, sid, script):
    got = stub.Exec(pb.ExecRequest(sandbox_id=sid, command=["/bin/sh", "-c", script]), timeout=60)
    return got.exit_code, got.stdout.decode(), got.stderr.decode()


def delete(stub, pb, sid):
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid), timeout=60)


def main_ids(stub, pb, sid):
    # The main process's child (its `sleep`) has the main process's credentials; RUNNING means the
    # main process started, not yet its child.
    code, out, err = sh(stub, pb, sid,
                        "until p=$(pidof sleep); do :; done; "
                        "grep -E '^(Uid|Gid|CapEff|CapBnd):' /proc/$p/status")
    assert code == 0, err
    return dict(line.split(":\t", 1) for line in out.strip().splitlines())


def test_run_as_user_and_group_choose_the_ids_of_main_and_execs(stub, protos):
    pb = protos.pb
    sid = running(stub, pb, run_as_user=1234, run_as_group=2345)
    try:
        ids = main_ids(stub, pb, sid)
        assert ids["Uid"].split()[0] == "1234"
        assert ids["Gid"].split()[0] == "2345"
        code, out, _ = sh(stub, pb, sid, "id -u; id -g")
        assert code == 0
        assert out.split() == ["1234", "2345"]
        # Nothing of root's: the process cannot write where only root may.
        code, _, _ = sh(stub, pb, sid, "touch /etc/owned")
        assert code != 0
    finally:
        delete(stub, pb, sid)


def test_a_read_only_root_refuses_writes_but_tmp_stays_writable(stub, protos):
    pb = protos.pb
    sid = running(stub, pb, read_only_root_filesystem=True)
    try:
        code, _, err = sh(stub, pb, sid, "echo x > /root-file")
        assert code != 0
        assert "Read-only file system" in err
        code, _, err = sh(stub, pb, sid, "echo x > /tmp/scratch && cat /tmp/scratch")
        assert code == 0, err
    finally:
        delete(stub, pb, sid)


def test_dropped_capabilities_are_gone_from_every_process(stub, protos):
    pb = protos.pb
    sid = running(stub, pb, capabilities_drop=["CHOWN", "cap_fowner"])
    try:
        code, _, err = sh(stub, pb, sid, "touch /tmp/f && chown 1000 /tmp/f")
        assert code != 0
        assert "Operation not permitted" in err
        ids = main_ids(stub, pb, sid)
        bounding = int(ids["CapBnd"], 16)
        assert not bounding & (1 << 0)  # CAP_CHOWN
        assert not bounding & (1 << 3)  # CAP_FOWNER
        assert bounding & (1 << 1)  # CAP_DAC_OVERRIDE stays
    finally:
        delete(stub, pb, sid)


def test_dropping_all_with_a_user_still_starts(stub, protos):
    """The hardened pod spec most users write: no capability at all, an unprivileged user."""
    pb = protos.pb
    sid = running(stub, pb, capabilities_drop=["ALL"], run_as_user=1000, run_as_group=1000)
    try:
        ids = main_ids(stub, pb, sid)
        assert int(ids["CapBnd"], 16) == 0
        assert int(ids["CapEff"], 16) == 0
        code, out, _ = sh(stub, pb, sid, "id -u")
        assert (code, out.strip()) == (0, "1000")
    finally:
        delete(stub, pb, sid)


@pytest.mark.parametrize("security,field", [
    (dict(privileged=True), "privileged"),
    (dict(capabilities_add=["SYS_ADMIN"]), "capabilities_add"),
    (dict(allow_privilege_escalation=True), "allow_privilege_escalation"),
    (dict(capabilities_drop=["NOT_A_CAP"]), "capabilities_drop[0]"),
    (dict(seccomp_profile="Unconfined"), "seccomp_profile"),
    (dict(run_as_user=70000), "run_as_user"),
    (dict(run_as_group=4294967295), "run_as_group"),
])
def test_what_cannot_be_honoured_is_refused_naming_the_field(stub, protos, security, field):
    pb = protos.pb
    with pytest.raises(grpc.RpcError) as e:
        create(stub, pb, **security)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "security_context." + field in e.value.details()


def test_the_default_profile_and_no_escalation_are_accepted(stub, protos):
    pb = protos.pb
    sid = running(stub, pb, seccomp_profile="RuntimeDefault", allow_privilege_escalation=False)
    try:
        code, out, _ = sh(stub, pb, sid, "grep NoNewPrivs /proc/self/status")
        assert code == 0
        assert out.split()[-1] == "1"
    finally:
        delete(stub, pb, sid)
