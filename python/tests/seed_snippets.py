"""The code snippets of the product page (seed/create-sandboxes.txt), verbatim except that
``from wandb.sandbox import`` became ``from sbx import``. Used by the unit tests (against the fake)
and the end-to-end tests (against sbxd)."""

from __future__ import annotations

from pathlib import Path

HOSTED_IMPORT = "from wandb.sandbox import"
SBX_IMPORT = "from sbx import"

SNIPPETS: dict[str, str] = {
    "python_version_in_python_3_15": '''\
from sbx import Sandbox

with Sandbox.run(container_image="python:3.15") as sandbox:
    sandbox.exec(["python", "--version"]).result()
''',
    "create_with_default_image": '''\
from sbx import Sandbox

with Sandbox.run() as sandbox:
    print(sandbox)
''',
    "main_command": '''\
from sbx import Sandbox

sandbox = Sandbox.run("python", "train.py")
''',
    "main_command_wait": '''\
from sbx import Sandbox

sandbox = Sandbox.run("python", "train.py")

# Optionally wait for the command to complete
sandbox.wait_until_complete().result()
''',
    "session_with_defaults": '''\
from sbx import Session, SandboxDefaults

defaults = SandboxDefaults(
    container_image="python:3.11",
    max_lifetime_seconds=300,
    tags=("batch-job",),
)

with Session(defaults) as session:
    sandbox1 = session.sandbox()
    sandbox2 = session.sandbox()

    print(sandbox1)
    print(sandbox2)
''',
}


def seed_page() -> Path | None:
    """The product page, found at ``../shared`` from the repository root, if present."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "seed" / "create-sandboxes.txt"
        if candidate.is_file():
            return candidate
    return None


def as_on_the_page(snippet: str) -> str:
    return snippet.replace(SBX_IMPORT, HOSTED_IMPORT).rstrip("\n")
