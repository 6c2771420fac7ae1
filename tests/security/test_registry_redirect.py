"""A configured registry (an insecure registry on loopback) that redirects sbxd to an address no
reference may name: a private or loopback address that is not configured itself. Every hop is judged on its
own host, so the redirect is refused before sbxd connects to it. SECURITY.md, "Images"."""

import http.server
import threading

import grpc
import pytest

from conftest import daemon_running

LIGHT = {"network": "none", "disk_pool_size": 0, "warm_pool_size": 0}


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server on loopback that counts the requests it gets and answers with `respond`."""

    def __init__(self, respond):
        self.requests = []
        self.respond = respond
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.requests.append(self.path)
                status, headers = recorder.respond(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def internal_service():
    """A service on loopback that no configuration names: what the redirect aims at."""
    server = Recorder(lambda path: (200, {}))
    yield server
    server.close()


@pytest.fixture
def redirecting_registry(internal_service):
    target = f"http://127.0.0.1:{internal_service.port}"
    server = Recorder(lambda path: (307, {"Location": target + path}))
    yield server
    server.close()


def test_a_configured_registry_cannot_redirect_sbxd_to_an_unconfigured_private_address(
        registry, protos, redirecting_registry, internal_service):
    # The registry is named in the reference itself, so no other endpoint (Docker Hub) is tried.
    configured = f"127.0.0.1:{redirecting_registry.port}"
    overrides = {**LIGHT, "insecure_registries": [registry, configured]}
    with daemon_running(registry, overrides) as d:
        with grpc.insecure_channel("unix://" + d.socket) as ch:
            images = protos.sbx_grpc.ImageServiceStub(ch)
            with pytest.raises(grpc.RpcError) as refused:
                list(images.PullImage(
                    protos.sbx.PullImageRequest(reference=f"{configured}/team/redirected:1"),
                    timeout=120))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    assert f"127.0.0.1:{internal_service.port}" in refused.value.details()
    assert redirecting_registry.requests, "sbxd never asked the registry"
    assert internal_service.requests == []
