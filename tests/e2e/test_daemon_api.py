"""sbxd end to end through its gRPC API (coreweave.sandbox.v1 and sbx.v1): every RPC and its
errors, the lifecycle, tenancy, persistence across a kill -9, and a burst of concurrent creates.
Raw gRPC, so these tests check the wire contract itself."""

import concurrent.futures
import io
import json
import os
import signal
import tarfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest

from conftest import API_KEY_A, API_KEY_B, QUOTA_B, auth, own_daemon

BUSYBOX = "busybox:latest"
PYTHON = "python:3.11"


def spec(pb, image=BUSYBOX, command="", args=(), tags=(), lifetime=0, env=None, **container):
    s = pb.SandboxSpec()
    c = s.containers.add(name="main", image=image, command=command)
    c.args.extend(args)
    for k, v in (env or {}).items():
        c.environment_variables[k] = v
    for k, v in container.items():
        if k == "memory":
            c.resources.memory = v
        elif k == "cpu":
            c.resources.cpu = v
        elif k == "files":
            for path, content in v:
                c.files.add(path=path, content=content)
        elif k == "working_dir":
            c.working_dir = v
        else:
            raise KeyError(k)
    s.tags.extend(tags)
    s.max_lifetime_seconds = lifetime
    return s


def create(stub, pb, metadata=None, request_id="", **kw):
    req = pb.CreateSandboxRequest(request_id=request_id or str(uuid.uuid4()))
    req.sandbox.spec.CopyFrom(spec(pb, **kw))
    return stub.CreateSandbox(req, metadata=metadata, timeout=120)


def keepalive(pb, **kw):
    return dict(command="/bin/sh", args=["-c", 'trap "exit 0" TERM INT; sleep 100000 & wait'], **kw)


def wait_state(stub, pb, sid, states, timeout=60, metadata=None):
    deadline = time.monotonic() + timeout
    while True:
        sb = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid), metadata=metadata)
        if sb.status.state in states:
            return sb
        assert time.monotonic() < deadline, f"{sid} stuck in {pb.State.Name(sb.status.state)}"
        time.sleep(0.05)


def terminal(pb):
    return (pb.STATE_COMPLETED, pb.STATE_FAILED, pb.STATE_TERMINATED)


