"""The in-tree build backend: the wheel holds the package and freshly generated stubs, with a
valid RECORD, and needs nothing from PyPI."""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile

from fake_sbxd import PYTHON_DIR


def backend():
    sys.path.insert(0, str(PYTHON_DIR))
    try:
        import _sbx_build
    finally:
        sys.path.remove(str(PYTHON_DIR))
    return _sbx_build


def test_build_wheel(tmp_path):
    b = backend()
    assert b.get_requires_for_build_wheel() == []
    name = b.build_wheel(str(tmp_path))
    assert name == "sbx-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(tmp_path / name) as zf:
        names = set(zf.namelist())
        for required in (
            "sbx/__init__.py",
            "sbx/_sandbox.py",
            "sbx/py.typed",
            "sbx/_proto/sandbox_pb2.py",
            "sbx/_proto/sandbox_pb2_grpc.py",
            "sbx/_proto/discovery_pb2.py",
            "sbx/_proto/sbx_pb2_grpc.py",
            "sbx/_proto/sbx_rpc_pb2.py",
            "sbx-0.1.0.dist-info/METADATA",
            "sbx-0.1.0.dist-info/WHEEL",
            "sbx-0.1.0.dist-info/RECORD",
        ):
            assert required in names, required
        assert not any(n.startswith("sbx/_proto/status") or "google" in n for n in names)
        metadata = zf.read("sbx-0.1.0.dist-info/METADATA").decode()
        assert "Requires-Dist: grpcio" in metadata and "Requires-Dist: protobuf>=" in metadata
        stub = zf.read("sbx/_proto/sandbox_pb2_grpc.py").decode()
        assert "from . import sandbox_pb2" in stub and "from coreweave" not in stub
        for line in zf.read("sbx-0.1.0.dist-info/RECORD").decode().splitlines():
            path, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data), path


def test_protobuf_requirement_follows_protoc():
    b = backend()
    assert b.protobuf_requirement("libprotoc 3.21.12") == "protobuf>=4.21"
    assert b.protobuf_requirement("libprotoc 25.1") == "protobuf>=4.25"
    assert b.protobuf_requirement("libprotoc 27.0") == "protobuf>=5.27"
