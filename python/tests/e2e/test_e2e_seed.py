"""Every snippet of the product page runs as written (only the import changed) against sbxd."""

from __future__ import annotations

import pytest

from sbx import Sandbox, SandboxFailedError, SandboxStatus
from seed_snippets import SNIPPETS


def run_snippet(name: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(SNIPPETS[name], f"<{name}>", "exec"), namespace)
    return namespace


@pytest.mark.smoke
def test_python_version_in_python_3_15():
    ns = run_snippet("python_version_in_python_3_15")
    assert ns["sandbox"].status is SandboxStatus.TERMINATED


@pytest.mark.smoke
def test_create_with_default_image(capsys):
    ns = run_snippet("create_with_default_image")
    sandbox = ns["sandbox"]
    assert capsys.readouterr().out.startswith(f"<Sandbox id={sandbox.sandbox_id} status=")
    assert sandbox.status is SandboxStatus.TERMINATED


def test_main_command():
    ns = run_snippet("main_command")
    sandbox = ns["sandbox"]
    try:
        assert sandbox.sandbox_id
        # python train.py runs as the main process; the sandbox ends when it exits
        try:
            sandbox.wait_until_complete(timeout=300).result()
        except SandboxFailedError:
            assert sandbox.returncode == 2  # the image has no train.py
        assert sandbox.status in (SandboxStatus.COMPLETED, SandboxStatus.FAILED)
    finally:
        sandbox.stop(missing_ok=True).result()


def test_main_command_wait():
    namespace: dict = {"__name__": "__main__"}
    try:
        exec(compile(SNIPPETS["main_command_wait"], "<main_command_wait>", "exec"), namespace)
        assert namespace["sandbox"].status is SandboxStatus.COMPLETED
        assert namespace["sandbox"].returncode == 0
    except SandboxFailedError:
        # Without a train.py in the image, python exits 2: FAILED, exactly as on the hosted product.
        sandbox = namespace["sandbox"]
        assert sandbox.status is SandboxStatus.FAILED and sandbox.returncode == 2
        assert sandbox.state_reason.startswith("EXITED")
    finally:
        if isinstance(namespace.get("sandbox"), Sandbox):
            namespace["sandbox"].stop(missing_ok=True).result()


@pytest.mark.smoke
def test_session_with_defaults(capsys):
    ns = run_snippet("session_with_defaults")
    assert capsys.readouterr().out == (
        "<Sandbox id=None status=not_started>\n<Sandbox id=None status=not_started>\n"
    )
    assert ns["session"].closed
