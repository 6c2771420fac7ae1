"""Hosted-product features sbx does not provide: their options construct and validate like the
hosted SDK's, and using them raises a typed error naming the feature, without calling sbxd."""

from __future__ import annotations

import dataclasses

import pytest

from sbx import (
    AsyncFunctionError,
    FileSystemSnapshot,
    FileSystemSnapshotBucketConfig,
    FileSystemSnapshotOptions,
    ImagePullCredentials,
    PlacementMode,
    PlacementSpillover,
    RemoteFunction,
    Sandbox,
    SandboxDefaults,
    SandboxError,
    ScratchVolumeOptions,
    Session,
    SnapshotNotSupportedError,
    UnsupportedFeatureError,
)

VOLUME = ScratchVolumeOptions(name="data", mount_path="/data", size="10Gi")
WORKSPACE = FileSystemSnapshotOptions(mount_path="/workspace", file_system_snapshot_id="fss-1")
CREDENTIALS = ImagePullCredentials(registry="ghcr.io", store="default", name="GHCR_TOKEN")


def test_options_validate_like_the_hosted_sdk():
    with pytest.raises(ValueError, match="absolute"):
        ScratchVolumeOptions(name="data", mount_path="data")
    with pytest.raises(ValueError, match="root"):
        ScratchVolumeOptions(name="data", mount_path="/")
    with pytest.raises(ValueError, match="name"):
        ScratchVolumeOptions(name="", mount_path="/data")
    with pytest.raises(ValueError, match="quantity"):
        ScratchVolumeOptions(name="data", mount_path="/data", size="ten gigs")
    with pytest.raises(TypeError):
        ScratchVolumeOptions(mount_path="/data")  # name is required
    assert WORKSPACE.name == "workspace"
    assert WORKSPACE.to_scratch_volume() == ScratchVolumeOptions(
        name="workspace", mount_path="/workspace", restore_from_snapshot_id="fss-1"
    )
    with pytest.raises(ValueError, match="registry"):
        ImagePullCredentials(registry="", store="default", name="X")
    with pytest.raises(TypeError):
        ImagePullCredentials(registry="ghcr.io", name="X")  # store is required
    assert PlacementMode("cks") is PlacementMode.CKS
    assert FileSystemSnapshot(file_system_snapshot_id="f", status="ready").status == "ready"
    assert FileSystemSnapshotBucketConfig(mode="cw_managed").mode.value == "cw_managed"
    with pytest.raises(ValueError, match="placement_spillover"):
        SandboxDefaults(placement_spillover="sideways")
    defaults = SandboxDefaults(
        placement_spillover="CKS_THEN_SERVERLESS", volumes=[{"name": "v", "mount_path": "/v"}]
    )
    assert defaults.placement_spillover is PlacementSpillover.CKS_THEN_SERVERLESS
    assert defaults.volumes == (ScratchVolumeOptions(name="v", mount_path="/v"),)


@pytest.mark.parametrize(
    "option, value, feature",
    [
        ("volumes", [VOLUME], "scratch volumes"),
        ("file_system_snapshot", WORKSPACE, "file-system snapshots"),
        ("placement_mode", PlacementMode.SERVERLESS, "runner placement"),
        ("placement_spillover", "serverless_then_cks", "runner placement"),
        ("runner_ids", ["runner-1"], "runner placement"),
        ("image_pull_credentials", CREDENTIALS, "private-registry credentials"),
        ("template_id", "tmpl-1", "sandbox templates"),
    ],
)
def test_a_hosted_only_option_is_refused_when_a_sandbox_uses_it(fake, option, value, feature):
    session = Session()
    makers = [lambda: Sandbox(**{option: value}), lambda: session.sandbox(**{option: value})]
    if option in {f.name for f in dataclasses.fields(SandboxDefaults)}:
        makers.append(lambda: Sandbox(defaults=SandboxDefaults(**{option: value})))
    for make in makers:
        with pytest.raises(UnsupportedFeatureError, match=option) as caught:
            make()
        assert caught.value.feature == feature
        assert feature in str(caught.value)
        assert isinstance(caught.value, SandboxError) and isinstance(caught.value, NotImplementedError)
    session.close().result()
    assert fake.service.calls == []  # refused before anything reached the server


