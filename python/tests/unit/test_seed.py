"""Every snippet of the product page runs on sbx with only the import changed (against the fake)."""

from __future__ import annotations

import pytest

from fake_sbxd import S
from sbx import SandboxFailedError, SandboxStatus
from seed_snippets import SNIPPETS, as_on_the_page, seed_page


def test_snippets_are_verbatim_copies_of_the_page():
    page = seed_page()
    if page is None:
        pytest.skip("the product page (shared/seed/create-sandboxes.txt) is not available")
    text = page.read_text(encoding="utf-8")
    for name, snippet in SNIPPETS.items():
        assert as_on_the_page(snippet) in text, name
    assert text.count("from wandb.sandbox import") == 6  # the page repeats one snippet


def run_snippet(name: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(SNIPPETS[name], f"<{name}>", "exec"), namespace)
    return namespace


def test_python_version(fake):
    ns = run_snippet("python_version_in_python_3_15")
    assert ns["sandbox"].status is SandboxStatus.TERMINATED
    (create,) = fake.service.calls_of("CreateSandbox")
    assert create.sandbox.spec.containers[0].image == "python:3.15"
    assert fake.service.exec_commands == [["python", "--version"]]


def test_default_image(fake, capsys):
    ns = run_snippet("create_with_default_image")
    sandbox = ns["sandbox"]
    assert capsys.readouterr().out == f"<Sandbox id={sandbox.sandbox_id} status=pending>\n"
    assert fake.service.calls_of("CreateSandbox")[0].sandbox.spec.containers[0].image == "python:3.11"
    assert sandbox.status is SandboxStatus.TERMINATED


def test_main_command(fake, eventually):
    ns = run_snippet("main_command")
    sandbox = ns["sandbox"]
    create = fake.service.calls_of("CreateSandbox")[0].sandbox.spec.containers[0]
    assert (create.command, list(create.args)) == ("python", ["train.py"])
    # the fake image has no train.py: python exits 2 and the sandbox fails
    eventually(lambda: fake.service.sandboxes[sandbox.sandbox_id].state == S.STATE_FAILED)


def test_main_command_wait(fake):
    with pytest.raises(SandboxFailedError, match="exit code 2"):
        run_snippet("main_command_wait")
    (sandbox_id,) = fake.service.sandboxes
    assert fake.service.sandboxes[sandbox_id].exit_code == 2


def test_session_with_defaults(fake, capsys):
    ns = run_snippet("session_with_defaults")
    assert capsys.readouterr().out == (
        "<Sandbox id=None status=not_started>\n<Sandbox id=None status=not_started>\n"
    )
    assert ns["session"].closed and ns["session"].sandbox_count == 0
    assert fake.service.calls == []  # unstarted sandboxes never reach the server