def error_info(protos, err):
    """(reason, metadata, field violations) from an AIP-193 error."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = protos.status.Status.FromString(value)
            reason, metadata, fields = None, {}, []
            for detail in status.details:
                if detail.Is(protos.details.ErrorInfo.DESCRIPTOR):
                    info = protos.details.ErrorInfo()
                    detail.Unpack(info)
                    assert info.domain == "cwsandbox.com"
                    reason, metadata = info.reason, dict(info.metadata)
                if detail.Is(protos.details.BadRequest.DESCRIPTOR):
                    bad = protos.details.BadRequest()
                    detail.Unpack(bad)
                    fields = [v.field for v in bad.field_violations]
            return reason, metadata, fields
    return None, {}, []


def exec_unary(stub, pb, sid, command, **kw):
    return stub.Exec(pb.ExecRequest(sandbox_id=sid, command=command, **kw), timeout=60)


def metrics_text(daemon):
    return urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics").read().decode()


def stop(stub, pb, sid, grace=0):
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, grace_period_seconds=grace))
    return wait_state(stub, pb, sid, terminal(pb))


# ---------------------------------------------------------------------------------------------
# Lifecycle


def test_create_exec_stop(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb, tags=["e2e", "basic"]))
    assert sb.sandbox_id
    # The create waits for the sandbox to run, so no polling is needed.
    assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
    assert sb.status.runner_id
    assert sb.status.effective_resource_requirements.limits.cpu == "2"
    assert sb.status.effective_resource_requirements.limits.memory == "2Gi"
    assert list(sb.spec.tags) == ["e2e", "basic"]
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    done = stop(stub, pb, sb.sandbox_id, grace=5)
    assert done.status.state == pb.STATE_TERMINATED
    assert done.status.state_reason.startswith("USER_STOPPED")
    # The keep-alive traps TERM and exits 0 within the grace period.
    assert done.status.exit_code == 0


def test_python_image_runs_python(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, image=PYTHON, **{k: v for k, v in keepalive(pb).items()})
    r = exec_unary(stub, pb, sb.sandbox_id, ["python", "--version"])
    assert r.exit_code == 0
    assert (r.stdout + r.stderr).startswith(b"Python 3.11")
    stop(stub, pb, sb.sandbox_id)


@pytest.mark.parametrize("script,state,code,reason", [
    ("echo hi; exit 0", "STATE_COMPLETED", 0, "EXITED"),
    ("exit 7", "STATE_FAILED", 7, "EXITED"),
    ("kill -KILL $$", "STATE_FAILED", 137, "EXITED"),
])
def test_main_command_outcomes(stub, protos, script, state, code, reason):
    pb = protos.pb
    sb = create(stub, pb, command="/bin/sh", args=["-c", script])
    done = wait_state(stub, pb, sb.sandbox_id, terminal(pb))
    assert done.status.state == getattr(pb, state), done.status.state_reason
    assert done.status.HasField("exit_code")
    assert done.status.exit_code == code
    assert done.status.state_reason.startswith(reason)
    assert done.status.end_time.seconds > 0


def test_oom_killed_main(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, image=PYTHON, command="python",
                args=["-c", "x = bytearray(512 * 1024 * 1024); print(len(x))"], memory="128Mi")
    done = wait_state(stub, pb, sb.sandbox_id, terminal(pb))
    assert done.status.state == pb.STATE_FAILED
    assert done.status.state_reason.startswith("OOM_KILLED"), done.status.state_reason
    assert done.status.exit_code == 137


def test_image_default_command_and_env(stub, protos):
    pb = protos.pb
    # No command: the image's Cmd (busybox: sh) runs; with stdin at /dev/null it exits 0.
    sb = create(stub, pb, env={"GREETING": "hello"})
    done = wait_state(stub, pb, sb.sandbox_id, terminal(pb))
    assert done.status.state == pb.STATE_COMPLETED
    sb = create(stub, pb, **keepalive(pb, env={"GREETING": "hello"}))
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "echo $GREETING; echo $EXTRA"],
                   env={"EXTRA": "x"})
    assert r.stdout == b"hello\nx\n"
    stop(stub, pb, sb.sandbox_id)


def test_lifetime_expiry(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, command="sleep", args=["100000"], lifetime=2)
    assert sb.status.effective_max_lifetime_seconds == 2
    done = wait_state(stub, pb, sb.sandbox_id, terminal(pb), timeout=30)
    assert done.status.state == pb.STATE_TERMINATED
    assert done.status.state_reason.startswith("LIFETIME_EXCEEDED")


def test_idempotent_create(stub, protos):
    pb = protos.pb
    rid = str(uuid.uuid4())
    a = create(stub, pb, request_id=rid, **keepalive(pb))
    b = create(stub, pb, request_id=rid, **keepalive(pb))
    assert a.sandbox_id == b.sandbox_id
    stop(stub, pb, a.sandbox_id)


def test_mounted_files_and_working_dir(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb, files=[("/app/train.py", b"print('hi')\n"),
                                                  ("notes.txt", b"relative")],
                                       working_dir="/app"))
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "pwd; cat train.py; cat notes.txt"])
    assert r.stdout == b"/app\nprint('hi')\nrelative"
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "echo x > /app/train.py"])
    assert r.exit_code != 0  # read-only
    stop(stub, pb, sb.sandbox_id)


def test_secrets_are_injected_and_never_echoed(stub, protos, daemon):
    pb = protos.pb
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    req.sandbox.spec.CopyFrom(spec(pb, **keepalive(pb)))
    store = req.sandbox.spec.containers[0].secret_stores.add(store_name="team")
    store.secrets.add(path="HF_TOKEN", env_var="HF_TOKEN")
    store.secrets.add(path="creds", field="password", env_var="DB_PASSWORD")
    sb = stub.CreateSandbox(req, timeout=60)
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "echo $HF_TOKEN $DB_PASSWORD"])
    assert r.stdout == b"hf-secret-value pw-123\n"
    got = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sb.sandbox_id))
    assert b"hf-secret-value" not in got.SerializeToString()
    assert b"hf-secret-value" not in (daemon.state / "sbxd.log").read_bytes()
    stop(stub, pb, sb.sandbox_id)
    # A missing secret fails the create, naming it.
    missing = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    missing.sandbox.spec.CopyFrom(spec(pb, **keepalive(pb)))
    missing.sandbox.spec.containers[0].secret_stores.add(store_name="team").secrets.add(
        path="NOPE", env_var="X")
    with pytest.raises(grpc.RpcError) as e:
        stub.CreateSandbox(missing)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NOPE" in e.value.details()


# ---------------------------------------------------------------------------------------------
# Errors


def test_unknown_sandbox(stub, protos):
    pb = protos.pb
    for call, req in [
        (stub.GetSandbox, pb.GetSandboxRequest(sandbox_id="sb-nope")),
        (stub.DeleteSandbox, pb.DeleteSandboxRequest(sandbox_id="sb-nope")),
        (stub.Exec, pb.ExecRequest(sandbox_id="sb-nope", command=["true"])),
        (stub.ReadFile, pb.ReadFileRequest(sandbox_id="sb-nope", path="/x")),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            call(req)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        reason, metadata, _ = error_info(protos, e.value)
        assert reason == "CWSANDBOX_SANDBOX_NOT_FOUND"
        assert metadata.get("sandbox_id") == "sb-nope"
    # allow_missing makes delete a no-op.
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="sb-nope", allow_missing=True))


def test_deleting_a_deleted_sandbox_says_so(stub, protos):
    pb = protos.pb
    sid = create(stub, pb, **keepalive(pb)).sandbox_id
    first = pb.DeleteSandboxRequest(sandbox_id=sid, request_id="delete-1")
    stub.DeleteSandbox(first)
    # A retry of the same delete is the same delete.
    assert stub.DeleteSandbox(first).sandbox.sandbox_id == sid
    wait_state(stub, pb, sid, terminal(pb))
    with pytest.raises(grpc.RpcError) as e:
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "already deleted" in e.value.details()
    reason, metadata, _ = error_info(protos, e.value)
    assert reason == "CWSANDBOX_SANDBOX_NOT_FOUND" and metadata.get("sandbox_id") == sid
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid, allow_missing=True))
    # Its record stays readable; deleting one that ended on its own is its first delete.
    assert stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).sandbox_id == sid
    done = create(stub, pb, command="/bin/true").sandbox_id
    wait_state(stub, pb, done, terminal(pb))
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=done))
    with pytest.raises(grpc.RpcError) as e:
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=done))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_requests_name_the_field(stub, protos):
    pb = protos.pb
    cases = [
        (dict(image="Not A/Valid::Ref"), "sandbox.spec.containers[0].image"),
        (dict(memory="lots"), "sandbox.spec.containers[0].resources.memory"),
        (dict(cpu="-1"), "sandbox.spec.containers[0].resources.cpu"),
        (dict(tags=[""]), "sandbox.spec.tags[0]"),
        (dict(tags=["x" * 300]), "sandbox.spec.tags[0]"),
        (dict(lifetime=-5), "sandbox.spec.max_lifetime_seconds"),
        (dict(lifetime=10 ** 8), "sandbox.spec.max_lifetime_seconds"),
    ]
    for kw, field in cases:
        with pytest.raises(grpc.RpcError) as e:
            create(stub, pb, **kw)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
        reason, _, fields = error_info(protos, e.value)
        assert reason == "CWSANDBOX_INVALID_REQUEST"
        assert fields == [field], (kw, fields)


def test_missing_image_fails_the_sandbox(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, image="library/does-not-exist:1.0")
    done = wait_state(stub, pb, sb.sandbox_id, terminal(pb))
    assert done.status.state == pb.STATE_FAILED
    assert done.status.state_reason.startswith("IMAGE_PULL_FAILED")
    assert "does-not-exist" in done.status.state_reason


def test_exec_on_a_stopped_sandbox(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    stop(stub, pb, sb.sandbox_id)
    with pytest.raises(grpc.RpcError) as e:
        exec_unary(stub, pb, sb.sandbox_id, ["true"])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "TERMINATED" in e.value.details()


def test_a_command_that_cannot_start_is_its_exit_code(stub, protos):
    """Unary Exec and StreamExec alike: 127 for a missing command, 126 for one that is not
    executable, the reason on stderr; never NOT_FOUND, which reads as a missing sandbox."""
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    sid = wait_state(stub, pb, sb.sandbox_id, (pb.STATE_RUNNING,)).sandbox_id
    for command, code in [(["nosuchcmd"], 127), (["/no/such/cmd"], 127), (["/etc/passwd"], 126)]:
        r = exec_unary(stub, pb, sid, command)
        assert r.exit_code == code, (command, r)
        assert command[0].encode() in r.stderr
        init = pb.ExecStreamRequest(init=pb.ExecStreamInit(sandbox_id=sid, command=command))
        frames = list(stub.StreamExec(iter([init]), timeout=60))
        assert frames[-1].exit.exit_code == code
        stderr = b"".join(f.output.data for f in frames if f.HasField("output"))
        assert command[0].encode() in stderr
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid))


def test_exec_racing_a_delete_reports_the_sandbox_state(stub, protos):
    """An exec whose sandbox is deleted under it says so, instead of a broken connection."""
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    outcome = []

    def run_exec():
        try:
            exec_unary(stub, pb, sb.sandbox_id, ["sleep", "60"])
            outcome.append(None)
        except grpc.RpcError as e:
            outcome.append(e)

    t = threading.Thread(target=run_exec)
    t.start()
    # Delete once the exec runs.
    deadline = time.monotonic() + 30
    while b"sleep 60" not in exec_unary(stub, pb, sb.sandbox_id, ["ps", "-o", "args"]).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sb.sandbox_id, grace_period_seconds=0))
    t.join()
    err = outcome[0]
    assert err is not None
    assert err.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND), err
    assert sb.sandbox_id in err.details()
    if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
        reason, metadata, _ = error_info(protos, err)
        assert reason == "CWSANDBOX_SANDBOX_NOT_RUNNING"
        assert metadata["state"] in ("TERMINATING", "TERMINATED")


def test_a_nul_byte_that_would_reach_a_process_is_refused(stub, protos, daemon):
    """Exec, StreamExec and create refuse a NUL in the command, an env value or a secret, which
    would silently cut the string short where it reaches the process."""
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    for kw, field in [(dict(command=["echo", "a\0b"]), "command[1]"),
                      (dict(command=["true"], env={"A": "x\0y"}), "env")]:
        with pytest.raises(grpc.RpcError) as e:
            exec_unary(stub, pb, sb.sandbox_id, **kw)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
        assert error_info(protos, e.value)[2] == [field]
    init = pb.ExecStreamInit(sandbox_id=sb.sandbox_id, command=["true"], env={"A": "x\0y"})
    with pytest.raises(grpc.RpcError) as e:
        list(stub.StreamExec(iter([pb.ExecStreamRequest(init=init)]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(protos, e.value)[2] == ["init.env"]
    stop(stub, pb, sb.sandbox_id)
    # A secret's value goes into the environment too.
    (daemon.state / "secrets/team/NUL_VALUE").write_bytes(b"x\0y")
    req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
    req.sandbox.spec.CopyFrom(spec(pb, **keepalive(pb)))
    store = req.sandbox.spec.containers[0].secret_stores.add(store_name="team")
    store.secrets.add(path="NUL_VALUE", env_var="X")
    with pytest.raises(grpc.RpcError) as e:
        stub.CreateSandbox(req, timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NUL" in e.value.details()


def test_a_request_that_is_not_valid_utf8_is_invalid_argument(daemon, stub, protos):
    """gRPC cannot parse a string field that is not UTF-8; the caller hears INVALID_ARGUMENT
    naming the method, not a bare INTERNAL."""
    pb = protos.pb
    raw = pb.ExecRequest(sandbox_id="sb-X", command=["true"]).SerializeToString()
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    for method, body in [("/coreweave.sandbox.v1.SandboxService/Exec", raw),
                         ("/coreweave.sandbox.v1.SandboxService/GetSandbox",
                          pb.GetSandboxRequest(sandbox_id="sb-X").SerializeToString()),
                         ("/coreweave.sandbox.v1.SandboxService/StreamLogs",
                          pb.StreamLogsRequest(sandbox_id="sb-X").SerializeToString())]:
        bad = body.replace(b"sb-X", b"sb-\xff")
        if method.endswith("StreamLogs"):
            call = channel.unary_stream(method, request_serializer=None,
                                        response_deserializer=None)
            invoke = lambda: list(call(bad, timeout=30))  # noqa: E731
        else:
            call = channel.unary_unary(method, request_serializer=None,
                                       response_deserializer=None)
            invoke = lambda: call(bad, timeout=30)  # noqa: E731
        with pytest.raises(grpc.RpcError) as e:
            invoke()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, e.value)
        assert method.rsplit("/", 1)[1] in e.value.details()
        assert error_info(protos, e.value)[0] == "CWSANDBOX_INVALID_REQUEST"
    # A stream whose first message cannot be parsed.
    init = pb.ExecStreamRequest(init=pb.ExecStreamInit(sandbox_id="sb-X", command=["true"]))
    call = channel.stream_stream("/coreweave.sandbox.v1.SandboxService/StreamExec",
                                 request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        list(call(iter([init.SerializeToString().replace(b"sb-X", b"sb-\xff")]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


def test_files(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    sid = sb.sandbox_id
    blob = os.urandom(3 * 1024 * 1024)
    stub.WriteFile(pb.WriteFileRequest(sandbox_id=sid, path="/data/deep/blob.bin", content=blob))
    assert stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path="/data/deep/blob.bin")).content == blob
    stub.WriteFile(pb.WriteFileRequest(sandbox_id=sid, path="/tmp/empty", content=b""))
    assert stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path="/tmp/empty")).content == b""
    for path, reason in [("/nope.txt", "CWSANDBOX_FILE_NOT_FOUND"), ("/tmp", "CWSANDBOX_FILE_IS_DIRECTORY")]:
        with pytest.raises(grpc.RpcError) as e:
            stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path=path))
        got, metadata, _ = error_info(protos, e.value)
        assert got == reason
        assert metadata["filepath"] == path
    big = b"x" * (33 * 1024 * 1024)
    with pytest.raises(grpc.RpcError) as e:
        stub.WriteFile(pb.WriteFileRequest(sandbox_id=sid, path="/big", content=big))
    reason, metadata, _ = error_info(protos, e.value)
    assert reason == "CWSANDBOX_FILE_TOO_LARGE"
    assert int(metadata["max_size_bytes"]) == 32 * 1024 * 1024
    r = exec_unary(stub, pb, sid, ["sh", "-c", "head -c 34000000 /dev/zero > /big"])
    assert r.exit_code == 0
    with pytest.raises(grpc.RpcError) as e:
        stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path="/big"))
    reason, metadata, _ = error_info(protos, e.value)
    assert reason == "CWSANDBOX_FILE_TOO_LARGE"
    assert int(metadata["size_bytes"]) == 34000000
    stop(stub, pb, sid)


JOB = ("mkdir -p /out/sub && echo result > /out/r.txt && echo deep > /out/sub/d.txt && "
       "(sleep 100000 &) && exit 3")


def read_error(stub, pb, sid, path):
    with pytest.raises(grpc.RpcError) as e:
        stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path=path))
    return e.value


def until_no_leftovers(daemon, sid, timeout=60):
    deadline = time.monotonic() + timeout
    while daemon.leftovers([sid]):
        assert time.monotonic() < deadline, daemon.leftovers([sid])
        time.sleep(0.05)


def test_an_ended_sandboxs_files_stay_readable_until_it_is_deleted(daemon, stub, protos):
    """Run the job, then collect its results: the files of a sandbox whose main process ended
    stay readable (ReadFile, GetArchive) with nothing else running in it; exec and writes are
    refused; the delete removes them and leaves nothing behind."""
    pb = protos.pb
    sid = create(stub, pb, command="/bin/sh", args=["-c", JOB]).sandbox_id
    done = wait_state(stub, pb, sid, terminal(pb))
    assert done.status.state == pb.STATE_FAILED and done.status.exit_code == 3
    assert stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path="/out/r.txt")).content == b"result\n"
    archive = protos.sbx_grpc.ArchiveServiceStub(grpc.insecure_channel("unix://" + daemon.socket))
    data = b"".join(c.data for c in archive.GetArchive(
        protos.sbx.GetArchiveRequest(sandbox_id=sid, path="/out"), timeout=60))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("out/sub/d.txt").read() == b"deep\n"
    # Only sbx-init is left, and it can start nothing.
    procs = cgroup_knob(daemon, sid, ("pids", "cgroup.procs"), "cgroup.procs").split()
    assert len(procs) == 1
    assert cgroup_knob(daemon, sid, ("pids", "pids.max"), "pids.max") == "1"
    for call in (lambda: exec_unary(stub, pb, sid, ["true"]),
                 lambda: stub.WriteFile(pb.WriteFileRequest(sandbox_id=sid, path="/x", content=b""))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "its files can still be read until" in e.value.details()
    stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid))
    until_no_leftovers(daemon, sid)
    err = read_error(stub, pb, sid, "/out/r.txt")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "went when it was deleted" in err.details()


def test_kept_files_go_when_their_retention_passes(registry, protos):
    pb = protos.pb
    with own_daemon(registry, files_retention_seconds=1) as d:
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        sid = create(stub, pb, command="/bin/sh", args=["-c", JOB]).sandbox_id
        wait_state(stub, pb, sid, terminal(pb))
        until_no_leftovers(d, sid)
        err = read_error(stub, pb, sid, "/out/r.txt")
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "its files were kept until" in err.details()
        channel.close()


def test_kept_files_outlive_a_daemon_restart(registry, protos):
    pb = protos.pb
    with own_daemon(registry) as d:
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        sid = create(stub, pb, command="/bin/sh", args=["-c", JOB]).sandbox_id
        wait_state(stub, pb, sid, terminal(pb))
        channel.close()
        d.kill9()
        d.start()
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        assert stub.ReadFile(pb.ReadFileRequest(sandbox_id=sid, path="/out/r.txt")).content == b"result\n"
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid))
        until_no_leftovers(d, sid)
        channel.close()


def test_exec_output_truncation(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    r = exec_unary(stub, pb, sb.sandbox_id, ["sh", "-c", "head -c 100000 /dev/zero; echo e >&2"],
                   max_output_bytes=1000)
    assert len(r.stdout) == 1000
    assert r.stdout_truncated and not r.stderr_truncated
    assert r.stdout_bytes_produced == 100000
    assert r.stderr == b"e\n"
    stop(stub, pb, sb.sandbox_id)


# ---------------------------------------------------------------------------------------------
# Streams


def test_stream_exec_with_stdin_and_tty(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    sid = sb.sandbox_id

    def requests():
        yield pb.ExecStreamRequest(init=pb.ExecStreamInit(sandbox_id=sid, command=["sh", "-c", "cat; echo done >&2"]))
        yield pb.ExecStreamRequest(stdin=b"line one\n")
        yield pb.ExecStreamRequest(stdin=b"line two\n")
        yield pb.ExecStreamRequest(close=pb.ExecStreamClose())

    responses = list(stub.StreamExec(requests(), timeout=30))
    assert responses[0].WhichOneof("message") == "ready"
    out = b"".join(r.output.data for r in responses if r.WhichOneof("message") == "output"
                   and r.output.stream == pb.ExecStreamOutput.STREAM_STDOUT)
    err = b"".join(r.output.data for r in responses if r.WhichOneof("message") == "output"
                   and r.output.stream == pb.ExecStreamOutput.STREAM_STDERR)
    assert out == b"line one\nline two\n"
    assert err == b"done\n"
    assert responses[-1].WhichOneof("message") == "exit"
    assert responses[-1].exit.exit_code == 0

    def tty_requests():
        yield pb.ExecStreamRequest(init=pb.ExecStreamInit(
            sandbox_id=sid, command=["sh", "-c", "stty size; read x; stty size"], tty=True,
            tty_width=80, tty_height=24))
        time.sleep(0.3)
        yield pb.ExecStreamRequest(resize=pb.ExecStreamResize(width=132, height=43))
        yield pb.ExecStreamRequest(stdin=b"\n")
        yield pb.ExecStreamRequest(close=pb.ExecStreamClose())

    responses = list(stub.StreamExec(tty_requests(), timeout=30))
    text = b"".join(r.output.data for r in responses if r.WhichOneof("message") == "output")
    assert b"24 80" in text and b"43 132" in text, text
    stop(stub, pb, sid)


def test_stream_exec_cancel_kills_the_process(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, **keepalive(pb))
    sid = sb.sandbox_id
    call = stub.StreamExec(iter([pb.ExecStreamRequest(init=pb.ExecStreamInit(
        sandbox_id=sid, command=["sh", "-c", "echo started; exec sleep 1000"]))]), timeout=30)
    for r in call:
        if r.WhichOneof("message") == "output":
            break
    call.cancel()
    deadline = time.monotonic() + 10
    while True:
        r = exec_unary(stub, pb, sid, ["sh", "-c", "ps -o comm | grep -c '^sleep$' || true"])
        if r.stdout.strip() == b"1":  # only the keep-alive's own sleep remains
            break
        assert time.monotonic() < deadline, r.stdout
        time.sleep(0.1)
    stop(stub, pb, sid)


def test_stream_logs(stub, protos):
    pb = protos.pb
    sb = create(stub, pb, command="/bin/sh", args=["-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1"])
    sid = sb.sandbox_id
    entries = list(stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True), timeout=30))
    text = b"".join(e.data for e in entries)
    assert text == b"line1\nline2\nline3\nline4\nline5\n"
    session = entries[-1].log_session_id
    wait_state(stub, pb, sid, terminal(pb))
    # After the end, the saved output answers: tail, timestamps, resume.
    tail = b"".join(e.data for e in stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, tail_lines=2)))
    assert tail == b"line4\nline5\n"
    stamped = b"".join(e.data for e in stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, timestamps=True)))
    assert stamped.count(b"Z line") == 5
    assert entries[-1].next_log_offset == len(text)
    offset = len(b"line1\nline2\n")
    rest = b"".join(e.data for e in stub.StreamLogs(pb.StreamLogsRequest(
        sandbox_id=sid, resume_log_session_id=session, resume_log_offset=offset)))
    assert rest == b"line3\nline4\nline5\n"
    bad = list(stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, resume_log_session_id="nope")))
    assert bad[-1].error.code == "SESSION_NOT_FOUND"


def test_stamped_logs_are_one_entry_per_line(stub, protos):
    # A line written in pieces is one entry, stamped once; a write of several lines is several
    # entries; an unfinished last line is an entry of its own.
    pb = protos.pb
    script = "printf 'part one, '; sleep 0.2; printf 'part two\\nsecond\\nthird\\n'; printf tail"
    sid = create(stub, pb, command="/bin/sh", args=["-c", script]).sandbox_id
    followed = list(stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True, timestamps=True),
                                    timeout=30))
    wait_state(stub, pb, sid, terminal(pb))
    saved = list(stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, timestamps=True)))
    for entries in (followed, saved):
        lines = [e.data.split(b" ", 1) for e in entries]
        assert [text for _, text in lines] == [b"part one, part two\n", b"second\n", b"third\n",
                                               b"tail"]
        for (stamp, _), entry in zip(lines, entries):
            assert stamp.endswith(b"Z") and stamp.count(b"T") == 1
            assert stamp.decode().startswith(entry.timestamp.ToJsonString()[:19])
        # Each entry's resume offset is the end of its line.
        assert [e.next_log_offset for e in entries] == [19, 26, 32, 36]
    # Without timestamps, the output is as it was written.
    raw = b"".join(e.data for e in stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid)))
    assert raw == b"part one, part two\nsecond\nthird\ntail"


def test_follow_of_a_sandbox_that_ends_at_once_loses_nothing(stub, protos):
    # Main processes end while their follows are being set up, some before the snapshot of the
    # output, some between it and the follow, some during it: every follow must deliver the
    # whole output and no error.
    pb = protos.pb

    def run_and_follow(i):
        sid = create(stub, pb, command="/bin/sh",
                     args=["-c", f"echo begin{i}; sleep 0.0{i % 10}; echo end{i}"]).sandbox_id
        entries = list(stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True), timeout=60))
        errors = [e.error.code for e in entries if e.HasField("error")]
        return b"".join(e.data for e in entries), errors

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run_and_follow, range(24)))
    for i, (text, errors) in enumerate(results):
        assert errors == []
        assert text == f"begin{i}\nend{i}\n".encode()


# ---------------------------------------------------------------------------------------------
# Listing, purge, tenancy


def test_list_filters_and_pagination(stub, protos):
    pb = protos.pb
    tag = "list-" + uuid.uuid4().hex[:8]
    ids = [create(stub, pb, **keepalive(pb, tags=[tag, f"n{i}"])).sandbox_id for i in range(5)]
    listed = stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag]))
    assert [s.sandbox_id for s in listed.sandboxes] == ids
    assert [s.sandbox_id for s in stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag, "n3"])).sandboxes] == [ids[3]]
    page1 = stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag], page_size=2))
    page2 = stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag], page_size=2, page_token=page1.next_page_token))
    page3 = stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag], page_size=2, page_token=page2.next_page_token))
    assert [s.sandbox_id for s in [*page1.sandboxes, *page2.sandboxes, *page3.sandboxes]] == ids
    assert page3.next_page_token == ""
    stop(stub, pb, ids[0])
    assert len(stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag])).sandboxes) == 4
    assert len(stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag], show_terminated=True)).sandboxes) == 5
    terminated = stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag], state=pb.STATE_TERMINATED))
    assert [s.sandbox_id for s in terminated.sandboxes] == [ids[0]]
    dry = stub.PurgeSandboxes(pb.PurgeSandboxesRequest(tags=[tag], dry_run=True))
    assert dry.purge_count == 4
    assert len(stub.ListSandboxes(pb.ListSandboxesRequest(tags=[tag])).sandboxes) == 4
    purged = stub.PurgeSandboxes(pb.PurgeSandboxesRequest(tags=[tag]))
    assert purged.purge_count == 4
    for sid in ids:
        wait_state(stub, pb, sid, terminal(pb))


def test_tenants_are_isolated(tcp_stub, stub, protos):
    pb = protos.pb
    a = create(tcp_stub, pb, metadata=auth(API_KEY_A), **keepalive(pb))
    # Tenant B and the local socket's tenant see nothing of tenant A.
    for s, md in [(tcp_stub, auth(API_KEY_B)), (stub, None)]:
        with pytest.raises(grpc.RpcError) as e:
            s.GetSandbox(pb.GetSandboxRequest(sandbox_id=a.sandbox_id), metadata=md)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            s.Exec(pb.ExecRequest(sandbox_id=a.sandbox_id, command=["true"]), metadata=md)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        listed = s.ListSandboxes(pb.ListSandboxesRequest(), metadata=md)
        assert a.sandbox_id not in [x.sandbox_id for x in listed.sandboxes]
    # The wandb header works too.
    got = tcp_stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=a.sandbox_id),
                              metadata=(("x-wandb-api-key", API_KEY_A),))
    assert got.sandbox_id == a.sandbox_id
    # TCP without a key, or with a wrong one, is refused.
    for md in [None, auth("wrong-key-0000000000000")]:
        with pytest.raises(grpc.RpcError) as e:
            tcp_stub.ListSandboxes(pb.ListSandboxesRequest(), metadata=md)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    tcp_stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=a.sandbox_id), metadata=auth(API_KEY_A))


def test_tenant_quota(tcp_stub, protos):
    pb = protos.pb
    md = auth(API_KEY_B)
    ids = [create(tcp_stub, pb, metadata=md, **keepalive(pb)).sandbox_id for _ in range(QUOTA_B)]
    with pytest.raises(grpc.RpcError) as e:
        create(tcp_stub, pb, metadata=md, **keepalive(pb))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for sid in ids:
        tcp_stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sid), metadata=md)
    for sid in ids:
        wait_state(tcp_stub, pb, sid, terminal(pb), metadata=md)
    create(tcp_stub, pb, metadata=md, **keepalive(pb))  # room again
    tcp_stub.PurgeSandboxes(pb.PurgeSandboxesRequest(purge_all=True), metadata=md)


def test_an_extended_lifetime_keeps_the_sandbox_running(daemon, stub, protos):
    pb = protos.pb
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    lifetimes = protos.sbx_grpc.LifetimeServiceStub(channel)
    sb = create(stub, pb, lifetime=8, **keepalive(pb))
    sid = sb.sandbox_id
    wait_state(stub, pb, sid, [pb.STATE_RUNNING])
    first_expiry = sb.status.create_time.ToNanoseconds() + 8 * 10**9
    extended = lifetimes.ExtendLifetime(protos.sbx.ExtendLifetimeRequest(sandbox_id=sid, seconds=120))
    assert extended.max_lifetime_seconds == 128
    assert extended.expire_time.ToNanoseconds() == first_expiry + 120 * 10**9
    assert stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).status.effective_max_lifetime_seconds == 128
    # Past the first deadline (and sbxd's lifetime grace) it still runs.
    while time.time_ns() < first_expiry + 3 * 10**9:
        assert stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid)).status.state == pb.STATE_RUNNING
        time.sleep(0.2)
    for seconds, code in [(0, grpc.StatusCode.INVALID_ARGUMENT),
                          (2**31 - 1, grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as e:
            lifetimes.ExtendLifetime(protos.sbx.ExtendLifetimeRequest(sandbox_id=sid, seconds=seconds))
        assert e.value.code() == code
        assert "seconds" in e.value.details()
    stop(stub, pb, sid)
    with pytest.raises(grpc.RpcError) as e:
        lifetimes.ExtendLifetime(protos.sbx.ExtendLifetimeRequest(sandbox_id=sid, seconds=60))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        lifetimes.ExtendLifetime(protos.sbx.ExtendLifetimeRequest(sandbox_id="sb-nope", seconds=60))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


def test_discovery_system_and_metrics(daemon, protos):
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    runners = protos.discovery_grpc.DiscoveryServiceStub(channel).ListAvailableRunners(
        protos.discovery.ListAvailableRunnersRequest())
    assert len(runners.runners) == 1 and runners.runners[0].healthy
    assert runners.runners[0].capabilities.max_cpu_millicores > 0
    info = protos.sbx_grpc.SystemServiceStub(channel).GetInfo(protos.sbx.GetInfoRequest())
    assert info.version and info.cgroup_version in ("v1", "v2")
    assert any(c.name == "userns" and c.ok for c in info.checks)
    images = protos.sbx_grpc.ImageServiceStub(channel).ListImages(protos.sbx.ListImagesRequest())
    assert any("busybox" in i.reference for i in images.images)
    channel.close()
    text = metrics_text(daemon)
    assert "sbx_sandboxes{state=\"RUNNING\"}" in text
    assert "sbx_create_seconds_bucket" in text
    assert "sbx_exec_seconds_count" in text


# ---------------------------------------------------------------------------------------------
# Warm sandboxes


def metric(daemon, key):
    for line in metrics_text(daemon).splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cgroup_knob(daemon, sid, v1, v2):
    """A knob of a sandbox's cgroup: (controller, file) in a v1 hierarchy, else the v2 file."""
    path = f"/sys/fs/cgroup/{v1[0]}/{daemon.cgroup_parent}/{sid}/{v1[1]}"
    if not os.path.exists(path):
        path = f"/sys/fs/cgroup/{daemon.cgroup_parent}/{sid}/{v2}"
    with open(path) as f:
        return f.read().strip()


