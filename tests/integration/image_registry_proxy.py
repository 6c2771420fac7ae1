#!/usr/bin/env python3
"""A fault-injecting front for a test registry (tests/integration/image_*_test.cc).

Forwards /v2/ requests to an upstream registry and, as asked on the command line: demands
bearer tokens it issues itself (Docker Hub's challenge flow), drops or corrupts blob responses,
fails the first requests, redirects blobs to another origin, or never answers. Prints its port on
stdout, then logs one line per request to --log: "METHOD PATH auth=<scheme> range=<header>".
"""

import argparse
import base64
import http.client
import http.server
import secrets
import socketserver
import sys
import threading
import time
import urllib.parse

args = None
tokens = set()
lock = threading.Lock()
counters = {}
blob_gets = {}


def log(line):
    if args.log:
        with lock, open(args.log, "a") as f:
            f.write(line + "\n")


def fetch_upstream(method, path, headers):
    u = urllib.parse.urlsplit(args.upstream)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *a):
        pass

    def send(self, status, body=b"", headers=None, declared_length=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if declared_length is None else declared_length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def auth_scheme(self):
        value = self.headers.get("Authorization", "")
        return value.split(" ", 1)[0].lower() if value else "none"

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        log(f"{self.command} {self.path} auth={self.auth_scheme()} range={self.headers.get('Range', '')}")
        if args.hang:
            time.sleep(3600)
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            return self.token()
        if path.startswith("/_blobstore/"):
            if self.headers.get("Authorization"):
                return self.send(400, b"credentials leaked to blob storage")
            return self.blob(path[len("/_blobstore/"):], self.path)
        if not path.startswith("/v2/"):
            return self.send(404)
        with lock:
            counters["v2"] = counters.get("v2", 0) + 1
            n = counters["v2"]
        if n <= args.fail_first:
            return self.send(args.fail_status, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"try later"}]}',
                             {"Retry-After": "0", "Content-Type": "application/json"})
        if args.token and not self.authorized(path):
            return
        parts = path.split("/")
        if "blobs" in parts and parts.index("blobs") == len(parts) - 2:
            repo = "/".join(parts[2:parts.index("blobs")])
            digest = parts[-1]
            if args.redirect_blobs:
                target = f"http://localhost:{self.server.server_address[1]}/_blobstore/{digest}?repo={repo}"
                return self.send(307, b"", {"Location": target})
            return self.blob(digest, self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept",)}
        status, up_headers, body = fetch_upstream(self.command, path, headers)
        keep = {k: v for k, v in up_headers.items()
                if k.lower() in ("content-type", "docker-content-digest", "www-authenticate")}
        if args.tamper_manifests and "manifests" in parts and status == 200:
            body = body + b"\n"
        self.send(status, body, keep)

    def authorized(self, path):
        value = self.headers.get("Authorization", "")
        if value.startswith("Bearer ") and (value[7:] in tokens or value[7:] == args.static_token):
            return True
        parts = path.split("/")
        repo = ""
        for marker in ("manifests", "blobs"):
            if marker in parts:
                repo = "/".join(parts[2:parts.index(marker)])
        port = self.server.server_address[1]
        challenge = f'Bearer realm="http://127.0.0.1:{port}/token",service="test-registry"'
        if repo:
            challenge += f',scope="repository:{repo}:pull"'
        self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                  {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
        return False

    def token(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if query.get("service") != ["test-registry"] or not query.get("scope", [""])[0].endswith(":pull"):
            return self.send(400, b"bad token request")
        if args.user:
            value = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            if value != want:
                return self.send(401, b'{"details":"incorrect username or password"}')
        token = secrets.token_hex(16)
        with lock:
            tokens.add(token)
        body = ('{"token":"%s","expires_in":300}' % token).encode()
        self.send(200, body, {"Content-Type": "application/json"})

    def blob(self, digest, full_path):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(full_path).query)
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_blobstore/"):
            repo = query.get("repo", [""])[0]
        else:
            parts = path.split("/")
            repo = "/".join(parts[2:parts.index("blobs")])
        status, up_headers, body = fetch_upstream("GET", f"/v2/{repo}/blobs/{digest}", {})
        if status != 200:
            return self.send(status, body, {"Content-Type": "application/json"})
        with lock:
            blob_gets[digest] = blob_gets.get(digest, 0) + 1
            first = blob_gets[digest] == 1
        if args.corrupt_blobs and len(body) > 0:
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
            body = bytes(body)
        if args.short_blobs and len(body) > 100:
            body = body[:-100]
        start = 0
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
        chunk = body[start:]
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        status = 200
        if start > 0:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        if (args.drop_blobs_once and first) or args.truncate_blobs:
            # Promise everything, send half, hang up.
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send(status, chunk, headers)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--log")
    p.add_argument("--token", action="store_true", help="demand bearer tokens from /token")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--drop-blobs-once", action="store_true")
    p.add_argument("--truncate-blobs", action="store_true")
    p.add_argument("--short-blobs", action="store_true")
    p.add_argument("--corrupt-blobs", action="store_true")
    p.add_argument("--tamper-manifests", action="store_true")
    p.add_argument("--redirect-blobs", action="store_true")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    p.add_argument("--static-token", help="a bearer token accepted without the token server")
    p.add_argument("--hang", action="store_true")
    args = p.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
