"""SandboxDefaults and how a sandbox's configuration is resolved from defaults + arguments."""

from __future__ import annotations

import pytest

from sbx import (
    NetworkOptions,
    ResourceOptions,
    Sandbox,
    SandboxDefaults,
    Secret,
    Session,
)
from sbx._defaults import DEFAULT_ARGS
from sbx._spec import create_request


def config(sb: Sandbox):
    return sb._config


def test_defaults_fields_match_the_reference():
    d = SandboxDefaults()
    assert d.container_image == "python:3.11"
    assert d.command == "/bin/sh"
    assert d.args == ("-c", 'trap "exit 0" TERM INT; sleep infinity & wait')
    assert d.base_url == "unix:///run/sbx/sbxd.sock"
    assert d.request_timeout_seconds == 300.0
    assert d.poll_retry_budget_seconds == 30.0
    assert d.poll_rpc_timeout_seconds == 15.0
    assert d.max_lifetime_seconds is None
    assert d.temp_dir == "/tmp"
    assert d.tags == ()
    assert d.environment_variables == {} and d.annotations == {}
    assert d.resources is None and d.network is None and d.secrets is None


def test_tags_are_normalised_and_validated():
    assert SandboxDefaults(tags=["a", "b"]).tags == ("a", "b")
    with pytest.raises(TypeError):
        SandboxDefaults(tags="batch-job")
    with pytest.raises(TypeError):
        SandboxDefaults(tags=("a", 1))


def test_poll_config_is_validated():
    with pytest.raises(ValueError):
        SandboxDefaults(poll_retry_budget_seconds=-1)
    with pytest.raises(ValueError):
        SandboxDefaults(poll_rpc_timeout_seconds=0)
    with pytest.raises(ValueError):
        SandboxDefaults(poll_rpc_timeout_seconds=float("inf"))


def test_merge_rules():
    d = SandboxDefaults(tags=("a",), environment_variables={"X": "1", "Y": "1"}, annotations={"k": "v"})
    assert d.merge_tags(["b", "a"]) == ["a", "b", "a"]
    assert d.merge_tags(None) == ["a"]
    assert d.merge_environment_variables({"Y": "2", "Z": "3"}) == {"X": "1", "Y": "2", "Z": "3"}
    assert d.merge_annotations({"k": "w"}) == {"k": "w"}
    assert d.environment_variables == {"X": "1", "Y": "1"}  # not mutated


def test_with_overrides_and_frozen():
    d = SandboxDefaults(container_image="python:3.12")
    e = d.with_overrides(max_lifetime_seconds=60, tags=["t"])
    assert (e.container_image, e.max_lifetime_seconds, e.tags) == ("python:3.12", 60, ("t",))
    assert d.max_lifetime_seconds is None
    with pytest.raises(Exception):
        d.container_image = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.with_overrides(no_such_field=1)


def test_from_dict():
    d = SandboxDefaults.from_dict(
        {
            "container_image": "alpine:3",
            "tags": ["x", "y"],
            "request_timeout_seconds": None,  # None falls back to the default
            "unknown_key": 1,  # ignored
            "network": {"deny_egress": True},
            "secrets": [{"name": "TOKEN"}],
        }
    )
    assert d.container_image == "alpine:3"
    assert d.tags == ("x", "y")
    assert d.request_timeout_seconds == 300.0
    assert d.network == NetworkOptions(deny_egress=True)
    assert d.secrets == (Secret(name="TOKEN"),)
    assert SandboxDefaults.from_dict(None) == SandboxDefaults()
    with pytest.raises(TypeError):
        SandboxDefaults.from_dict({"profile_ids": ["p"]})


def test_no_command_uses_the_keepalive():
    sb = Sandbox()
    assert config(sb).command == "/bin/sh"
    assert config(sb).args == list(DEFAULT_ARGS)


def test_explicit_command_has_no_implicit_args():
    sb = Sandbox(command="sleep")
    assert (config(sb).command, config(sb).args) == ("sleep", [])
    sb = Sandbox(command="python", args=["train.py"])
    assert (config(sb).command, config(sb).args) == ("python", ["train.py"])


def test_default_command_from_defaults_keeps_default_args():
    d = SandboxDefaults(command="python", args=("-m", "http.server"))
    assert config(Sandbox(defaults=d)).args == ["-m", "http.server"]
    assert config(Sandbox(defaults=d, args=["x"])).args == ["x"]


def test_max_lifetime_defaults_to_twelve_hours():
    assert config(Sandbox()).max_lifetime_seconds == 43200
    assert config(Sandbox(max_lifetime_seconds=60)).max_lifetime_seconds == 60
    d = SandboxDefaults(max_lifetime_seconds=300)
    assert config(Sandbox(defaults=d)).max_lifetime_seconds == 300
    assert config(Sandbox(defaults=d, max_lifetime_seconds=30)).max_lifetime_seconds == 30
    with pytest.raises(ValueError):
        Sandbox(max_lifetime_seconds=0)


