"""The `sbx` command line end to end against a real sbxd: what users type and what they get
back (output, exit codes, files), including an interactive shell through a real pseudo-terminal,
directory trees copied both ways, image loading, and the errors users meet."""

import errno
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import tarfile
import termios
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import forget, spawn

BUSYBOX = "busybox:latest"
# The shell idles until stopped and exits 0 on SIGTERM, so a graceful stop is quick.
KEEPALIVE = ["sh", "-c", 'trap "exit 0" TERM; sleep 100000 & wait']


@pytest.fixture(scope="module")
def cli(daemon):
    return Cli(Path(os.environ["SBX_BIN_DIR"]) / "sbx", "unix://" + daemon.socket)


class Cli:
    def __init__(self, binary, url):
        self.binary = str(binary)
        self.url = url

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SBX_", "CWSANDBOX_", "WANDB_"))}
        env["SBX_BASE_URL"] = self.url
        env.update(extra)
        return env

    def __call__(self, *args, input=None, timeout=120, env=None, check=None):
        """Runs sbx; `check` is the exit code expected."""
        p = spawn([self.binary, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, env=env or self.env())
        try:
            p.stdout, p.stderr = p.communicate(input or b"", timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            forget(p)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.out, p.err)
        return p

    def sandbox(self, *flags, command=KEEPALIVE):
        """A detached sandbox; returns its id."""
        p = self("run", "-d", *flags, BUSYBOX, *command, check=0)
        sid = p.out.strip()
        assert re.fullmatch(r"[A-Za-z0-9-]+", sid), p.out
        return sid

    def get(self, sid):
        return json.loads(self("get", "-o", "json", sid, check=0).out)

    def wait_state(self, sid, states, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            sb = self.get(sid)
            if sb["state"] in states:
                return sb
            assert time.monotonic() < deadline, f"{sid} stuck in {sb['state']}"
            time.sleep(0.05)


ENDED = ("COMPLETED", "FAILED", "TERMINATED")


@pytest.fixture
def sandbox(cli):
    sid = cli.sandbox("--tag", "cli-e2e")
    yield sid
    cli("rm", "--missing-ok", "-q", sid)


# ---------------------------------------------------------------------------------------------
# run


def test_run_streams_output_and_passes_the_exit_code(cli):
    p = cli("run", "--rm", BUSYBOX, "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
    assert p.returncode == 7, p.err
    # The main process's output comes from its log: both streams, in order, on stdout.
    assert p.out == "to-out\nto-err\n"


def test_run_env_workdir_and_flags_of_the_command(cli, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\n\nFROM_FILE=file value\nOVERRIDDEN=file\n")
    p = cli("run", "--rm", "-e", "GREETING=hello world", "--env-file", str(env_file),
            "-e", "OVERRIDDEN=flag", "-e", "FROM_HOST", "-w", "/tmp", BUSYBOX,
            "sh", "-c", 'echo "$GREETING|$FROM_FILE|$OVERRIDDEN|$FROM_HOST|$(pwd)"; ls -d -1 /',
            env=cli.env(FROM_HOST="host value"), check=0)
    # `ls -d -1` belongs to the command, not to sbx.
    assert p.out == "hello world|file value|flag|host value|/tmp\n/\n"


def test_run_rm_leaves_nothing_behind(cli):
    tag = "rm-" + uuid.uuid4().hex[:8]
    cli("run", "--rm", "--tag", tag, BUSYBOX, "true", check=0)
    listed = json.loads(cli("ls", "--all", "--tag", tag, "-o", "json", check=0).out)
    assert len(listed) == 1 and listed[0]["state"] in ENDED, listed


def test_lifetime_default_expiry_and_extend(cli):
    # One default for every client (12 h); the expiry is shown and can be pushed back.
    run = cli("run", "-d", BUSYBOX)
    sid = run.out.strip()
    try:
        assert f"sbx: sandbox {sid} expires at " in run.err, run.err
        assert "(in 11h 59m)" in run.err or "(in 12h)" in run.err, run.err
        sb = cli.get(sid)
        assert sb["max_lifetime_seconds"] == 43200
        first_expiry = sb["expire_time"]
        listed = cli("ls", check=0).out
        assert "EXPIRES" in listed.splitlines()[0], listed
        assert re.search(rf"^{sid}\s.*\bin (11h 59m|12h)\b", listed, re.M), listed
        extended = cli("extend", sid, "1h").out
        assert extended.startswith(f"{sid} expires at "), extended
        sb = cli.get(sid)
        assert sb["max_lifetime_seconds"] == 43200 + 3600
        assert sb["expire_time"] > first_expiry
        table = cli("get", sid, check=0).out
        assert re.search(r"^Lifetime:\s+13h", table, re.M), table
        assert re.search(r"^Expires:\s+\S+Z \(in 12h 59m|^Expires:\s+\S+Z \(in 13h", table, re.M), table
        # Past the node's maximum: refused, saying how much is left.
        over = cli("extend", sid, "400d", check=1)
        assert "max_lifetime_seconds" in over.err, over.err
        bad = cli("extend", sid, "soon", check=2)
        assert "DURATION" in bad.err, bad.err
    finally:
        cli("rm", "-q", sid)
    ended = cli("extend", sid, "1h", check=1)
    assert "only a running sandbox" in ended.err, ended.err


def test_run_detached_with_tags_resources_and_lifetime(cli):
    tag = "tags-" + uuid.uuid4().hex[:8]
    sid = cli.sandbox("--tag", tag, "--tag", "second", "--cpu", "500m", "--memory", "256Mi",
                      "--lifetime", "10m", "--network", "none", "--annotation", "owner=e2e")
    try:
        sb = cli.get(sid)
        assert sb["state"] == "RUNNING"
        assert sb["tags"] == [tag, "second"]
        assert sb["cpu"] == "500m" and sb["memory"] == "256Mi"
        assert sb["max_lifetime_seconds"] == 600
        assert sb["network"] == "none"
        assert sb["annotations"] == {"owner": "e2e"}
        table = cli("get", sid, check=0).out
        assert re.search(r"^Status:\s+RUNNING", table, re.M), table
        assert re.search(r"^Lifetime:\s+10m", table, re.M), table
        assert re.search(r"^Network:\s+none", table, re.M), table
    finally:
        cli("rm", "-q", sid)


def test_run_idempotent_request_id(cli):
    rid = "req-" + uuid.uuid4().hex
    first = cli.sandbox("--request-id", rid)
    try:
        assert cli.sandbox("--request-id", rid) == first
    finally:
        cli("rm", "-q", first)


def test_run_without_command_runs_the_images(cli):
    # busybox's command is `sh`, which exits at once without input.
    p = cli("run", "--rm", BUSYBOX, check=0)
    assert p.out == ""


def test_run_command_not_found_is_127(cli):
    p = cli("run", "--rm", BUSYBOX, "/no/such/binary")
    assert p.returncode == 127, (p.returncode, p.err)


def test_run_bad_image(cli):
    p = cli("run", "--rm", "no-such-image-" + uuid.uuid4().hex[:8] + ":v1", "true")
    assert p.returncode == 125, (p.returncode, p.err)
    assert "no-such-image-" in p.err
    assert p.err.startswith("sbx: ")
    assert "hint:" in p.err


def test_run_piped_stdin_with_i(cli):
    p = cli("run", "--rm", "-i", BUSYBOX, "sh", "-c", "tr a-z A-Z; exit 4", input=b"piped in\n")
    assert p.returncode == 4, p.err
    assert p.out == "PIPED IN\n"


def http_get(url, timeout=60):
    """The body of `url`, retried until the server in the sandbox has started."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return r.read().decode()
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def published_urls(err):
    return dict(re.findall(r"^sbx: port (\S+) published \(\w+\) at (\S+)$", err, re.M))


def test_publish_exposes_a_port_and_prints_where(cli):
    script = "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 8080 -h /www"
    p = cli("run", "-d", "-p", "8080", "--publish", "private:9000/udp", BUSYBOX,
            "sh", "-c", script, check=0)
    sid = p.out.strip()
    try:
        # stdout stays the id alone; where the ports are reached goes to stderr.
        assert re.fullmatch(r"[A-Za-z0-9-]+", sid), p.out
        urls = published_urls(p.err)
        assert set(urls) == {"8080/tcp", "9000/udp"}, p.err
        assert urls["9000/udp"].startswith("udp://")
        # The printed address (a port of the host) reaches the server in the sandbox.
        assert http_get(urls["8080/tcp"]) == "published\n"
        sb = cli.get(sid)
        by_port = {(s["port"], s["protocol"]): s for s in sb["services"]}
        assert by_port[(8080, "tcp")]["url"] == urls["8080/tcp"]
        assert by_port[(8080, "tcp")]["visibility"] == "private"
        table = cli("get", sid, check=0).out
        assert re.search(r"^Service:\s+8080/tcp private " + re.escape(urls["8080/tcp"]), table,
                         re.M), table
    finally:
        cli("rm", "-q", sid)


def test_publish_refuses_a_mix_and_host_ports(cli):
    p = cli("run", "-d", "-p", "80", "-p", "public:81", BUSYBOX)
    assert p.returncode == 2, p.err
    assert "all public or all private" in p.err and "public:81" in p.err
    p = cli("run", "-d", "-p", "8000:80", BUSYBOX)
    assert p.returncode == 2 and "sbxd chooses the host port" in p.err, p.err
    assert p.out == ""


def test_secrets_reach_the_environment(cli):
    # The harness's sbxd has the store "team" with HF_TOKEN and the JSON secret "creds".
    p = cli("run", "--rm", "--secret", "team/HF_TOKEN", "--secret", "team/creds:password=PW",
            BUSYBOX, "sh", "-c", 'echo "$HF_TOKEN|$PW"', check=0)
    assert p.out == "hf-secret-value|pw-123\n"
    # A missing secret fails the create, naming it; nothing is left running.
    tag = "secret-" + uuid.uuid4().hex[:8]
    p = cli("run", "--rm", "--tag", tag, "--secret", "team/NO_SUCH", BUSYBOX, "true")
    assert p.returncode == 125, (p.returncode, p.err)
    assert '"NO_SUCH"' in p.err and '"team"' in p.err and "not found" in p.err, p.err
    assert cli("ls", "-q", "--tag", tag, check=0).out == ""
    p = cli("run", "--rm", "--secret", "team/../x", BUSYBOX, "true")
    assert p.returncode == 2 and "--secret" in p.err, p.err


@pytest.fixture(scope="module")
def net(registry, protos):
    """sbxd in a topology of network namespaces of the test's own (tests/support/
    network_topology.py): an "internet" of documentation addresses behind it, so that egress is
    tested without a packet leaving the machine."""
    import network_topology
    yield from network_topology.network_daemon(registry, protos)


def test_egress_flags_allow_exactly_what_they_list(cli, net):
    from network_topology import INET, INET2
    on_net = Cli(cli.binary, "unix://" + net.socket)

    def fetch(sid, url):
        return on_net("exec", sid, "timeout", "2", "wget", "-q", "-O", "-", url)

    default = on_net.sandbox()
    allowlisted = on_net.sandbox("--egress", f"{INET2}:80/tcp", "--egress", "public.test:80")
    loopback = on_net.sandbox("--network", "none")
    try:
        # The same server is reachable without rules...
        assert fetch(default, f"http://{INET}/").out == "hello from the internet"
        # ...but with rules only where they point: not an address they do not list, but a
        # listed address, and a listed name (which sbxd resolves, and so opens its address).
        assert fetch(allowlisted, f"http://{INET}/").returncode != 0
        assert fetch(allowlisted, f"http://{INET2}/").out == "hello from the internet"
        assert fetch(allowlisted, "http://public.test/").out == "hello from the internet"
        assert fetch(loopback, f"http://{INET}/").returncode != 0
        sb = on_net.get(allowlisted)
        assert sb["network"] == "egress"
        assert sb["egress"] == [f"{INET2}/32:80/tcp", "public.test:80"]
        assert on_net.get(default)["network"] == "default"
        table = on_net("get", allowlisted, check=0).out
        assert re.search(r"^Network:\s+egress only to " + re.escape(f"{INET2}/32:80/tcp"), table,
                         re.M), table
    finally:
        on_net("rm", "-q", default, allowlisted, loopback)
    p = on_net("run", "-d", "--network", "none", "--egress", "any", BUSYBOX)
    assert p.returncode == 2 and "--egress" in p.err, p.err


def test_stats_shows_cpu_memory_processes_and_disk(cli, stub, protos):
    # A busy loop (CPU) beside a Python holding 96 MiB it wrote (memory).
    hog = ("python3 -c 'import time; x = b\"x\" * (96 << 20); time.sleep(100000)' & "
           "while :; do :; done")
    sid = cli("run", "-d", "--memory", "512Mi", "--name", "hog-" + uuid.uuid4().hex[:6],
              "python:3.11", "sh", "-c", hog, check=0).out.strip()
    try:
        def stats():
            rows = json.loads(cli("stats", "--no-stream", "-o", "json", sid, check=0).out)
            assert [r["id"] for r in rows] == [sid]
            return rows[0]

        deadline = time.monotonic() + 60
        while (s := stats())["memory_bytes"] < 96 << 20:
            assert time.monotonic() < deadline, s
            time.sleep(0.2)
        # Near what it allocated: the interpreter and its files come on top, not another copy.
        assert s["memory_bytes"] < (96 + 80) << 20, s
        assert s["memory_limit_bytes"] == 512 << 20
        # The loop keeps most of a CPU busy (the machine may be shared: not all of it).
        assert s["cpu_millicores"] > 100, s
        assert s["cpu_seconds"] > 0
        # sbx-init, the shell and Python at least.
        assert s["pids"] >= 3, s
        assert 0 < s["disk_used_bytes"] < s["disk_total_bytes"], s
        # Writing a file fills the writable layer by as much.
        cli("exec", sid, "dd", "if=/dev/urandom", "of=/written", "bs=1M", "count=32", check=0)
        after = stats()
        assert after["disk_used_bytes"] - s["disk_used_bytes"] >= 30 << 20, (s, after)
        # The table, and the caller's running sandboxes when no id is given.
        header, *rows = cli("stats", "--no-stream", check=0).out.splitlines()
        assert header.split() == ["SANDBOX", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                  "LIMIT", "MEM", "%", "PIDS", "DISK", "USED", "/", "SIZE"]
        row = next(r for r in rows if r.startswith(sid))
        assert re.search(r"\d+\.\d%\s+\d+(\.\d+)? MiB / 512(\.0)? MiB", row), row
        # The hosted protocol's resource_usage, filled by Get for a running sandbox.
        usage = stub.GetSandbox(protos.pb.GetSandboxRequest(sandbox_id=sid)).status.resource_usage
        assert usage.memory_mb >= 96 and usage.cpu_millicores > 0, usage
        assert cli.get(sid)["resource_usage"]["memory_mb"] >= 96
    finally:
        cli("rm", "-q", sid)
    cli.wait_state(sid, ENDED)
    p = cli("stats", "--no-stream", sid)
    assert p.returncode == 1 and "SANDBOX_NOT_RUNNING" in p.err and sid in p.err, p.err
    assert cli.get(sid)["resource_usage"] is None


# ---------------------------------------------------------------------------------------------
# exec


def test_exec_exit_code_and_streams(cli, sandbox):
    p = cli("exec", sandbox, "sh", "-c", "echo out; echo err >&2; exit 42")
    assert p.returncode == 42
    assert p.out == "out\n"
    assert p.err == "err\n"
    cli("exec", sandbox, "true", check=0)


def test_exec_stdin_env_and_workdir(cli, sandbox):
    data = os.urandom(300_000)
    p = cli("exec", "-i", sandbox, "sha256sum", input=data, check=0)
    assert p.out.split()[0] == hashlib.sha256(data).hexdigest()
    # Without -i the command sees no input at all.
    assert cli("exec", sandbox, "cat", input=b"ignored", check=0).out == ""
    p = cli("exec", "-e", "A=1", "-w", "/etc", sandbox, "sh", "-c", 'echo "$A $(pwd)"', check=0)
    assert p.out == "1 /etc\n"


def test_exec_errors_have_their_codes(cli, sandbox):
    assert cli("exec", sandbox, "/no/such/cmd").returncode == 127
    assert cli("exec", sandbox, "/etc/passwd").returncode == 126
    p = cli("exec", "--timeout", "1s", sandbox, "sleep", "30")
    assert p.returncode == 124, p.err
    assert "1s" in p.err or "1 s" in p.err
    p = cli("exec", sandbox)
    assert p.returncode == 2
    assert "command" in p.err
    p = cli("exec", "-t", sandbox, "true")
    assert p.returncode == 2
    assert "terminal" in p.err


def test_ctrl_c_kills_an_exec(cli, sandbox):
    proc = spawn([cli.binary, "exec", sandbox, "sh", "-c", "echo started; exec sleep 99991"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env())
    try:
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        forget(proc)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    # The command went with it.
    deadline = time.monotonic() + 30
    while "sleep 99991" in cli("exec", sandbox, "ps", check=0).out:
        assert time.monotonic() < deadline, "the command outlived sbx exec"
        time.sleep(0.05)


def test_ctrl_c_stops_a_foreground_run(cli):
    tag = "ctrlc-" + uuid.uuid4().hex[:8]
    proc = spawn([cli.binary, "run", "--tag", tag, BUSYBOX, "sh", "-c",
                  "echo started; exec sleep 100000"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env())
    try:
        assert proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        forget(proc)
    assert b"stopping sandbox" in err, err
    [sid] = cli("ls", "--all", "-q", "--tag", tag, check=0).out.split()
    sb = cli.wait_state(sid, ENDED)
    assert sb["state"] == "TERMINATED", sb
    # sleep died of the SIGTERM: 128 + 15, passed through.
    assert proc.returncode == 143, (proc.returncode, err)


def test_exec_in_an_ended_sandbox(cli):
    sid = cli.sandbox(command=["true"])
    cli.wait_state(sid, ENDED)
    p = cli("exec", sid, "true")
    assert p.returncode == 125
    assert sid in p.err


# ---------------------------------------------------------------------------------------------
# An interactive shell through a real pseudo-terminal


class Pty:
    """sbx on a pseudo-terminal of its own, as in a terminal emulator: the pty is its controlling
    terminal, so window changes send it SIGWINCH."""

    def __init__(self, argv, env, rows=24, cols=80):
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.slave_path = os.ttyname(slave)
        self.proc = spawn(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        self.slave = slave
        self.screen = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text):
        os.write(self.master, text.encode())

    def read_until(self, pattern, timeout=30):
        """Reads the screen until `pattern` (a regex on bytes) matches what arrived since the
        last match; returns the match."""
        deadline = time.monotonic() + timeout
        start = len(self.screen)
        while True:
            m = re.search(pattern, self.screen[start:])
            if m:
                return m
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} on the screen: {self.screen[start:][-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    chunk = b""
                if not chunk:
                    assert False, f"pty closed before {pattern!r}: {self.screen[start:]!r}"
                self.screen += chunk

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        # Keep draining, so the process never blocks on a full terminal.
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "sbx did not exit"
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        forget(self.proc)
        os.close(self.slave)
        os.close(self.master)


def drive_shell(pty):
    # A computed value proves the shell ran it: the typed line only echoes the expression.
    pty.type("echo ab$((6*7))cd\n")
    pty.read_until(rb"ab42cd")
    # The initial window size reached the sandbox's terminal.
    pty.type("stty size\n")
    pty.read_until(rb"\b24 80\b")
    # A resize here reaches it too; it is asynchronous, so ask until it shows.
    pty.resize(33, 101)
    deadline = time.monotonic() + 20
    while True:
        pty.type("stty size\n")
        try:
            pty.read_until(rb"\b33 101\b", timeout=1)
            break
        except AssertionError:
            assert time.monotonic() < deadline, pty.screen[-2000:]
    # The local terminal is in raw mode meanwhile: no local echo or line editing.
    mode = termios.tcgetattr(pty.slave)
    assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
    pty.type("exit 3\n")
    assert pty.wait() == 3, pty.screen[-2000:]
    # And back to normal once sbx has left.
    mode = termios.tcgetattr(pty.slave)
    assert mode[3] & termios.ICANON and mode[3] & termios.ECHO


def test_exec_it_through_a_pty(cli, sandbox):
    pty = Pty([cli.binary, "exec", "-it", sandbox, "sh"], cli.env())
    try:
        drive_shell(pty)
    finally:
        pty.close()


def test_sh_through_a_pty(cli, sandbox):
    pty = Pty([cli.binary, "sh", sandbox], cli.env())
    try:
        drive_shell(pty)
    finally:
        pty.close()


def test_run_it_rm_through_a_pty(cli):
    tag = "runit-" + uuid.uuid4().hex[:8]
    pty = Pty([cli.binary, "run", "-it", "--rm", "--tag", tag, BUSYBOX, "sh"], cli.env())
    try:
        pty.type("echo term=$TERM\n")
        pty.read_until(rb"term=\S+")
        pty.type("exit 5\n")
        assert pty.wait(timeout=60) == 5, pty.screen[-2000:]
    finally:
        pty.close()
    listed = json.loads(cli("ls", "--all", "--tag", tag, "-o", "json", check=0).out)
    assert len(listed) == 1 and listed[0]["state"] in ENDED + ("TERMINATING",), listed


def test_sh_without_a_terminal_pipes_stdin(cli, sandbox):
    p = cli("sh", sandbox, input=b"echo piped $((2+3))\nexit 6\n")
    assert p.returncode == 6
    assert "piped 5" in p.out


# ---------------------------------------------------------------------------------------------
# ls, get, logs


def test_ls_filters_and_formats(cli):
    tag = "ls-" + uuid.uuid4().hex[:8]
    running = cli.sandbox("--tag", tag)
    ended = cli.sandbox("--tag", tag, command=["true"])
    other = cli.sandbox("--tag", tag + "-other")
    try:
        cli.wait_state(ended, ENDED)
        listed = json.loads(cli("ls", "--tag", tag, "-o", "json", check=0).out)
        assert [s["id"] for s in listed] == [running]
        assert listed[0]["state"] == "RUNNING" and tag in listed[0]["tags"]
        listed = json.loads(cli("ls", "--all", "--tag", tag, "-o", "json", check=0).out)
        assert sorted(s["id"] for s in listed) == sorted([running, ended])
        assert cli("ls", "-q", "--all", "-t", tag, check=0).out.split() == \
            [s["id"] for s in listed]
        ended_only = cli("ls", "--status", "completed", "--tag", tag, "-q", check=0).out.split()
        assert ended_only == [ended]
        table = cli("ls", "--all", "--tag", tag, check=0).out.splitlines()
        assert table[0].split()[:4] == ["SANDBOX", "ID", "NAME", "STATUS"]
        rows = {line.split()[0]: line for line in table[1:]}
        assert "RUNNING" in rows[running] and "COMPLETED (0)" in rows[ended]
        assert BUSYBOX in rows[running]
        # Without filters both of ours that run show up.
        everything = cli("ls", "-q", check=0).out.split()
        assert running in everything and other in everything and ended not in everything
        assert cli("ls", "--status", "sleepy").returncode == 2
        assert cli("ls", "-o", "yaml").returncode == 2
    finally:
        cli("rm", "-q", running, ended, other)


def test_get_shows_an_ended_sandbox(cli):
    sid = cli.sandbox(command=["sh", "-c", "exit 9"])
    sb = cli.wait_state(sid, ENDED)
    assert sb["exit_code"] == 9
    assert sb["state"] == "FAILED"
    table = cli("get", sid, check=0).out
    assert re.search(r"^Status:\s+FAILED, exit code 9", table, re.M), table
    assert re.search(r"^Image:\s+" + re.escape(BUSYBOX), table, re.M), table
    assert re.search(r'^Command:\s+sh -c "exit 9"', table, re.M), table


def test_logs(cli):
    sid = cli.sandbox(command=["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; "
                               "echo oops >&2"])
    cli.wait_state(sid, ENDED)
    assert cli("logs", sid, check=0).out == "line1\nline2\nline3\nline4\nline5\noops\n"
    assert cli("logs", "--tail", "2", sid, check=0).out == "line5\noops\n"
    stamped = cli("logs", "--timestamps", "--tail", "1", sid, check=0).out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z oops\n", stamped), stamped
    assert cli("logs", "--since", "1h", sid, check=0).out.count("line") == 5
    assert cli("logs", "--since", "2200-01-01T00:00:00Z", sid, check=0).out == ""
    assert cli("logs", "--since", "yesterday", sid).returncode == 2
    assert cli("logs", "--since", "2999-01-01T00:00:00Z", sid).returncode == 2
    assert cli("logs", "--tail", "-3", sid).returncode == 2


def test_logs_follow_ends_with_the_sandbox(cli):
    # The command waits for a file, so some output is certainly produced after -f started.
    sid = cli.sandbox(command=["sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.05;"
                               " done; echo second; sleep 0.2; echo third"])
    follow = spawn([cli.binary, "logs", "-f", sid], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=cli.env())
    try:
        assert follow.stdout.readline() == b"first\n"
        cli("exec", sid, "touch", "/tmp/go", check=0)
        out, err = follow.communicate(timeout=60)
        assert out == b"second\nthird\n", err
        assert follow.returncode == 0, err
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
        forget(follow)


# ---------------------------------------------------------------------------------------------
# stop, rm, purge


def test_stop_is_graceful_and_waits(cli):
    sid = cli.sandbox()
    p = cli("stop", sid, check=0)
    assert p.out == sid + "\n"
    # Waited: already ended when stop returns; the trap made the exit clean.
    sb = cli.get(sid)
    assert sb["state"] == "TERMINATED" and sb["exit_code"] == 0
    # A second stop says it was already stopped, unless that is fine with the caller.
    again = cli("stop", "-q", sid, check=1)
    assert "already deleted" in again.err, again.err
    cli("stop", "-q", "--missing-ok", sid, check=0)


def test_rm_several_and_missing_ok(cli):
    a, b = cli.sandbox(), cli.sandbox()
    missing = "sb-" + uuid.uuid4().hex[:12]
    p = cli("rm", a, b, check=0)
    assert p.out.split() == [a, b]
    for sid in (a, b):
        cli.wait_state(sid, ENDED)
    p = cli("rm", "--missing-ok", missing, check=0)
    assert p.out == ""
    p = cli("rm", missing)
    assert p.returncode == 1 and missing in p.err


def test_purge_by_tag(cli):
    tag = "purge-" + uuid.uuid4().hex[:8]
    ours = [cli.sandbox("--tag", tag), cli.sandbox("--tag", tag, "--tag", "x")]
    bystander = cli.sandbox("--tag", tag + "-not")
    try:
        p = cli("purge", "--tag", tag, "--dry-run", check=0)
        assert p.out == "would stop 2 sandboxes\n"
        assert all(cli.get(s)["state"] == "RUNNING" for s in ours)
        p = cli("purge", "--tag", tag, check=0)
        assert p.out == "stopped 2 sandboxes\n"
        for sid in ours:
            cli.wait_state(sid, ENDED)
        assert cli.get(bystander)["state"] == "RUNNING"
        assert cli("purge", "--tag", tag, check=0).out == "stopped 0 sandboxes\n"
    finally:
        cli("rm", "-q", bystander)
    assert cli("purge").returncode == 2
    assert cli("purge", "--all").returncode == 2
    assert cli("purge", "--all", "--tag", tag).returncode == 2


# ---------------------------------------------------------------------------------------------
# cp


def make_tree(root):
    root.mkdir()
    (root / "top.txt").write_text("top level\n")
    (root / "a/b/c").mkdir(parents=True)
    (root / "a/b/c/deep.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "a/empty").write_bytes(b"")
    (root / "a/b/odd name 'ü' $x;.txt").write_text("odd\n")
    (root / "empty-dir").mkdir()
    run = root / "a/run.sh"
    run.write_text("#!/bin/sh\necho ran\n")
    run.chmod(0o755)
    os.symlink("a/b/c/deep.bin", root / "link-to-deep")


def tree_digest(root):
    """{relative path: sha256, or "-> target" for a symlink, or "/" for a directory}"""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "/"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sandbox_digest(cli, sid, root):
    # One line per entry, NUL-free names assumed: sha256 for files, the target for symlinks.
    script = ('cd "$1" && find . -mindepth 1 | while IFS= read -r p; do '
              'if [ -L "$p" ]; then echo "L $(readlink "$p") $p"; '
              'elif [ -d "$p" ]; then echo "D / $p"; '
              'else echo "F $(sha256sum < "$p" | cut -d" " -f1) $p"; fi; done')
    p = cli("exec", sid, "sh", "-c", script, "sh", root, check=0)
    out = {}
    for line in p.out.splitlines():
        kind, value, path = line.split(" ", 2)
        rel = path[2:]
        out[rel] = {"L": "-> " + value, "D": "/", "F": value}[kind]
    return out


def test_cp_directory_tree_both_ways(cli, sandbox, tmp_path):
    src = tmp_path / "tree"
    make_tree(src)
    expected = tree_digest(src)
    assert len(expected) == 10
    # DEST ending in / is a directory, created when missing.
    cli("cp", str(src), sandbox + ":/srv/in/", check=0)
    assert sandbox_digest(cli, sandbox, "/srv/in/tree") == expected
    assert cli("exec", sandbox, "/srv/in/tree/a/run.sh", check=0).out == "ran\n"
    # Changes made inside come back with the tree.
    cli("exec", sandbox, "sh", "-c", "echo made inside > /srv/in/tree/a/b/new.txt", check=0)
    expected["a/b/new.txt"] = hashlib.sha256(b"made inside\n").hexdigest()
    back = tmp_path / "back"
    back.mkdir()
    cli("cp", sandbox + ":/srv/in/tree", str(back), check=0)
    assert tree_digest(back / "tree") == expected
    assert os.stat(back / "tree/a/run.sh").st_mode & 0o777 == 0o755
    # Contents only, with "/.", into a new directory name.
    cli("cp", sandbox + ":/srv/in/tree/a/.", str(tmp_path / "only-a"), check=0)
    assert sorted(os.listdir(tmp_path / "only-a")) == ["b", "empty", "run.sh"]


def test_cp_single_files_and_streams(cli, sandbox, tmp_path):
    f = tmp_path / "one file.txt"
    f.write_bytes(b"single\x00file\n")
    cli("cp", str(f), sandbox + ":/tmp/renamed.txt", check=0)
    cli("cp", str(f), sandbox + ":/tmp/", check=0)
    p = cli("exec", sandbox, "sh", "-c", "cat /tmp/renamed.txt; cat '/tmp/one file.txt'", check=0)
    assert p.stdout == b"single\x00file\n" * 2
    cli("cp", sandbox + ":/etc/passwd", str(tmp_path / "passwd"), check=0)
    assert (tmp_path / "passwd").read_text().startswith("root:")
    # `-` is a tar stream on stdout and stdin.
    p = cli("cp", sandbox + ":/tmp/renamed.txt", "-", check=0)
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tar:
        member = tar.getmember("renamed.txt")
        assert tar.extractfile(member).read() == b"single\x00file\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("streamed/x.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"xyz"))
    cli("cp", "-", sandbox + ":/tmp/from-stdin", input=buf.getvalue(), check=0)
    assert cli("exec", sandbox, "cat", "/tmp/from-stdin/streamed/x.txt", check=0).out == "xyz"


def test_cp_errors(cli, sandbox, tmp_path):
    p = cli("cp", sandbox + ":/no/such/file", str(tmp_path / "x"))
    assert p.returncode == 1 and "/no/such/file" in p.err
    assert not (tmp_path / "x").exists()
    p = cli("cp", str(tmp_path / "missing"), sandbox + ":/tmp/")
    assert p.returncode == 1 and "missing" in p.err
    p = cli("cp", str(tmp_path), str(tmp_path / "y"))
    assert p.returncode == 2
    p = cli("cp", "sb-" + uuid.uuid4().hex[:12] + ":/etc/passwd", str(tmp_path / "z"))
    assert p.returncode == 1


def test_cp_collects_the_results_of_a_job_that_ended(cli, tmp_path):
    sid = cli.sandbox(command=["sh", "-c", "mkdir -p /out && echo 42 > /out/answer"])
    assert cli("wait", sid, check=0).out.strip() == "0"
    cli("cp", "-q", sid + ":/out", str(tmp_path), check=0)
    assert (tmp_path / "out" / "answer").read_text() == "42\n"
    p = cli("exec", sid, "true")
    assert p.returncode == 125 and "its files can still be read until" in p.err
    cli("rm", "-q", sid, check=0)
    p = cli("cp", sid + ":/out", str(tmp_path / "again"))
    assert p.returncode == 1 and "deleted" in p.err


# ---------------------------------------------------------------------------------------------
# images


def test_images_ls_and_pull(cli):
    listed = json.loads(cli("images", "ls", "-o", "json", check=0).out)
    refs = [i["reference"] for i in listed]
    assert "docker.io/library/busybox:latest" in refs, refs
    assert "docker.io/library/busybox:latest" in cli("images", "ls", "-q", check=0).out.split()
    table = cli("images", "ls", check=0).out.splitlines()
    assert table[0].split() == ["IMAGE", "DIGEST", "SIZE", "CREATED"]
    p = cli("images", "pull", BUSYBOX, check=0)
    assert re.search(r"^pulled docker\.io/library/busybox:latest \(sha256:[0-9a-f]{12}, ",
                     p.out, re.M), p.out
    digest = cli("images", "pull", "-q", BUSYBOX, check=0).out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    p = cli("images", "pull", "no-such-image-" + uuid.uuid4().hex[:8] + ":v1")
    assert p.returncode == 1
    assert "no-such-image-" in p.err


def test_run_shows_the_pull_of_a_missing_image(cli, registry):
    # A name the node does not have yet: sbx run pulls it first, its progress on stderr; the next
    # run of it shows nothing (no registry round trip either).
    name = f"{registry}/library/busybox:latest"
    cli("images", "rm", name, check=None)
    first = cli("run", "--rm", name, "echo", "ran", check=0)
    assert first.out == "ran\n"
    assert f"sbx: pulling {name}" in first.err, first.err
    assert re.search(r"^sha256:[0-9a-f]{12}: (cached|done|downloading)", first.err, re.M), first.err
    again = cli("run", "--rm", name, "echo", "ran", check=0)
    assert "pulling" not in again.err, again.err
    # A pull that fails says why, before any sandbox is made.
    missing = cli("run", "--rm", "no-such-image-" + uuid.uuid4().hex[:8] + ":v1", "true")
    assert missing.returncode == 125 and "no-such-image-" in missing.err, missing.err
    cli("images", "rm", name, check=0)


def registry_blob(registry, repo, digest):
    return urllib.request.urlopen(f"http://{registry}/v2/{repo}/blobs/{digest}").read()


def busybox_layer(registry):
    """busybox's (single) layer, fetched from the local registry for this platform."""
    accept = ", ".join(["application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"])

    def manifest(ref):
        req = urllib.request.Request(f"http://{registry}/v2/library/busybox/manifests/{ref}",
                                     headers={"Accept": accept})
        return json.loads(urllib.request.urlopen(req).read())

    m = manifest("latest")
    if "manifests" in m:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        m = manifest(next(d["digest"] for d in m["manifests"]
                          if d.get("platform", {}).get("architecture") == arch))
    assert len(m["layers"]) == 1
    return registry_blob(registry, "library/busybox", m["layers"][0]["digest"])


def docker_save_archive(layer_gz, tag):
    """A `docker save` archive of one image with busybox's layer and a config of our own."""
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer_gz)).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sh", "-c", "echo loaded image; echo $MARK"], "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "MARK=from-config"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": ["layer0/layer.tar.gz"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((config_name, config), ("layer0/layer.tar.gz", layer_gz),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_images_load_run_and_rm(cli, registry, tmp_path):
    name = "e2e/loaded-" + uuid.uuid4().hex[:8]
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_save_archive(busybox_layer(registry), name + ":v1"))
    p = cli("images", "load", "-i", str(archive), check=0)
    assert re.fullmatch(rf"loaded docker\.io/{name}:v1 \(sha256:[0-9a-f]{{12}}\)\n", p.out), p.out
    assert f"docker.io/{name}:v1" in cli("images", "ls", "-q", check=0).out.split()
    # The loaded image runs, with its own command and environment.
    p = cli("run", "--rm", name + ":v1", check=0)
    assert p.out == "loaded image\nfrom-config\n"
    # Loading from stdin works the same.
    p = cli("images", "load", input=archive.read_bytes(), check=0)
    assert f"{name}:v1" in p.out
    p = cli("images", "rm", name + ":v1", check=0)
    assert p.out.startswith(f"removed {name}:v1 (")
    assert f"docker.io/{name}:v1" not in cli("images", "ls", "-q", check=0).out.split()
    p = cli("images", "rm", name + ":v1")
    assert p.returncode == 1 and name in p.err
    p = cli("images", "load", input=b"this is not a tar archive")
    assert p.returncode == 1 and p.err.startswith("sbx: ")
    p = cli("images", "load", "-i", str(tmp_path / "absent.tar"))
    assert p.returncode == 1 and "absent.tar" in p.err


