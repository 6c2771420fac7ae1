"""Where the SDK connects and which credentials it sends."""

from __future__ import annotations

import pytest

from sbx import Sandbox, SandboxDefaults
from sbx._channel import DEFAULT_BASE_URL, api_key, call_metadata, parse_base_url, resolve_base_url


def test_default_is_the_local_socket(monkeypatch):
    assert DEFAULT_BASE_URL == "unix:///run/sbx/sbxd.sock"
    assert resolve_base_url() == DEFAULT_BASE_URL
    assert Sandbox()._config.base_url == DEFAULT_BASE_URL


def test_precedence(monkeypatch):
    monkeypatch.setenv("CWSANDBOX_BASE_URL", "http://cw:1")
    assert resolve_base_url(None, DEFAULT_BASE_URL) == "http://cw:1"
    monkeypatch.setenv("SBX_BASE_URL", "http://sbx:2/")
    assert resolve_base_url(None, DEFAULT_BASE_URL) == "http://sbx:2"
    assert resolve_base_url("https://explicit:3", DEFAULT_BASE_URL) == "https://explicit:3"
    # like the hosted SDK, the environment beats SandboxDefaults.base_url
    assert Sandbox(defaults=SandboxDefaults(base_url="http://d:4"))._config.base_url == "http://sbx:2"
    assert Sandbox(base_url="http://e:5")._config.base_url == "http://e:5"


def test_parse_forms():
    a = parse_base_url("unix:///run/sbx/sbxd.sock")
    assert (a.target, a.secure, a.unix_path) == ("unix:/run/sbx/sbxd.sock", False, "/run/sbx/sbxd.sock")
    assert parse_base_url("unix:/tmp/s.sock").unix_path == "/tmp/s.sock"
    b = parse_base_url("http://127.0.0.1:7070")
    assert (b.target, b.secure) == ("127.0.0.1:7070", False)
    c = parse_base_url("https://sbx.example.com")
    assert (c.target, c.secure) == ("sbx.example.com:443", True)
    assert parse_base_url("http://[::1]:9").target == "[::1]:9"
    for bad in ("grpc://x:1", "x:1", "http://host:1/path", "unix:", "http://"):
        with pytest.raises(ValueError):
            parse_base_url(bad)
    with pytest.raises(ValueError):
        Sandbox(base_url="ftp://x")


def test_api_key_precedence(monkeypatch):
    assert api_key() is None and call_metadata() == ()
    monkeypatch.setenv("WANDB_API_KEY", "w")
    assert api_key() == "w"
    monkeypatch.setenv("CWSANDBOX_API_KEY", "c")
    assert api_key() == "c"
    monkeypatch.setenv("SBX_API_KEY", "s")
    assert call_metadata() == (("authorization", "Bearer s"),)


def test_key_is_sent_on_every_call(fake, monkeypatch):
    monkeypatch.setenv("CWSANDBOX_API_KEY", "k1")
    with Sandbox.run() as sb:
        sb.exec(["true"]).result()
        sb.write_file("/tmp/x", b"x").result()
    assert {m.get("authorization") for m in fake.service.metadata} == {"Bearer k1"}
    assert all(m.get("user-agent", "").startswith("sbx-python/") for m in fake.service.metadata)


def test_cwsandbox_base_url_env_works(fake, monkeypatch):
    monkeypatch.delenv("SBX_BASE_URL")
    monkeypatch.setenv("CWSANDBOX_BASE_URL", fake.base_url)
    with Sandbox.run() as sb:
        assert sb.exec(["echo", "x"]).result().stdout == "x\n"