def prepare_warm(daemon, stub, pb, image):
    """Creates and stops a sandbox of `image`, then waits until one is prepared ahead of time."""
    stop(stub, pb, create(stub, pb, image=image, **keepalive(pb)).sandbox_id)
    deadline = time.monotonic() + 60
    while metric(daemon, f'sbx_warm_sandboxes{{image="{image}"}}') < 1:
        assert time.monotonic() < deadline, "no warm sandbox was prepared"
        time.sleep(0.05)


def test_warm_sandbox_serves_a_create_with_its_own_settings(daemon, stub, protos):
    pb = protos.pb
    image = "busybox:1.36"  # an image no other test keeps warm
    ready = f'sbx_warm_sandboxes{{image="{image}"}}'
    hits = 'sbx_warm_claims_total{result="hit"}'
    # A create of the image makes it wanted; a sandbox is prepared for the next one.
    prepare_warm(daemon, stub, pb, image)
    before = metric(daemon, hits)
    sb = create(stub, pb, image=image, command="/bin/sh",
                args=["-c", 'echo "$GREETING $(pwd) $(hostname) $(id -u)"; sleep 100000'],
                env={"GREETING": "hello"}, working_dir="/tmp", memory="512Mi", cpu="500m")
    sid = sb.sandbox_id
    assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
    assert metric(daemon, hits) == before + 1
    # It runs the request's process, named as itself, with the request's limits in the kernel.
    logs = stub.StreamLogs(pb.StreamLogsRequest(sandbox_id=sid, follow=True), timeout=30)
    line = b""
    for entry in logs:
        line += entry.data
        if line.endswith(b"\n"):
            logs.cancel()
            break
    assert line == f"hello /tmp {sid} 0\n".encode()
    assert sb.status.effective_resource_requirements.limits.memory == "512Mi"
    assert int(cgroup_knob(daemon, sid, ("memory", "memory.limit_in_bytes"), "memory.max")) == 512 << 20
    quota = cgroup_knob(daemon, sid, ("cpu", "cpu.cfs_quota_us"), "cpu.max")
    assert quota.split()[0] == "50000"
    # It was prepared with the lowest CPU weight; the claim gives it the normal one back.
    weight = cgroup_knob(daemon, sid, ("cpu", "cpu.shares"), "cpu.weight")
    assert weight in ("1024", "100")
    r = exec_unary(stub, pb, sid, ["sh", "-c", "echo $GREETING"])
    assert r.stdout == b"hello\n"
    stop(stub, pb, sid)