# ---------------------------------------------------------------------------------------------
# doctor, version, completion, help


def test_doctor(cli, daemon, registry):
    p = cli("doctor", "--config", str(daemon.config), check=0)
    assert "This host can run sandboxes." in p.out
    assert re.search(r"^ok\s+daemon\s+sbxd ", p.out, re.M), p.out
    findings = json.loads(cli("doctor", "--config", str(daemon.config), "-o", "json",
                              check=0).out)
    by_name = {f["name"]: f for f in findings}
    assert by_name["daemon"]["verdict"] == "ok"
    assert by_name["registry"]["verdict"] == "ok"
    assert registry in by_name["registry"]["detail"]
    assert all(f["verdict"] != "FAIL" for f in findings), findings
    # The running daemon says which mirrors it uses: no configuration file needed, and no advice
    # to configure what it already has.
    p = cli("doctor", "--config", "/nonexistent/sbxd.json", check=0)
    assert re.search(rf"^ok\s+registry\s+http://{re.escape(registry)}/v2/ answered", p.out, re.M), p.out
    assert "registry-1.docker.io" not in p.out, p.out
    assert f"sbxd's own mirrors (http://{registry})" in p.out, p.out


def test_version(cli, daemon):
    p = cli("version", check=0)
    lines = p.out.splitlines()
    assert re.fullmatch(r"sbx \d+\.\d+\.\d+", lines[0])
    assert lines[1].startswith("sbxd ") and daemon.socket in lines[1]
    assert cli("--version", check=0).out.strip() == lines[0]
    down = cli.env(SBX_BASE_URL="unix:///nonexistent/sbxd.sock")
    assert cli("version", "--client", env=down, check=0).out == lines[0] + "\n"


