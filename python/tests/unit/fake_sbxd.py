"""An in-process fake sbxd: the coreweave.sandbox.v1 SandboxService over a real gRPC server.

It keeps sandboxes in memory and "runs" commands with a tiny interpreter of fixed behaviours
(``echo``, ``cat``, ``sleep``, ``sh -c`` for the SDK's own scripts, ``python --version`` ...).
Errors carry real AIP-193 trailers. Everything the tests assert on is recorded: requests,
cancelled exec streams, killed processes.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import posixpath
import shlex
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import grpc
import grpc.aio
from google.protobuf import any_pb2, timestamp_pb2

from sbx import _files, _loop
from sbx._proto import (discovery_pb2, discovery_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc, sbx_pb2,
                        sbx_pb2_grpc, sbx_rpc_pb2)

S = sandbox_pb2
PYTHON_DIR = Path(__file__).resolve().parents[2]
SRC = PYTHON_DIR / "src"
DOMAIN = "cwsandbox.com"
TERMINAL = {S.STATE_COMPLETED, S.STATE_FAILED, S.STATE_TERMINATED}
KEEPALIVE_MARK = "sleep infinity"


def _timestamp(at: float | None = None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int((time.time() if at is None else at) * 1e9))
    return ts


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, *, reason: str | None = None,
                 metadata: dict[str, str] | None = None,
                 violations: list[tuple[str, str]] | None = None,
                 retry_seconds: float | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.metadata, self.violations, self.retry_seconds = metadata or {}, violations, retry_seconds

    def trailer(self) -> bytes:
        status = sbx_rpc_pb2.Status(code=self.code.value[0], message=self.message)
        if self.reason:
            info = sbx_rpc_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
            status.details.append(any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo",
                                              value=info.SerializeToString()))
        if self.violations:
            bad = sbx_rpc_pb2.BadRequest(field_violations=[
                sbx_rpc_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations])
            status.details.append(any_pb2.Any(type_url="type.googleapis.com/google.rpc.BadRequest",
                                              value=bad.SerializeToString()))
        if self.retry_seconds is not None:
            retry = sbx_rpc_pb2.RetryInfo()
            retry.retry_delay.FromNanoseconds(int(self.retry_seconds * 1e9))
            status.details.append(any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo",
                                              value=retry.SerializeToString()))
        return status.SerializeToString()


async def _abort(context: grpc.aio.ServicerContext, error: Abort) -> None:
    await context.abort(error.code, error.message,
                        trailing_metadata=(("grpc-status-details-bin", error.trailer()),))


@dataclass
class FakeProcess:
    pid: int
    argv: list[str]
    killed: bool = False


@dataclass
class FakeSandbox:
    sandbox_id: str
    spec: Any
    request_id: str
    state: int = S.STATE_PENDING
    reason: str = ""
    exit_code: int | None = None
    create_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)
    readonly: set[str] = field(default_factory=set)
    logs: list[tuple[float, bytes]] = field(default_factory=list)
    processes: dict[int, FakeProcess] = field(default_factory=dict)
    main_task: asyncio.Task | None = None
    stop_grace: int | None = None
    logs_changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def container(self) -> Any:
        return self.spec.containers[0]

    @property
    def env(self) -> dict[str, str]:
        return dict(self.container.environment_variables)

    @property
    def tags(self) -> list[str]:
        return list(self.spec.tags)

    def to_proto(self) -> Any:
        status = S.SandboxStatus(state=self.state, state_reason=self.reason,
                                 create_time=_timestamp(self.create_time), runner_id="fake-runner")
        if self.start_time:
            status.start_time.CopyFrom(_timestamp(self.start_time))
        if self.end_time:
            status.end_time.CopyFrom(_timestamp(self.end_time))
        if self.exit_code is not None and self.state in TERMINAL:
            status.exit_code = self.exit_code
        if self.container.HasField("resource_requirements"):
            status.effective_resource_requirements.CopyFrom(self.container.resource_requirements)
        for rule in self.spec.network.egress:
            status.effective_egress.append(rule)
        return S.Sandbox(sandbox_id=self.sandbox_id, spec=self.spec, status=status)


class ExecContext:
    """What a running command can do: write output, read stdin, see its sandbox."""

    def __init__(self, sandbox: FakeSandbox, write_out: Callable[[bytes], Awaitable[None]],
                 write_err: Callable[[bytes], Awaitable[None]],
                 read_stdin: Callable[[], Awaitable[bytes | None]] | None, cwd: str = "/") -> None:
        self.sandbox, self.write_out, self.write_err = sandbox, write_out, write_err
        self.read_stdin, self.cwd = read_stdin, cwd

    def path(self, p: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, p))


class StreamErrorExit(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NoExit(Exception):
    pass


class FakeSbxd(sandbox_pb2_grpc.SandboxServiceServicer):
    def __init__(self) -> None:
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.calls: list[tuple[str, Any]] = []
        self.metadata: list[dict[str, str]] = []
        self.cancelled_execs: list[list[str]] = []
        self.exec_commands: list[list[str]] = []
        self.stdin_frame_sizes: list[int] = []
        self.last_resizes: list[tuple[int, int]] = []
        self.start_delay = 0.02
        # What a PENDING sandbox says it waits for, as sbxd's admission words it.
        self.pending_reason = ""
        self.stop_delay = 0.02
        self.unary_file_limit = 1 << 20
        self.omit_file_size = False
        self.page_size = 3
        self.api_key: str | None = None
        self.max_sandboxes: int | None = None
        self.drop_terminal_records = False
        self.tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self._pids = itertools.count(100)

    # -- helpers ---------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _record(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.calls.append((method, request))
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        if self.api_key is not None:
            if self.metadata[-1].get("authorization") != f"Bearer {self.api_key}":
                raise Abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key")

    def calls_of(self, method: str) -> list[Any]:
        return [req for name, req in self.calls if name == method]

    def _get(self, sandbox_id: str) -> FakeSandbox:
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"sandbox {sandbox_id} not found",
                        reason="CWSANDBOX_SANDBOX_NOT_FOUND", metadata={"sandbox_id": sandbox_id})
        return sb

    def _running(self, sandbox_id: str) -> FakeSandbox:
        sb = self._get(sandbox_id)
        if sb.state not in (S.STATE_RUNNING, S.STATE_PAUSED):
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, f"sandbox {sandbox_id} is not running")
        return sb

    def _finish(self, sb: FakeSandbox, state: int, reason: str, exit_code: int | None) -> None:
        if sb.state in TERMINAL:
            return
        sb.state, sb.reason, sb.exit_code, sb.end_time = state, reason, exit_code, time.time()
        for proc in sb.processes.values():
            proc.killed = True
        sb.logs_changed.set()

    async def _lifecycle(self, sb: FakeSandbox) -> None:
        sb.reason = self.pending_reason
        await asyncio.sleep(self.start_delay)
        sb.reason = ""
        sb.state = S.STATE_CREATING
        await asyncio.sleep(self.start_delay)
        image = sb.container.image
        if image.startswith("missing"):
            self._finish(sb, S.STATE_FAILED, f"IMAGE_PULL_FAILED: cannot pull {image}", None)
            return
        sb.state, sb.start_time = S.STATE_RUNNING, time.time()
        argv = [sb.container.command, *sb.container.args]

        async def log(data: bytes) -> None:
            sb.logs.append((time.time(), data))
            sb.logs_changed.set()

        try:
            code = await self.interpret(argv, ExecContext(sb, log, log, None))
        except asyncio.CancelledError:
            return
        if code == 0:
            self._finish(sb, S.STATE_COMPLETED, "EXITED: main process exited with code 0", 0)
        else:
            self._finish(sb, S.STATE_FAILED, f"EXITED: main process exited with code {code}", code)

    # -- the interpreter -------------------------------------------------------------------------

    async def interpret(self, argv: list[str], ctx: ExecContext) -> int:
        name, args = posixpath.basename(argv[0]), argv[1:]
        out, err = ctx.write_out, ctx.write_err
        if name == "echo":
            await out((" ".join(args) + "\n").encode())
            return 0
        if name in ("true",):
            return 0
        if name in ("false",):
            return 1
        if name == "pwd":
            await out((ctx.cwd + "\n").encode())
            return 0
        if name == "env":
            for k, v in sorted(ctx.sandbox.env.items()):
                await out(f"{k}={v}\n".encode())
            return 0
        if name == "ps":
            for proc in ctx.sandbox.processes.values():
                await out((" ".join(proc.argv) + "\n").encode())
            return 0
        if name == "sleep":
            await asyncio.sleep(float("inf") if args[0] == "infinity" else float(args[0]))
            return 0
        if name == "cat":
            paths = [a for a in args if a != "--"]
            if not paths:
                assert ctx.read_stdin is not None
                while (data := await ctx.read_stdin()) is not None:
                    await out(data)
                return 0
            content = ctx.sandbox.files.get(ctx.path(paths[0]))
            if content is None:
                await err(f"cat: {paths[0]}: No such file or directory\n".encode())
                return 1
            await out(content)
            return 0
        if name == "emit-stderr":
            await err((" ".join(args) + "\n").encode())
            return 0
        if name == "exit":
            return int(args[0])
        if name == "chunks":
            for i in range(int(args[0])):
                await out(f"chunk {i}\n".encode())
                await asyncio.sleep(float(args[1]))
            return 0
        if name == "bytes":
            await out(bytes(i % 251 for i in range(int(args[0]))))
            return 0
        if name == "stream-error":
            raise StreamErrorExit(args[0])
        if name == "no-exit":
            raise NoExit()
        if name in ("python", "python3"):
            return await self._python(args, ctx)
        if name in ("sh", "bash"):
            return await self._shell(args, ctx)
        await err(f"{name}: command not found\n".encode())
        return 127

    async def _python(self, args: list[str], ctx: ExecContext) -> int:
        if args == ["--version"]:
            await ctx.write_out(b"Python 3.11.9\n")
            return 0
        if args and args[0] == "-c":
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", args[1], stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            try:
                stdout, stderr = await proc.communicate()
            except asyncio.CancelledError:
                proc.kill()
                raise
            await ctx.write_out(stdout)
            if stderr:
                await ctx.write_err(stderr)
            return proc.returncode or 0
        script = ctx.path(args[0])
        if script in ctx.sandbox.files:
            await ctx.write_out(b"training done\n")
            return 0
        await ctx.write_err(f"python: can't open file '{script}': [Errno 2] No such file or directory\n".encode())
        return 2

    async def _shell(self, args: list[str], ctx: ExecContext) -> int:
        assert args[0] == "-c", args
        script, params = args[1], args[3:]
        files = ctx.sandbox.files
        if script == _files.READ_SCRIPT:
            path = ctx.path(params[0])
            if self._is_dir(ctx.sandbox, path):
                await ctx.write_err(f"{path}: is a directory\n".encode())
                return 3
            if path not in files:
                await ctx.write_err(f"{path}: no such file\n".encode())
                return 2
            data = files[path]
            for i in range(0, len(data), 64 * 1024):
                await ctx.write_out(data[i:i + 64 * 1024])
            return 0
        if script == _files.WRITE_SCRIPT:
            path = ctx.path(params[0])
            if self._is_dir(ctx.sandbox, path):
                return 3
            if path in ctx.sandbox.readonly:
                await ctx.write_err(f"mv: cannot move to '{path}': Read-only file system\n".encode())
                return 1
            buf = bytearray()
            assert ctx.read_stdin is not None
            while (data := await ctx.read_stdin()) is not None:
                buf.extend(data)
            files[path] = bytes(buf)
            return 0
        if KEEPALIVE_MARK in script:
            await asyncio.sleep(float("inf"))
        if script.startswith("cd "):
            words = shlex.split(script)
            assert words[2:4] == ["&&", "exec"], words
            target = ctx.path(words[1])
            if not self._is_dir(ctx.sandbox, target):
                await ctx.write_err(f"sh: cd: can't cd to {words[1]}\n".encode())
                return 2
            inner = ExecContext(ctx.sandbox, ctx.write_out, ctx.write_err, ctx.read_stdin, target)
            return await self.interpret(words[4:], inner)
        code = 0
        for part in script.split(";"):
            words = shlex.split(part)
            if not words:
                continue
            if words[-1] == ">&2":
                inner = ExecContext(ctx.sandbox, ctx.write_err, ctx.write_err, ctx.read_stdin, ctx.cwd)
                words = words[:-1]
            else:
                inner = ctx
            if words[0] == "exit":
                return int(words[1])
            code = await self.interpret(words, inner)
        return code

    @staticmethod
    def _is_dir(sb: FakeSandbox, path: str) -> bool:
        if path == "/" or path in ("/tmp", "/srv", "/home"):
            return True
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in sb.files)

    # -- unary RPCs ------------------------------------------------------------------------------

    async def _unary(self, method: str, request: Any, context: Any, body: Callable[[], Any]) -> Any:
        try:
            self._record(method, request, context)
            result = body()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        except Abort as error:
            await _abort(context, error)

    async def CreateSandbox(self, request, context):
        def body():
            for sb in self.sandboxes.values():
                if request.request_id and sb.request_id == request.request_id:
                    return sb.to_proto()
            spec = request.sandbox.spec
            if not spec.containers or not spec.containers[0].image:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid sandbox",
                            violations=[("sandbox.spec.containers[0].image", "must not be empty")])
            image = spec.containers[0].image
            if image.startswith("invalid"):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid image reference {image!r}",
                            reason="CWSANDBOX_INVALID_REQUEST",
                            violations=[("sandbox.spec.containers[0].image", "invalid reference")])
            for store in spec.containers[0].secret_stores:
                for secret in store.secrets:
                    if secret.path.startswith("MISSING"):
                        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"secret {secret.path} not found",
                                    violations=[("sandbox.spec.containers[0].secret_stores", f"secret {secret.path} not found")])
            live = [s for s in self.sandboxes.values() if s.state not in TERMINAL]
            if self.max_sandboxes is not None and len(live) >= self.max_sandboxes:
                raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "sandbox quota exhausted",
                            reason="CWSANDBOX_QUOTA_EXCEEDED", retry_seconds=1.5)
            sid = f"sbx-{next(self._ids):04d}"
            sb = FakeSandbox(sandbox_id=sid, spec=spec, request_id=request.request_id)
            for mount in spec.containers[0].files:
                path = posixpath.normpath(posixpath.join("/", mount.path))
                sb.files[path] = mount.content
                sb.readonly.add(path)
            self.sandboxes[sid] = sb
            sb.main_task = self._spawn(self._lifecycle(sb))
            return sb.to_proto()
        return await self._unary("CreateSandbox", request, context, body)

    async def GetSandbox(self, request, context):
        return await self._unary("GetSandbox", request, context,
                                 lambda: self._get(request.sandbox_id).to_proto())

    async def ListSandboxes(self, request, context):
        def body():
            items = []
            for sb in self.sandboxes.values():
                if not all(t in sb.tags for t in request.tags):
                    continue
                if request.state and sb.state != request.state:
                    continue
                if sb.state in TERMINAL and not request.show_terminated:
                    continue
                items.append(sb)
            start = int(request.page_token or 0)
            page = items[start:start + self.page_size]
            token = str(start + self.page_size) if start + self.page_size < len(items) else ""
            return S.ListSandboxesResponse(sandboxes=[s.to_proto() for s in page], next_page_token=token)
        return await self._unary("ListSandboxes", request, context, body)

    async def DeleteSandbox(self, request, context):
        async def body():
            sb = self.sandboxes.get(request.sandbox_id)
            if sb is None:
                if request.allow_missing:
                    return S.DeleteSandboxResponse()
                self._get(request.sandbox_id)
            if sb.state in TERMINAL:
                return S.DeleteSandboxResponse(sandbox=sb.to_proto())
            sb.stop_grace = request.grace_period_seconds
            keepalive = KEEPALIVE_MARK in " ".join(sb.container.args)
            sb.state = S.STATE_TERMINATING
            if sb.main_task:
                sb.main_task.cancel()

            async def finish():
                await asyncio.sleep(self.stop_delay)
                self._finish(sb, S.STATE_TERMINATED, "USER_STOPPED: stopped by the user",
                             0 if keepalive else 143)
                if self.drop_terminal_records:
                    self.sandboxes.pop(sb.sandbox_id, None)
            self._spawn(finish())
            return S.DeleteSandboxResponse(sandbox=sb.to_proto())
        return await self._unary("DeleteSandbox", request, context, body)

    async def ReadFile(self, request, context):
        def body():
            sb = self._running(request.sandbox_id)
            path = posixpath.normpath(posixpath.join("/", request.path))
            if self._is_dir(sb, path):
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION, f"{request.path} is a directory",
                            reason="CWSANDBOX_FILE_IS_DIRECTORY", metadata={"filepath": request.path})
            if path not in sb.files:
                raise Abort(grpc.StatusCode.NOT_FOUND, f"{request.path}: no such file",
                            reason="CWSANDBOX_FILE_NOT_FOUND", metadata={"filepath": request.path})
            data = sb.files[path]
            if len(data) > self.unary_file_limit:
                metadata = {"filepath": request.path, "max_size_bytes": str(self.unary_file_limit)}
                if not self.omit_file_size:
                    metadata["size_bytes"] = str(len(data))
                raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "file too large for ReadFile",
                            reason="CWSANDBOX_FILE_TOO_LARGE", metadata=metadata)
            return S.ReadFileResponse(content=data)
        return await self._unary("ReadFile", request, context, body)

    async def WriteFile(self, request, context):
        def body():
            sb = self._running(request.sandbox_id)
            path = posixpath.normpath(posixpath.join("/", request.path))
            if len(request.content) > self.unary_file_limit:
                raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "file too large for WriteFile",
                            reason="CWSANDBOX_FILE_TOO_LARGE",
                            metadata={"filepath": request.path, "max_size_bytes": str(self.unary_file_limit)})
            if path in sb.readonly:
                raise Abort(grpc.StatusCode.PERMISSION_DENIED, f"{request.path} is read-only",
                            reason="CWSANDBOX_FILE_PERMISSION_DENIED", metadata={"filepath": request.path})
            sb.files[path] = request.content
            return S.WriteFileResponse()
        return await self._unary("WriteFile", request, context, body)

    # -- streaming RPCs ------------------------------------------------------------------------

    async def StreamExec(self, request_iterator, context):
        try:
            first = await context.read()
            self._record("StreamExec", first, context)
            if first is grpc.aio.EOF or first.WhichOneof("message") != "init":
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must be init")
            init = first.init
            sb = self._running(init.sandbox_id)
        except Abort as error:
            await _abort(context, error)
            return
        argv = list(init.command)
        self.exec_commands.append(argv)
        proc = FakeProcess(pid=next(self._pids), argv=argv)
        sb.processes[proc.pid] = proc
        stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        resizes: list[tuple[int, int]] = []

        async def pump() -> None:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    await stdin.put(None)
                    return
                kind = msg.WhichOneof("message")
                if kind == "stdin":
                    self.stdin_frame_sizes.append(len(msg.stdin))
                    await stdin.put(msg.stdin)
                elif kind == "close":
                    await stdin.put(None)
                elif kind == "resize":
                    resizes.append((msg.resize.width, msg.resize.height))

        async def write(stream: int, data: bytes) -> None:
            if data:
                await context.write(S.ExecStreamResponse(output=S.ExecStreamOutput(stream=stream, data=data)))

        stream_out = S.ExecStreamOutput.STREAM_STDOUT
        stream_err = S.ExecStreamOutput.STREAM_STDERR
        reader = asyncio.ensure_future(pump())
        self.last_resizes = resizes
        try:
            await context.write(S.ExecStreamResponse(ready=S.ExecStreamReady(ready_time=_timestamp())))
            ctx = ExecContext(sb, lambda d: write(stream_out, d), lambda d: write(stream_err, d),
                              stdin.get)
            task = asyncio.ensure_future(self.interpret(argv, ctx))
            while not task.done():
                if proc.killed:
                    task.cancel()
                    break
                await asyncio.wait({task}, timeout=0.01)
            try:
                code = await task
            except asyncio.CancelledError:
                code = 137
            except StreamErrorExit as error:
                await context.write(S.ExecStreamResponse(error=S.ExecStreamError(message="stream failed", code=error.code)))
                return
            except NoExit:
                return
            await context.write(S.ExecStreamResponse(exit=S.ExecStreamExit(exit_code=code, completed_time=_timestamp())))
        except asyncio.CancelledError:
            proc.killed = True
            self.cancelled_execs.append(argv)
            raise
        finally:
            reader.cancel()
            if "task" in locals() and not task.done():
                task.cancel()
            sb.processes.pop(proc.pid, None)

    async def StreamLogs(self, request, context):
        try:
            self._record("StreamLogs", request, context)
            sb = self._get(request.sandbox_id)
        except Abort as error:
            await _abort(context, error)
            return
        sent = 0
        entries = sb.logs
        if request.tail_lines:
            sent = max(0, len(entries) - request.tail_lines)
        while True:
            while sent < len(sb.logs):
                when, data = sb.logs[sent]
                sent += 1
                if request.timestamps:
                    stamp = _timestamp(when).ToJsonString().encode() + b" "
                    data = stamp + data.replace(b"\n", b"\n" + stamp).removesuffix(stamp)
                await context.write(S.LogEntry(data=data, timestamp=_timestamp(when),
                                               log_session_id="log-1", next_log_offset=sent))
            if not request.follow or sb.state in TERMINAL:
                return
            sb.logs_changed.clear()
            try:
                await asyncio.wait_for(sb.logs_changed.wait(), 0.05)
            except asyncio.TimeoutError:
                pass


def fake_runner(runner_id: str, *, healthy: bool = True, arch: str = "amd64",
                free_cpu: int = 4000, free_memory: int = 8 << 30) -> Any:
    return discovery_pb2.AvailableRunner(
        runner_id=runner_id, runner_group_id="sbx", healthy=healthy,
        capabilities=discovery_pb2.RunnerCapabilitySummary(
            max_cpu_millicores=8000, max_memory_bytes=16 << 30, supported_architectures=[arch],
            supported_service_visibilities=[S.VISIBILITY_PUBLIC]),
        resources=discovery_pb2.RunnerResourceSummary(
            available_cpu_millicores=free_cpu, available_memory_bytes=free_memory,
            running_sandboxes=2),
        connected_at=_timestamp(1_700_000_000))


class FakeDiscovery(discovery_pb2_grpc.DiscoveryServiceServicer):
    """Like sbxd: reports its runners and ignores the request's filters."""

    def __init__(self, sbxd: FakeSbxd) -> None:
        self.sbxd = sbxd
        self.runners = [fake_runner("fake-runner")]
        self.page_size = 1

    async def ListAvailableRunners(self, request, context):
        async def body():
            start = int(request.page_token or 0)
            end = start + self.page_size
            token = str(end) if end < len(self.runners) else ""
            return discovery_pb2.ListAvailableRunnersResponse(
                runners=self.runners[start:end], next_page_token=token)
        return await self.sbxd._unary("ListAvailableRunners", request, context, body)

    async def GetAvailableRunner(self, request, context):
        def body():
            for runner in self.runners:
                if runner.runner_id == request.runner_id:
                    return runner
            raise Abort(grpc.StatusCode.NOT_FOUND, f"runner {request.runner_id} not found",
                        reason="CWSANDBOX_RUNNER_NOT_FOUND")
        return await self.sbxd._unary("GetAvailableRunner", request, context, body)