def test_requests_a_warm_sandbox_cannot_serve_are_created_afresh(daemon, stub, protos):
    pb = protos.pb
    image = "busybox:1.36"
    hits = 'sbx_warm_claims_total{result="hit"}'
    prepare_warm(daemon, stub, pb, image)
    before = metric(daemon, hits)
    # A mounted file, and a memory limit small enough to shrink /dev/shm: both fixed at creation.
    with_file = create(stub, pb, image=image, files=[("/etc/app.conf", b"x=1\n")],
                       **keepalive(pb))
    small = create(stub, pb, image=image, memory="64Mi", **keepalive(pb))
    assert metric(daemon, hits) == before
    assert exec_unary(stub, pb, with_file.sandbox_id, ["cat", "/etc/app.conf"]).stdout == b"x=1\n"
    shm = exec_unary(stub, pb, small.sandbox_id, ["df", "-k", "/dev/shm"]).stdout.split()
    assert shm[shm.index(b"/dev/shm") - 4] == b"32768"  # 1K-blocks: half of 64 MiB
    for sb in (with_file, small):
        stop(stub, pb, sb.sandbox_id)


def test_a_broken_warm_sandbox_is_replaced_not_handed_out(daemon, stub, protos, tcp_stub):
    pb = protos.pb
    image = "busybox:1.36"
    unusable = 'sbx_warm_claims_total{result="unusable"}'
    prepare_warm(daemon, stub, pb, image)
    ids = warm_ids(daemon, stub, tcp_stub, pb)
    assert ids
    for sid in ids:
        state = json.loads((daemon.state / "run/sandboxes" / sid / "state.json").read_text())
        os.kill(state["init_pid"], signal.SIGKILL)
    before = metric(daemon, unusable)
    sb = create(stub, pb, image=image, **keepalive(pb))
    assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
    assert metric(daemon, unusable) == before + 1
    assert exec_unary(stub, pb, sb.sandbox_id, ["echo", "fresh"]).stdout == b"fresh\n"
    stop(stub, pb, sb.sandbox_id)