COMMANDS = ["run", "exec", "sh", "ls", "get", "stats", "logs", "stop", "kill", "wait", "rm",
            "extend", "purge", "cp", "images", "doctor", "version", "completion"]


def test_completion(cli):
    script = cli("completion", "bash", check=0).out
    assert "complete -F _sbx sbx" in script
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", script), command
    # bash itself completes with it: a command, a subcommand, a flag.
    probe = ('source /dev/stdin; complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
             'COMPREPLY=(); _sbx; echo "${COMPREPLY[*]}"; }; '
             'complete_words sbx comp; complete_words sbx images pu; complete_words sbx logs --ta')
    bash = spawn(["bash", "-c", probe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    out, err = bash.communicate(script, timeout=30)
    forget(bash)
    assert bash.returncode == 0, err
    assert out.splitlines() == ["completion", "pull", "--tail"], out + err
    assert "compinit" in cli("completion", "zsh", check=0).out
    assert cli("completion", "tcsh").returncode == 2


def completion_env(cli):
    """sbx's environment with sbx on PATH, as the scripts call it for ids and images."""
    env = cli.env()
    env["PATH"] = str(Path(cli.binary).parent) + ":" + env.get("PATH", "/usr/bin:/bin")
    return env


def test_completion_offers_short_image_names(cli):
    cli("images", "pull", "-q", BUSYBOX, check=0)
    script = cli("completion", "bash", check=0).out
    probe = ('source /dev/stdin; complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
             'COMPREPLY=(); _sbx; echo "${COMPREPLY[*]}"; }; '
             'complete_words sbx run busy; complete_words sbx run docker.io/library/busy; '
             'complete_words sbx run --network n')
    bash = spawn(["bash", "-c", probe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True, env=completion_env(cli))
    out, err = bash.communicate(script, timeout=60)
    forget(bash)
    assert bash.returncode == 0, err
    short, full, network = out.splitlines()
    assert "busybox:latest" in short.split(), out
    assert "docker.io/library/busybox:latest" in full.split(), out
    assert network == "none"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_completion_fish(cli, sandbox, tmp_path):
    cli("images", "pull", "-q", BUSYBOX, check=0)
    script = tmp_path / "sbx.fish"
    script.write_text(cli("completion", "fish", check=0).out)

    def complete(line):
        p = spawn(["fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                  env=completion_env(cli))
        out, err = p.communicate(timeout=60)
        forget(p)
        assert p.returncode == 0, err
        return [line.split("\t")[0] for line in out.splitlines()]

    assert complete("sbx comp") == ["completion"]
    assert complete("sbx images pu") == ["pull"]
    assert "--tail" in complete("sbx logs --ta")
    assert complete("sbx completion f") == ["fish"]
    assert complete("sbx run -o j") == ["json"]
    assert "busybox:latest" in complete("sbx run busy")
    assert "docker.io/library/busybox:latest" in complete("sbx run docker.io/library/busy")
    assert sandbox in complete(f"sbx exec {sandbox[:6]}")
    # After the sandbox id comes the command: commands of this machine, not ids.
    assert sandbox not in complete(f"sbx exec {sandbox} ")


@pytest.mark.parametrize("command", [[c] for c in COMMANDS] + [
    ["images", "pull"], ["images", "ls"], ["images", "rm"], ["images", "load"], []])
def test_help_on_every_command(cli, command):
    p = cli(*command, "--help", check=0)
    assert "Usage" in p.out or "usage" in p.out.lower(), p.out
    # Help needs no daemon.
    down = cli.env(SBX_BASE_URL="unix:///nonexistent/sbxd.sock")
    assert cli(*command, "--help", env=down).returncode == 0


# ---------------------------------------------------------------------------------------------
# Errors users meet


def test_daemon_down(cli, tmp_path):
    url = "unix://" + str(tmp_path / "sbxd.sock")
    down = cli.env(SBX_BASE_URL=url)
    for args in (["ls"], ["get", "sb-x"], ["stop", "sb-x"], ["images", "ls"], ["version"]):
        p = cli(*args, env=down, timeout=30)
        assert p.returncode == 3, (args, p.returncode, p.err)
        assert url in p.err, p.err
        assert "sbxd" in p.err
    # --url wins over the environment.
    p = cli("--url", url, "ls", timeout=30)
    assert p.returncode == 3 and url in p.err
    # run and exec keep 125 for their own failures, so a command's own 3 stays unambiguous.
    p = cli("run", "--rm", BUSYBOX, "true", env=down, timeout=30)
    assert p.returncode == 125 and url in p.err
    p = cli("exec", "sb-x", "true", env=down, timeout=30)
    assert p.returncode == 125 and url in p.err
    p = cli("doctor", env=down, timeout=60)
    assert p.returncode == 1 and url in p.out
    p = cli("ls", env=cli.env(SBX_BASE_URL="ftp://example"))
    assert p.returncode == 2 and "ftp://example" in p.err


def test_unknown_sandbox_id(cli):
    sid = "sb-" + uuid.uuid4().hex[:12]
    for args in (["get", sid], ["logs", sid], ["stop", sid], ["rm", sid]):
        p = cli(*args)
        assert p.returncode == 1, (args, p.returncode, p.err)
        assert sid in p.err, p.err
        assert "sbx ls --all" in p.err
    p = cli("exec", sid, "true")
    assert p.returncode == 125 and sid in p.err
    p = cli("sh", sid)
    assert p.returncode == 125 and sid in p.err


@pytest.mark.parametrize("args, words", [
    (["run", "--memory", "lots", BUSYBOX, "true"], ["--memory", "lots"]),
    (["run", "--cpu", "fast", BUSYBOX, "true"], ["--cpu", "fast"]),
    (["run", "--lifetime", "forever", BUSYBOX, "true"], ["forever"]),
    (["run", "--network", "bridge", BUSYBOX, "true"], ["--network", "bridge"]),
    (["run", "-e", "=x", BUSYBOX, "true"], ["=x"]),
    (["run", "-d", "--rm", BUSYBOX], ["--rm"]),
    (["run", "--no-such-flag", BUSYBOX], ["--no-such-flag"]),
    (["run"], ["IMAGE"]),
    (["exec", "--timeout", "soon", "sb-x", "true"], ["soon"]),
    (["stop", "--grace", "-1", "sb-x"], ["grace"]),
    (["frobnicate"], ["frobnicate"]),
    ([], []),
])
def test_bad_flag_values_are_usage_errors(cli, args, words):
    p = cli(*args)
    assert p.returncode == 2, (p.returncode, p.err)
    assert p.err.startswith("sbx: "), p.err
    for w in words:
        assert w in p.err, p.err
    # Nothing was created on the way.
    assert p.out == ""


# ---------------------------------------------------------------------------------------------
# docker parity: names, id prefixes, several ids, wait, kill, JSON everywhere


def test_names_and_unique_id_prefixes(cli):
    name = "web-" + uuid.uuid4().hex[:8]
    sid = cli.sandbox("--name", name)
    other = cli.sandbox()
    try:
        assert cli.get(name)["id"] == sid
        assert cli.get(name)["name"] == name
        row = next(line for line in cli("ls", check=0).out.splitlines() if line.startswith(sid))
        assert name in row.split()
        assert cli("ls", check=0).out.splitlines()[0].split()[:4] == ["SANDBOX", "ID", "NAME",
                                                                      "STATUS"]
        # A name in use is refused before anything is created.
        p = cli("run", "-d", "--name", name, BUSYBOX)
        assert p.returncode == 1 and name in p.err and sid in p.err and p.out == ""
        named = [s for s in json.loads(cli("ls", "-o", "json", check=0).out) if s["name"] == name]
        assert [s["id"] for s in named] == [sid]
        assert cli("run", "-d", "--name", "-bad name", BUSYBOX).returncode == 2
        # Names and unique prefixes work wherever an id does.
        assert cli("exec", name, "echo", "by-name", check=0).out == "by-name\n"
        assert cli("exec", sid[:-4], "echo", "by-prefix", check=0).out == "by-prefix\n"
        assert cli.get(other[:-4])["id"] == other
        # A prefix of several ids is an error naming them.
        common = os.path.commonprefix([sid, other])
        p = cli("get", common)
        assert p.returncode == 1 and "ambiguous" in p.err and sid in p.err and other in p.err
        # Once the sandbox has ended its name is free again.
        assert cli("stop", name, check=0).out == sid + "\n"
        again = cli.sandbox("--name", name)
        assert cli.get(name)["id"] == again
        cli("rm", "-q", name, check=0)
    finally:
        cli("rm", "-q", "--missing-ok", sid, other)


def test_get_several_ids(cli):
    a, b = cli.sandbox(), cli.sandbox()
    try:
        out = json.loads(cli("get", "-o", "json", a, b, check=0).out)
        assert [s["id"] for s in out] == [a, b]
        p = cli("get", a, b, check=0)
        assert a in p.out and b in p.out and p.out.count("Status:") == 2
        # One unknown id fails the command; the others are still shown.
        missing = "sb-" + uuid.uuid4().hex[:12]
        p = cli("get", a, missing)
        assert p.returncode == 1 and missing in p.err and a in p.out
    finally:
        cli("rm", "-q", a, b)


def test_wait_prints_exit_codes(cli):
    slow = cli.sandbox(command=["sh", "-c", "sleep 1; exit 3"])
    quick = cli.sandbox(command=["true"])
    p = cli("wait", slow, quick, check=0)
    assert p.out == "3\n0\n"
    assert cli.get(slow)["state"] in ENDED
    out = json.loads(cli("wait", "-o", "json", slow, check=0).out)
    assert out[0]["id"] == slow and out[0]["exit_code"] == 3
    missing = "sb-" + uuid.uuid4().hex[:12]
    p = cli("wait", missing)
    assert p.returncode == 1 and missing in p.err


def test_kill_has_no_grace_period(cli):
    # The main process would take a minute to honour SIGTERM: kill does not wait for it.
    sid = cli.sandbox(command=["sh", "-c", 'trap "sleep 60; exit 0" TERM; sleep 100000 & wait'])
    start = time.monotonic()
    p = cli("kill", sid, check=0)
    assert p.out == sid + "\n"
    assert time.monotonic() - start < 30
    sb = cli.get(sid)
    assert sb["state"] in ENDED and sb["exit_code"] != 0
    p = cli("kill", "-s", "TERM", sid)
    assert p.returncode == 2 and "--signal" in p.err


def test_purge_waits_like_stop(cli):
    tag = "purge-wait-" + uuid.uuid4().hex[:8]
    # SIGTERM makes the main process take two seconds to end.
    slow = ["sh", "-c", 'trap "sleep 2; exit 0" TERM; sleep 100000 & wait']
    ours = [cli.sandbox("--tag", tag, command=slow) for _ in range(2)]
    p = cli("purge", "--tag", tag, check=0)
    assert p.out == "stopped 2 sandboxes\n"
    # Ended when purge returns, without polling.
    assert all(cli.get(s)["state"] in ENDED for s in ours)
    again = cli.sandbox("--tag", tag, command=slow)
    out = json.loads(cli("purge", "--tag", tag, "--no-wait", "-o", "json", check=0).out)
    assert out == {"count": 1, "dry_run": False, "failed_ids": []}
    cli.wait_state(again, ENDED)


def test_json_output_on_every_command(cli, tmp_path):
    created = json.loads(cli("run", "-d", "-o", "json", BUSYBOX, *KEEPALIVE, check=0).out)
    sid = created["id"]
    try:
        assert created["state"] == "RUNNING" and created["image"].endswith("busybox:latest")
        extended = json.loads(cli("extend", "-o", "json", sid, "1h", check=0).out)
        assert extended["id"] == sid and extended["expire_time"].endswith("Z")
        (tmp_path / "f").write_bytes(b"12345")
        copied = json.loads(cli("cp", "-o", "json", str(tmp_path / "f"), sid + ":/tmp/f",
                                check=0).out)
        assert copied == {"files": 1, "bytes": 5}
        stopped = json.loads(cli("stop", "-o", "json", sid, check=0).out)
        assert [s["id"] for s in stopped] == [sid] and stopped[0]["state"] in ENDED
        removed = json.loads(cli("rm", "-o", "json", "--missing-ok", "sb-" + uuid.uuid4().hex[:12],
                                 check=0).out)
        assert removed == []
    finally:
        cli("rm", "-q", "--missing-ok", sid)
    other = cli.sandbox()
    removed = json.loads(cli("rm", "-o", "json", other, check=0).out)
    assert [s["id"] for s in removed] == [other]
    version = json.loads(cli("version", "-o", "json", check=0).out)
    assert version["client"]["version"] and version["server"]["version"]
    assert version["server"]["url"] == cli.url
    assert json.loads(cli("version", "--client", "-o", "json", check=0).out).keys() == {"client"}
    pulled = json.loads(cli("images", "pull", "-o", "json", BUSYBOX, check=0).out)
    assert pulled["reference"] == "docker.io/library/busybox:latest"
    p = cli("images", "rm", "-o", "json", "no-such-image:" + uuid.uuid4().hex[:8])
    assert p.returncode == 1 and p.out.strip() == "[]"


@pytest.mark.parametrize("command, usage", [
    (["run"], "Usage: sbx run [OPTIONS] IMAGE [CMD [ARG...]]"),
    (["exec"], "Usage: sbx exec [OPTIONS] SANDBOX_ID COMMAND [ARG...]"),
    (["get"], "Usage: sbx get [OPTIONS] SANDBOX_ID..."),
    (["wait"], "Usage: sbx wait [OPTIONS] SANDBOX_ID..."),
    (["images"], "Usage: sbx images [OPTIONS] COMMAND"),
])
def test_usage_lines_name_the_command(cli, command, usage):
    assert usage in cli(*command, "--help", check=0).out.splitlines()


def test_cp_does_not_make_missing_parents(cli, sandbox, tmp_path):
    target = tmp_path / "no" / "such" / "passwd"
    p = cli("cp", sandbox + ":/etc/passwd", str(target))
    assert p.returncode == 1 and str(tmp_path / "no" / "such") in p.err, p.err
    assert not (tmp_path / "no").exists()
    # The destination itself, named as a directory, is still made when its parent exists.
    cli("cp", sandbox + ":/etc/passwd", str(tmp_path / "new") + "/", check=0)
    assert (tmp_path / "new" / "passwd").is_file()


def test_errors_are_in_words(cli, sandbox, tmp_path):
    p = cli("cp", sandbox + ":/nope", str(tmp_path / "x"))
    assert p.returncode == 1
    assert "/nope: no such file or directory" in p.err, p.err
    assert "ENOENT" not in p.err and "openat2" not in p.err, p.err


def test_cp_shows_progress_on_a_terminal(cli, sandbox, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(1 << 20) * 24)
    pty = Pty([cli.binary, "cp", str(big), sandbox + ":/tmp/big"], cli.env())
    try:
        pty.read_until(rb"copied 1 file", timeout=120)
        assert pty.wait() == 0
    finally:
        pty.close()
    assert re.search(rb"copying: [0-9.]+ [KMG]i?B", pty.screen), pty.screen[-500:]
    # Not on a pipe, and not for small copies.
    p = cli("cp", str(big), sandbox + ":/tmp/big2", check=0)
    assert b"copying" not in p.stderr


def test_pull_shows_progress_bars_on_a_terminal(cli):
    """Removes busybox and pulls it back with stdout on a terminal: one line per layer, drawn
    in place. Last in the module, so no running sandbox holds the image."""
    leftovers = cli("ls", "-q", check=0).out.split()
    if leftovers:
        cli("rm", "-q", *leftovers, check=0)
        for sid in leftovers:
            cli.wait_state(sid, ENDED)
    cli("images", "rm", BUSYBOX, check=0)
    pty = Pty([cli.binary, "images", "pull", BUSYBOX], cli.env())
    try:
        pty.read_until(rb"pulled docker\.io/library/busybox:latest", timeout=120)
        assert pty.wait() == 0
    finally:
        pty.close()
    screen = pty.screen
    assert b"\x1b[2K" in screen
    assert re.search(rb"sha256:[0-9a-f]{12}\s+done", screen), screen[-2000:]
    assert re.search(rb"\[=+>?\s*\]", screen) or b"done" in screen
    assert "docker.io/library/busybox:latest" in cli("images", "ls", "-q", check=0).out.split()
