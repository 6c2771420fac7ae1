"""The in-tree build backend and what it makes: a pure-Python wheel of the distribution
``sbx-sandbox`` (import name ``sbx``) holding freshly generated stubs and a valid RECORD; an sdist
from which the same wheel builds without protoc; a wheel that installs offline into a fresh venv
and imports there. Nothing comes from PyPI."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from fake_sbxd import PYTHON_DIR

WHEEL = "sbx_sandbox-0.1.0-py3-none-any.whl"
SDIST = "sbx_sandbox-0.1.0.tar.gz"
DIST_INFO = "sbx_sandbox-0.1.0.dist-info"
# Debian's python3, whose python3-grpcio and python3-protobuf satisfy the wheel's requirements.
SYSTEM_PYTHON = "/usr/bin/python3"


def backend():
    sys.path.insert(0, str(PYTHON_DIR))
    try:
        import _sbx_build
    finally:
        sys.path.remove(str(PYTHON_DIR))
    return _sbx_build


def clean_environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROTOC", "GRPC_PYTHON_PLUGIN")}
    env.update(overrides)
    return env


def wheel_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_build_wheel(tmp_path):
    b = backend()
    assert b.get_requires_for_build_wheel() == []
    name = b.build_wheel(str(tmp_path))
    assert name == WHEEL
    files = wheel_contents(tmp_path / name)
    for required in (
        "sbx/__init__.py",
        "sbx/_sandbox.py",
        "sbx/py.typed",
        "sbx/_proto/sandbox_pb2.py",
        "sbx/_proto/sandbox_pb2_grpc.py",
        "sbx/_proto/discovery_pb2.py",
        "sbx/_proto/sbx_pb2_grpc.py",
        "sbx/_proto/sbx_rpc_pb2.py",
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/RECORD",
    ):
        assert required in files, required
    assert all(n.startswith(("sbx/", f"{DIST_INFO}/")) for n in files), sorted(files)
    assert not any(n.startswith("sbx/_proto/status") or "google" in n for n in files)
    metadata = files[f"{DIST_INFO}/METADATA"].decode()
    assert "\nName: sbx-sandbox\n" in metadata and "\nVersion: 0.1.0\n" in metadata
    assert "Requires-Dist: grpcio" in metadata and "Requires-Dist: protobuf>=" in metadata
    assert files[f"{DIST_INFO}/top_level.txt"] == b"sbx\n"
    assert b"Root-Is-Purelib: true" in files[f"{DIST_INFO}/WHEEL"]
    stub = files["sbx/_proto/sandbox_pb2_grpc.py"].decode()
    assert "from . import sandbox_pb2" in stub and "from coreweave" not in stub
    for line in files[f"{DIST_INFO}/RECORD"].decode().splitlines():
        path, digest, size = line.rsplit(",", 2)
        if not digest:
            continue
        data = files[path]
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}" and int(size) == len(data), path


def test_sdist_builds_the_same_wheel_without_protoc(tmp_path):
    b = backend()
    from_checkout = tmp_path / "checkout"
    from_checkout.mkdir()
    expected = wheel_contents(from_checkout / b.build_wheel(str(from_checkout)))

    assert b.build_sdist(str(tmp_path)) == SDIST
    with tarfile.open(tmp_path / SDIST) as tf:
        tf.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked" / SDIST.removesuffix(".tar.gz")
    assert (unpacked / "src/sbx/_proto/sandbox_pb2_grpc.py").is_file()
    # No protoc, no grpc_python_plugin, no grpc_tools: the build must not reach for them.
    no_tools = tmp_path / "no-tools"
    no_tools.mkdir()
    env = clean_environment(PATH=str(no_tools), PROTOC=str(no_tools / "protoc"),
                            GRPC_PYTHON_PLUGIN=str(no_tools / "grpc_python_plugin"))
    out = tmp_path / "from-sdist"
    out.mkdir()
    build = (
        "import sys; sys.modules['grpc_tools'] = None; sys.path.insert(0, '.'); "
        "import _sbx_build as b; b.prepare_metadata_for_build_wheel(sys.argv[1]); "
        "print(b.build_wheel(sys.argv[1]))"
    )
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=unpacked, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == WHEEL
    assert wheel_contents(out / WHEEL) == expected


def test_wheel_installs_offline_into_a_fresh_venv(tmp_path):
    wheel = tmp_path / backend().build_wheel(str(tmp_path))
    venv = tmp_path / "venv"
    env = clean_environment()
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   env=env)
    install = subprocess.run(
        [venv / "bin/pip", "install", "--no-index", "--disable-pip-version-check", "--quiet",
         str(wheel)], env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # Run from elsewhere than the source tree, so only the installed package can be imported.
    probe = (
        "import importlib.metadata as m, sbx, sbx._proto.sandbox_pb2_grpc; "
        "from sbx import Sandbox, Session, SandboxDefaults; "
        "print(sbx.__file__); print(m.version('sbx-sandbox')); "
        "print(m.packages_distributions()['sbx'])"
    )
    result = subprocess.run([venv / "bin/python", "-c", probe], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    location, version, distributions = result.stdout.splitlines()
    assert Path(location).is_relative_to(venv / "lib"), location
    assert version == "0.1.0"
    assert distributions == "['sbx-sandbox']"


def test_protobuf_requirement_follows_protoc():
    b = backend()
    assert b.protobuf_requirement("libprotoc 3.21.12") == "protobuf>=4.21"
    assert b.protobuf_requirement("libprotoc 25.1") == "protobuf>=4.25"
    assert b.protobuf_requirement("libprotoc 27.0") == "protobuf>=5.27"