def warm_ids(daemon, stub, tcp_stub, pb):
    """Bundles that await their main process and belong to no tenant's sandbox."""
    stubs = [(stub, None), (tcp_stub, auth(API_KEY_A)), (tcp_stub, auth(API_KEY_B))]
    ids = []
    for bundle in (daemon.state / "run/sandboxes").iterdir():
        spec_file = bundle / "spec.json"
        if not spec_file.exists() or not json.loads(spec_file.read_text())["process"].get(
                "await_start"):
            continue
        owned = False
        for tenant_stub, md in stubs:
            try:
                tenant_stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=bundle.name), metadata=md)
                owned = True
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
        if not owned:
            ids.append(bundle.name)
    return ids


def sandbox_cgroup_exists(daemon, sid):
    return any(os.path.exists(f"{root}/{daemon.cgroup_parent}/{sid}")
               for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"))


def test_warm_sandboxes_do_not_outlive_their_daemon(daemon, protos, tcp_stub):
    pb = protos.pb
    image = "busybox:1.36"

    def prepare():
        channel = grpc.insecure_channel("unix://" + daemon.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        prepare_warm(daemon, stub, pb, image)
        ids = warm_ids(daemon, stub, tcp_stub, pb)
        channel.close()
        assert ids
        return ids

    # A graceful stop removes them: nothing would ever claim them.
    ids = prepare()
    daemon.stop()
    for sid in ids:
        assert not sandbox_cgroup_exists(daemon, sid)
        assert not (daemon.state / "run/sandboxes" / sid).exists()
    # The daemon's cgroup parent stays only where a sandbox still runs under it.
    for root in Path("/sys/fs/cgroup").iterdir():
        for parent in (root / daemon.cgroup_parent, Path("/sys/fs/cgroup") / daemon.cgroup_parent):
            if parent.is_dir():
                assert [p for p in parent.iterdir() if p.is_dir()], f"{parent} left empty"
    daemon.start()
    # After a crash they run on like every sandbox, and the next daemon removes them.
    ids = prepare()
    daemon.kill9()
    assert all(sandbox_cgroup_exists(daemon, sid) for sid in ids)
    daemon.start()
    for sid in ids:
        assert not sandbox_cgroup_exists(daemon, sid)
        assert not (daemon.state / "run/sandboxes" / sid).exists()


def test_removing_an_image_removes_its_warm_sandboxes(daemon, stub, protos):
    # Last of the warm-sandbox tests: busybox:1.36 is gone afterwards.
    pb = protos.pb
    image = "busybox:1.36"
    ready = f'sbx_warm_sandboxes{{image="{image}"}}'
    prepare_warm(daemon, stub, pb, image)
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    images = protos.sbx_grpc.ImageServiceStub(channel)
    # The warm sandbox holds the image, yet the removal succeeds: it gives way.
    images.RemoveImage(protos.sbx.RemoveImageRequest(reference=image))
    text = metrics_text(daemon)
    assert ready not in text  # no longer kept warm, so never pulled back
    listed = images.ListImages(protos.sbx.ListImagesRequest()).images
    assert not any(i.reference.endswith("busybox:1.36") for i in listed)
    channel.close()


# ---------------------------------------------------------------------------------------------
# Scale and survival


def test_hundred_concurrent_creates_each_with_an_exec(stub, protos):
    pb = protos.pb
    tag = "burst-" + uuid.uuid4().hex[:8]

    def one(i):
        sb = create(stub, pb, **keepalive(pb, tags=[tag]))
        r = exec_unary(stub, pb, sb.sandbox_id, ["echo", str(i)])
        return sb.sandbox_id, r.stdout

    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(one, range(100)))
    assert [out for _, out in results] == [f"{i}\n".encode() for i in range(100)]
    assert len({sid for sid, _ in results}) == 100
    stub.PurgeSandboxes(pb.PurgeSandboxesRequest(tags=[tag]))
    for sid, _ in results:
        wait_state(stub, pb, sid, terminal(pb), timeout=120)


def test_kill_dash_nine_and_restart_keeps_every_sandbox(daemon, protos):
    pb = protos.pb
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    stub = protos.grpc.SandboxServiceStub(channel)
    tag = "survive-" + uuid.uuid4().hex[:8]
    ids = [create(stub, pb, **keepalive(pb, tags=[tag])).sandbox_id for _ in range(20)]
    for i, sid in enumerate(ids):
        stub.WriteFile(pb.WriteFileRequest(sandbox_id=sid, path="/state", content=str(i).encode()))
    # One ends while the daemon is down: its exit code must still be recorded.
    exiting = create(stub, pb, command="/bin/sh", args=["-c", "sleep 2; exit 5"], tags=[tag]).sandbox_id
    channel.close()
    daemon.kill9()
    time.sleep(3)
    daemon.start()
    channel = grpc.insecure_channel("unix://" + daemon.socket)
    stub = protos.grpc.SandboxServiceStub(channel)
    for i, sid in enumerate(ids):
        sb = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=sid))
        assert sb.status.state == pb.STATE_RUNNING, sb.status.state_reason
        r = exec_unary(stub, pb, sid, ["cat", "/state"])
        assert r.stdout == str(i).encode()
    done = wait_state(stub, pb, exiting, terminal(pb))
    assert done.status.state == pb.STATE_FAILED and done.status.exit_code == 5
    stub.PurgeSandboxes(pb.PurgeSandboxesRequest(tags=[tag]))
    for sid in ids:
        wait_state(stub, pb, sid, terminal(pb), timeout=60)
    channel.close()
    # Nothing leaked: no sandbox cgroup, bundle or process of these sandboxes remains.
    run = daemon.state / "run/sandboxes"
    leftover = [p.name for p in run.iterdir()] if run.exists() else []
    assert not set(leftover) & set(ids)
    parent = daemon.cgroup_parent
    for sid in ids:
        for root in (f"/sys/fs/cgroup/memory/{parent}", f"/sys/fs/cgroup/{parent}"):
            assert not os.path.exists(f"{root}/{sid}")


