"""Python stubs of sbx's gRPC API, generated from api/proto for the benchmark scripts."""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_stubs():
    """Generates the coreweave.sandbox.v1 stubs into a temporary directory and imports them."""
    out = Path(tempfile.mkdtemp(prefix="sbx-bench-proto-"))
    subprocess.run(
        ["protoc", f"--proto_path={ROOT / 'api/proto'}", "--proto_path=/usr/include",
         f"--python_out={out}", f"--grpc_python_out={out}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         "coreweave/sandbox/v1/sandbox.proto"], check=True)
    sys.path.insert(0, str(out))
    from coreweave.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
    return sandbox_pb2, sandbox_pb2_grpc
