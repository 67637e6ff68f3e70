"""A small registry that serves crafted answers (http.server thread), and test images for it.

The real registry (Debian's docker-registry) is used wherever it can show what is tested; this
one exists for what no well-behaved registry does: wrong bytes, cut-off bodies, huge or
mislabelled manifests, refusals.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class TestImage:
    """A manifest, its config and layer blobs, as a registry serves them."""

    manifest: bytes
    config: bytes
    layers: list[bytes]
    diff_ids: list[str]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha(b): b for b in [self.config, *self.layers]}


def make_image(
    layers: list[dict[str, bytes]],
    *,
    architecture: str = "amd64",
    docker: bool = False,
    diff_ids: list[str] | None = None,
    cmd: list[str] | None = None,
) -> TestImage:
    """An image of gzip layers holding ``layers``' files (OCI, or Docker schema 2)."""
    tars = [layer_tar(files) for files in layers]
    blobs = [gzip.compress(t, mtime=0) for t in tars]
    ids = diff_ids if diff_ids is not None else [sha(t) for t in tars]
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": cmd or ["/bin/sh"]},
            "created": "2024-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(tars))],
        },
        sort_keys=True,
    ).encode()
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP,
                    "digest": sha(b),
                    "size": len(b),
                }
                for b in blobs
            ],
        }
    ).encode()
    return TestImage(manifest, config, blobs, ids, media_type)


def make_index(entries: list[tuple[TestImage, dict[str, str]]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": image.media_type,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "platform": platform,
                }
                for image, platform in entries
            ],
        }
    ).encode()


# A blob hook may answer a GET itself: it gets the handler and the blob, returns True if done.
BlobHook = Callable[["_Handler", bytes], bool]


@dataclass
class FakeRegistry:
    """Serves ``manifests[(repo, ref)] = (content type, body)`` and ``blobs[digest]``."""

    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    hooks: dict[str, BlobHook] = field(default_factory=dict)
    require_auth: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(self, repo: str, tag: str, image: TestImage) -> None:
        self.manifests[(repo, tag)] = (image.media_type, image.manifest)
        self.manifests[(repo, image.digest)] = (image.media_type, image.manifest)
        self.blobs.update(image.blobs)

    def add_manifest(self, repo: str, ref: str, media_type: str, body: bytes) -> None:
        self.manifests[(repo, ref)] = (media_type, body)
        self.manifests[(repo, sha(body))] = (media_type, body)

    def blob_gets(self) -> list[str]:
        return [path for method, path, _ in self.requests if method == "GET" and "/blobs/" in path]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: FakeRegistry

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    def _route(self) -> None:
        reg = self.registry
        reg.requests.append((self.command, self.path, dict(self.headers.items())))
        if reg.require_auth and "Authorization" not in self.headers:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "auth"}]}).encode()
            self._send(
                401,
                body,
                {"WWW-Authenticate": 'Basic realm="fake"', "Content-Type": "application/json"},
            )
            return
        if self.path == "/v2/":
            self._send(200, b"{}", {"Docker-Distribution-API-Version": "registry/2.0"})
            return
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/?]+)", self.path)
        if m is None:
            self._error(404, "NOT_FOUND", "no route")
            return
        repo, kind, ref = m.groups()
        if kind == "manifests":
            if not any(r == repo for r, _ in reg.manifests):
                self._error(404, "NAME_UNKNOWN", "repository name not known to registry")
                return
            found = reg.manifests.get((repo, ref))
            if found is None:
                self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                return
            media_type, body = found
            headers = {"Docker-Content-Digest": sha(body)}
            if media_type:
                headers["Content-Type"] = media_type
            self._send(200, body, headers)
            return
        data = reg.blobs.get(ref)
        if data is None:
            self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        hook = reg.hooks.get(ref)
        if hook is not None and self.command == "GET" and hook(self, data):
            return
        self.send_blob(data)

    def send_blob(self, data: bytes, *, declared: int | None = None) -> None:
        """Answer with ``data`` honouring ``Range: bytes=N-``; ``declared`` overrides the length."""
        start = 0
        rng = self.headers.get("Range")
        status = 200
        headers = {"Content-Type": "application/octet-stream"}
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            if m:
                start = int(m.group(1))
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._route()

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        self._route()


def truncate_hook(keep: int, *, always: bool = False) -> BlobHook:
    """Declare the whole blob, send its first ``keep`` bytes, and drop the connection.

    A request with a Range gets the rest properly, unless ``always``: then it gets nothing.
    """

    def hook(handler: _Handler, data: bytes) -> bool:
        rng = handler.headers.get("Range")
        if rng and not always:
            return False
        handler.close_connection = True
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        handler.send_response(206 if rng else 200)
        if rng:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        handler.wfile.write(data[start:keep])
        handler.wfile.flush()
        return True

    return hook


def corrupt_hook(handler: _Handler, data: bytes) -> bool:
    """Send other bytes of the same length."""
    handler.send_blob(bytes(b ^ 0xFF for b in data))
    return True


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that drops its connection is what some tests do on purpose


@contextmanager
def fake_registry(registry: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    registry = registry or FakeRegistry()
    handler = type("Handler", (_Handler,), {"registry": registry})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    registry.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