def test_scalars_explicit_wins_and_collections_merge():
    d = SandboxDefaults(
        container_image="python:3.12",
        tags=("base",),
        environment_variables={"A": "1", "B": "1"},
        resources={"cpu": "1"},
        network=NetworkOptions(deny_egress=True),
        secrets=(Secret(name="S1"),),
    )
    sb = Sandbox(
        defaults=d,
        container_image="alpine:3",
        tags=["extra"],
        environment_variables={"B": "2"},
        resources={"memory": "1Gi"},
        network={"deny_ingress": True},
        secrets=[Secret(name="S2", env_var="OTHER")],
    )
    c = config(sb)
    assert c.container_image == "alpine:3"
    assert c.tags == ["base", "extra"]
    assert c.environment_variables == {"A": "1", "B": "2"}
    assert c.resources == ResourceOptions(requests={"memory": "1Gi"}, limits={"memory": "1Gi"})
    assert c.network == NetworkOptions(deny_ingress=True)  # replaced, not merged
    assert [s.env_var for s in c.secrets] == ["S1", "OTHER"]


def test_conflicting_secrets_are_rejected():
    d = SandboxDefaults(secrets=(Secret(name="A", env_var="X"),))
    with pytest.raises(ValueError, match="Conflicting secrets"):
        Sandbox(defaults=d, secrets=[Secret(name="B", env_var="X")])
    # identical duplicates collapse
    sb = Sandbox(defaults=d, secrets=[Secret(name="A", env_var="X")])
    assert len(config(sb).secrets) == 1


def test_removed_parameters_raise_type_error():
    for name in ("profile_ids", "profile_names", "s3_mount", "ports", "max_timeout_seconds"):
        with pytest.raises(TypeError):
            Sandbox(**{name: ["x"]})


def test_hosted_only_parameters_are_refused():
    for name, value in (
        ("runner_ids", ["r"]),
        ("placement_mode", "cks"),
        ("volumes", [{"name": "v", "mount_path": "/v"}]),
        ("template_id", "t"),
        ("image_pull_credentials", {"registry": "r", "store": "s", "name": "n"}),
    ):
        with pytest.raises(NotImplementedError, match=name):
            Sandbox(**{name: value})
    Sandbox(placement_spillover="STRICT")  # the default is fine


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        Sandbox(no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Sandbox.run(no_such_option=1)


def test_session_sandbox_rejects_unknown_keywords():
    session = Session()
    try:
        with pytest.raises(TypeError, match="unexpected keyword"):
            session.sandbox(max_lifetime_seconds=10)
    finally:
        session.close().result()


def test_mounted_files_forms():
    sb = Sandbox(mounted_files=[{"mount_path": "a.txt", "file_content": "hé"}, {"mount_path": "/b", "file_content": b"\x00"}])
    assert config(sb).mounted_files == [("a.txt", "hé".encode()), ("/b", b"\x00")]
    sb = Sandbox(mounted_files={"/c": b"c"})
    assert config(sb).mounted_files == [("/c", b"c")]
    with pytest.raises(ValueError):
        Sandbox(mounted_files=[{"mount_path": "x"}])
    with pytest.raises(TypeError):
        Sandbox(mounted_files=[{"mount_path": "x", "file_content": 3}])


def test_create_request_wire_fields():
    sb = Sandbox(
        command="python",
        args=["-c", "print(1)"],
        container_image="python:3.12",
        tags=["t1", "t2"],
        environment_variables={"K": "V"},
        annotations={"a": "b"},
        resources={"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        mounted_files=[{"mount_path": "/etc/x", "file_content": b"x"}],
        network=NetworkOptions(egress=[{"dns_name": "PyPI.org"}]),
        secrets=[Secret(name="HF_TOKEN"), Secret(store="vault", name="db", field="password", env_var="DB_PW")],
        max_lifetime_seconds=90.7,
    )
    req = create_request(config(sb), "req-1")
    assert req.request_id == "req-1"
    spec = req.sandbox.spec
    assert spec.primary_container == "main"
    (c,) = spec.containers
    assert (c.name, c.image, c.command, list(c.args)) == ("main", "python:3.12", "python", ["-c", "print(1)"])
    assert dict(c.environment_variables) == {"K": "V"}
    assert [(f.path, f.content) for f in c.files] == [("/etc/x", b"x")]
    assert c.resource_requirements.requests.cpu == "500m"
    assert c.resource_requirements.limits.memory == "512Mi"
    stores = {s.store_name: [(m.path, m.field, m.env_var) for m in s.secrets] for s in c.secret_stores}
    assert stores == {"default": [("HF_TOKEN", "", "HF_TOKEN")], "vault": [("db", "password", "DB_PW")]}
    assert list(spec.tags) == ["t1", "t2"]
    assert dict(spec.annotations) == {"a": "b"}
    assert spec.max_lifetime_seconds == 90
    assert [r.dns_name for r in spec.network.egress] == ["pypi.org"]
    assert not spec.network.HasField("deny_egress")