def test_a_pending_sandbox_says_what_it_waits_for(registry, protos):
    """A create the node has no room for yet waits PENDING, and its state reason (Get, List)
    names the resource and the figures; once room is free it starts and the reason is gone."""
    pb = protos.pb
    with own_daemon(registry, capacity_cpu="1", warm_pool_size=0) as d:
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)

        def whole_cpu():
            req = pb.CreateSandboxRequest(request_id=str(uuid.uuid4()))
            req.sandbox.spec.CopyFrom(spec(pb, **keepalive(pb)))
            req.sandbox.spec.containers[0].resource_requirements.requests.cpu = "1"
            return stub.CreateSandbox(req, timeout=120)

        first = whole_cpu()
        wait_state(stub, pb, first.sandbox_id, (pb.STATE_RUNNING,))
        second = whole_cpu()
        assert second.status.state == pb.STATE_PENDING
        reason = "WAITING_FOR_CAPACITY: waiting for CPU: 1000m of 1000m reserved, it needs 1000m"
        assert second.status.state_reason == reason
        got = stub.GetSandbox(pb.GetSandboxRequest(sandbox_id=second.sandbox_id))
        assert got.status.state_reason == reason
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=first.sandbox_id))
        started = wait_state(stub, pb, second.sandbox_id, (pb.STATE_RUNNING,))
        assert started.status.state_reason == ""
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=second.sandbox_id))
        wait_state(stub, pb, second.sandbox_id, terminal(pb))
        channel.close()
        assert "is PENDING, waiting for CPU" in (d.state / "sbxd.log").read_text()