class FakeArchives(sbx_pb2_grpc.ArchiveServiceServicer):
    """sbx.v1.ArchiveService over a fake sandbox's files. Off by default: like the hosted
    service, the fake then has no such API (UNIMPLEMENTED). ``archive_override`` replaces what
    GetArchive sends, to play a hostile sandbox; ``chunk_bytes`` sets its chunking."""

    def __init__(self, sbxd: FakeSbxd) -> None:
        self.sbxd = sbxd
        self.enabled = False
        self.archive_override: bytes | None = None
        self.chunk_bytes = 1000
        self.put_chunk_sizes: list[int] = []

    async def _check(self, method: str, request: Any, context: Any) -> FakeSandbox | None:
        try:
            self.sbxd._record(method, request, context)
            if not self.enabled:
                raise Abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method}")
            return self.sbxd._running(request.sandbox_id)
        except Abort as error:
            await _abort(context, error)
            return None

    async def PutArchive(self, request_iterator, context):
        first = await context.read()
        sb = await self._check("PutArchive", first, context)
        data = bytearray(first.data)
        while (msg := await context.read()) is not grpc.aio.EOF:
            self.put_chunk_sizes.append(len(msg.data))
            data += msg.data
        base = posixpath.normpath(posixpath.join("/", first.path))
        files = 0
        with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as tar:
            for member in tar:
                path = posixpath.normpath(posixpath.join(base, member.name))
                if member.isdir():
                    sb.dirs.add(path)
                elif member.issym():
                    sb.links[path] = member.linkname
                elif member.isfile():
                    sb.files[path] = tar.extractfile(member).read()
                    sb.modes[path] = member.mode
                    files += 1
        return sbx_pb2.PutArchiveResponse(files=files, bytes=len(data))

    def _tar_of(self, sb: FakeSandbox, path: str) -> bytes:
        top = posixpath.normpath(posixpath.join("/", path))
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            root = tarfile.TarInfo(".")
            root.type, root.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(root)
            below = lambda p: p.startswith(top.rstrip("/") + "/")  # noqa: E731
            for d in sorted(x for x in sb.dirs if below(x)):
                info = tarfile.TarInfo("./" + posixpath.relpath(d, top))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for f in sorted(x for x in sb.files if below(x)):
                info = tarfile.TarInfo("./" + posixpath.relpath(f, top))
                info.size, info.mode = len(sb.files[f]), sb.modes.get(f, 0o644)
                tar.addfile(info, io.BytesIO(sb.files[f]))
            for link, target in sorted((k, v) for k, v in sb.links.items() if below(k)):
                info = tarfile.TarInfo("./" + posixpath.relpath(link, top))
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
        return out.getvalue()

    async def GetArchive(self, request, context):
        sb = await self._check("GetArchive", request, context)
        path = request.path[:-2] if request.path.endswith("/.") else request.path
        data = self.archive_override if self.archive_override is not None else self._tar_of(sb, path)
        for i in range(0, len(data), self.chunk_bytes):
            await context.write(sbx_pb2.ArchiveChunk(data=data[i:i + self.chunk_bytes]))


class FakeServer:
    """Serves a FakeSbxd on a unix socket.

    The server runs on the SDK's own event loop: grpc.aio supports one polling loop per process,
    and a second loop (a server thread of its own) would compete for its completion events.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.base_url = f"unix://{socket_path}"
        self.service = FakeSbxd()
        self.discovery = FakeDiscovery(self.service)
        self.archives = FakeArchives(self.service)
        self._server: grpc.aio.Server | None = None

    def start(self) -> "FakeServer":
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", 100 << 20),
            ("grpc.max_send_message_length", 100 << 20),
        ])
        sandbox_pb2_grpc.add_SandboxServiceServicer_to_server(self.service, self._server)
        discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server(self.discovery, self._server)
        sbx_pb2_grpc.add_ArchiveServiceServicer_to_server(self.archives, self._server)
        self._server.add_insecure_port(f"unix:{self.socket_path}")
        await self._server.start()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return _loop.submit(coro).result(timeout)

    def run(self, fn: Callable[[], Any]) -> Any:
        async def wrapper() -> Any:
            return fn()
        return self.call(wrapper())

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                await self._server.stop(grace=None)
            tasks = [t for t in self.service.tasks if not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.call(shutdown())
