"""Sessions: lazy sandboxes with shared defaults, close stops all, adoption, listing."""

from __future__ import annotations

import pytest

from fake_sbxd import S
from sbx import Sandbox, SandboxDefaults, SandboxError, SandboxStatus, Session


def test_session_sandboxes_are_lazy_and_use_the_defaults(fake):
    defaults = SandboxDefaults(container_image="python:3.12", max_lifetime_seconds=300, tags=("batch-job",))
    with Session(defaults) as session:
        sb1 = session.sandbox()
        sb2 = session.sandbox(tags=["second"], environment_variables={"A": "1"})
        assert fake.service.calls == []
        assert sb1.status is None and session.sandbox_count == 2
        sb2.exec(["true"]).result()
        (create,) = fake.service.calls_of("CreateSandbox")
        spec = create.sandbox.spec
        assert spec.containers[0].image == "python:3.12"
        assert spec.max_lifetime_seconds == 300
        assert list(spec.tags) == ["batch-job", "second"]
        assert dict(spec.containers[0].environment_variables) == {"A": "1"}
    # closing stopped the started sandbox; the unstarted one never reached the server
    assert [d.sandbox_id for d in fake.service.calls_of("DeleteSandbox")] == [sb2.sandbox_id]
    assert sb2.status is SandboxStatus.TERMINATED
    assert sb1.sandbox_id is None
    assert len(fake.service.calls_of("CreateSandbox")) == 1


def test_close_stops_every_sandbox_concurrently(fake):
    session = Session(SandboxDefaults(tags=("close-test",)))
    sandboxes = [session.sandbox() for _ in range(6)]
    for sb in sandboxes:
        sb.start().result()
    assert repr(session) == "<Session sandboxes=6 status=open>"
    session.close().result()
    assert all(sb.status is SandboxStatus.TERMINATED for sb in sandboxes)
    assert all(fake.service.sandboxes[sb.sandbox_id].state == S.STATE_TERMINATED for sb in sandboxes)
    assert session.sandbox_count == 0
    assert repr(session) == "<Session sandboxes=0 status=closed>"
    session.close().result()  # idempotent
    assert len(fake.service.calls_of("DeleteSandbox")) == 6


def test_stopping_a_sandbox_removes_it_from_the_session(fake):
    with Session() as session:
        sb = session.sandbox()
        sb.start().result()
        assert session.sandbox_count == 1
        sb.stop().result()
        assert session.sandbox_count == 0


def test_closed_session_refuses_work(fake):
    session = Session()
    session.close().result()
    with pytest.raises(SandboxError, match="session is closed"):
        session.sandbox()
    with pytest.raises(SandboxError, match="session is closed"):
        session.adopt(Sandbox.run())


def test_adopt(fake):
    outside = Sandbox.run()
    with Session() as session:
        with pytest.raises(ValueError):
            session.adopt(Sandbox())
        session.adopt(outside)
        assert session.sandbox_count == 1
    assert outside.status is SandboxStatus.TERMINATED


def test_list_uses_session_tags_and_adopts(fake):
    earlier = Session(SandboxDefaults(tags=("run-7",)))
    orphans = [earlier.sandbox() for _ in range(3)]
    for sb in orphans:
        sb.start().result()
    other = Sandbox.run(tags=["run-8"])
    # the first client "crashes": its session is never closed
    with Session(SandboxDefaults(tags=("run-7",))) as recovery:
        found = recovery.list(adopt=True).result()
        assert sorted(s.sandbox_id for s in found) == sorted(s.sandbox_id for s in orphans)
        assert recovery.sandbox_count == 3
        (request,) = fake.service.calls_of("ListSandboxes")
        assert list(request.tags) == ["run-7"]
        narrower = recovery.list(tags=["nothing"]).result()
        assert narrower == []
    for sb in orphans:
        assert fake.service.sandboxes[sb.sandbox_id].state == S.STATE_TERMINATED
    assert fake.service.sandboxes[other.sandbox_id].state != S.STATE_TERMINATED
    other.stop().result()
    earlier.close().result()


def test_session_from_id_adopts_by_default(fake):
    sb = Sandbox.run()
    with Session() as session:
        attached = session.from_id(sb.sandbox_id).result()
        assert attached.sandbox_id == sb.sandbox_id
        assert session.sandbox_count == 1
        not_adopted = session.from_id(sb.sandbox_id, adopt=False).result()
        assert session.sandbox_count == 1 and not_adopted is not attached
    assert fake.service.sandboxes[sb.sandbox_id].state == S.STATE_TERMINATED


def test_session_accepts_a_mapping_and_rejects_other_types(fake):
    with Session({"container_image": "python:3.13", "tags": ["m"]}) as session:
        assert session.defaults.container_image == "python:3.13"
        assert session.defaults.tags == ("m",)
    with pytest.raises(TypeError):
        Session(42)  # type: ignore[arg-type]


def test_sandbox_session_classmethod(fake):
    session = Sandbox.session(SandboxDefaults(tags=("x",)))
    assert isinstance(session, Session)
    session.close().result()


def test_close_reports_failures(fake):
    session = Session()
    sb = session.sandbox()
    sb.start().result()
    fake.stop()  # the daemon goes away
    with pytest.raises(SandboxError, match="Failed to stop 1 sandbox"):
        session.close().result()
    assert session.sandbox_count == 1  # still tracked: it may still be running


def test_function_is_not_provided(fake):
    with Session() as session:
        with pytest.raises(NotImplementedError):
            session.function()(len).remote([1])