def test_bad_hosted_only_values_are_bad_input_before_they_are_unsupported():
    with pytest.raises(TypeError, match="volumes"):
        Sandbox(volumes=[object()])
    with pytest.raises(ValueError, match="placement_mode"):
        Sandbox(placement_mode="everywhere")
    with pytest.raises(TypeError, match="runner_ids"):
        Sandbox(runner_ids="runner-1")
    # The defaults' strict spillover, and an explicit empty runner list, ask for nothing.
    Sandbox(placement_spillover=PlacementSpillover.STRICT, runner_ids=[])


def _snapshot_calls(sandbox: Sandbox):
    return {
        "Sandbox.snapshot()": lambda: sandbox.snapshot(),
        "stop(snapshot_on_stop=True)": lambda: sandbox.stop(snapshot_on_stop=True),
        "Sandbox.get_snapshot()": lambda: Sandbox.get_snapshot("fss-1"),
        "Sandbox.list_snapshots()": lambda: Sandbox.list_snapshots(source_sandbox_id="sbx-1"),
        "Sandbox.delete_snapshot()": lambda: Sandbox.delete_snapshot("fss-1", missing_ok=True),
        "Sandbox.get_snapshot_bucket_config()": lambda: Sandbox.get_snapshot_bucket_config(),
        "Sandbox.set_snapshot_bucket_config()": lambda: Sandbox.set_snapshot_bucket_config(
            bucket_name="b"
        ),
    }


def test_snapshot_methods_raise_snapshot_not_supported(fake):
    sandbox = Sandbox()
    for what, call in _snapshot_calls(sandbox).items():
        with pytest.raises(SnapshotNotSupportedError, match="file-system snapshots") as caught:
            call()
        assert what in str(caught.value)
        assert caught.value.reason == "CWSANDBOX_FSS_NOT_SUPPORTED"
    with pytest.raises(ValueError):
        Sandbox.get_snapshot("")
    with pytest.raises(ValueError):
        Sandbox.list_snapshots(status="sideways")
    assert fake.service.calls == []


def test_templates_runner_filters_and_metrics_are_refused(fake):
    session = Session()
    for what, call in {
        "run_from_template": lambda: Sandbox.run_from_template("tmpl-1"),
        "runner_ids": lambda: Sandbox.list(runner_ids=["r"]),
        "runner_ids ": lambda: session.list(runner_ids=["r"]),
        "log_metrics": lambda: session.log_metrics(step=1),
        "get_metrics": lambda: session.get_metrics(),
    }.items():
        with pytest.raises(UnsupportedFeatureError, match=what.strip()):
            call()
    session.close().result()
    assert fake.service.calls == []


def test_remote_functions_decorate_and_run_locally_but_refuse_remote_calls(fake):
    with Session() as session:
        with pytest.raises(TypeError, match="max_lifetime_seconds"):
            session.function(max_lifetime_seconds=5)

        @session.function(container_image="python:3.12", temp_dir="/work")
        def square(x: int) -> int:
            """Squares x."""
            return x * x

        assert isinstance(square, RemoteFunction)
        assert square.__doc__ == "Squares x." and square.__name__ == "square"
        assert square.local(7) == 49
        for call in (lambda: square.remote(3), lambda: square(3), lambda: square.map([(1,), (2,)])):
            with pytest.raises(UnsupportedFeatureError, match="remote functions") as caught:
                call()
            assert "square" in str(caught.value)

        with pytest.raises(AsyncFunctionError):

            @session.function()
            async def later() -> None:
                return None

    assert fake.service.calls == []