def test_sandboxes_without_requests_wait_for_the_hosts_real_memory(registry, protos):
    """Without requests a sandbox reserves nothing of the node's capacity; what holds creates
    back is the host's real room: here a memory_reserve no host has."""
    pb = protos.pb
    with own_daemon(registry, memory_reserve="1000Ti", warm_pool_size=0) as d:
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        sb = create(stub, pb, **keepalive(pb))
        assert sb.status.state == pb.STATE_PENDING
        assert sb.status.state_reason.startswith("WAITING_FOR_CAPACITY: waiting for host memory: ")
        assert "available, memory_reserve keeps 1000.0 TiB free" in sb.status.state_reason
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sb.sandbox_id))
        wait_state(stub, pb, sb.sandbox_id, terminal(pb))
        channel.close()


def test_removing_one_name_of_an_image_in_use_only_untags_it(registry, protos):
    """busybox:latest and busybox:1.36 are one image. With a sandbox running from 1.36, removing
    `latest` untags it (the sandbox is not using that name); removing 1.36, the last name, is
    refused while the sandbox runs and succeeds once it is gone."""
    pb = protos.pb
    with own_daemon(registry, warm_pool_size=0) as d:
        channel = grpc.insecure_channel("unix://" + d.socket)
        stub = protos.grpc.SandboxServiceStub(channel)
        images = protos.sbx_grpc.ImageServiceStub(channel)
        for ref in ("busybox:latest", "busybox:1.36"):
            for _ in images.PullImage(protos.sbx.PullImageRequest(reference=ref), timeout=120):
                pass
        listed = images.ListImages(protos.sbx.ListImagesRequest()).images
        assert len({i.digest for i in listed}) == 1 and len(listed) == 2
        sb = create(stub, pb, image="busybox:1.36", **keepalive(pb))
        wait_state(stub, pb, sb.sandbox_id, (pb.STATE_RUNNING,))
        images.RemoveImage(protos.sbx.RemoveImageRequest(reference="busybox:latest"))
        names = [i.reference for i in images.ListImages(protos.sbx.ListImagesRequest()).images]
        assert names == ["docker.io/library/busybox:1.36"]
        with pytest.raises(grpc.RpcError) as e:
            images.RemoveImage(protos.sbx.RemoveImageRequest(reference="busybox:1.36"))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "in use by 1 sandbox" in e.value.details()
        assert exec_unary(stub, pb, sb.sandbox_id, ["true"]).exit_code == 0
        stub.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id=sb.sandbox_id))
        wait_state(stub, pb, sb.sandbox_id, terminal(pb))
        images.RemoveImage(protos.sbx.RemoveImageRequest(reference="busybox:1.36"))
        assert not images.ListImages(protos.sbx.ListImagesRequest()).images
        channel.close()
