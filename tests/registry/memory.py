"""An in-memory OCI distribution registry, served through `httpx.MockTransport`.

A small, plain implementation of the distribution spec's endpoints, answering as Debian's
docker-registry (distribution v2) does — status codes, headers and error codes — so that
`tests/registry/test_conformance.py` can hold the two to one suite: where they differ, this one
is wrong. With ``token=True`` every ``/v2/`` request needs a bearer token, which the registry's
own ``/token`` endpoint gives to anyone (anonymous token auth, as Docker Hub does for pulls).

    /v2/                                     GET
    /v2/<name>/blobs/<digest>                HEAD, GET (Range)
    /v2/<name>/blobs/uploads/                POST (?mount=&from=)
    /v2/<name>/blobs/uploads/<id>            PATCH, PUT (?digest=), DELETE
    /v2/<name>/manifests/<reference>         HEAD, GET, PUT, DELETE
    /v2/<name>/tags/list                     GET
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Final

import httpx

HOST: Final = "registry.memory:5000"
_NAME: Final = (
    r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*"
)
_ROUTE: Final = re.compile(
    rf"/v2/(?P<name>{_NAME})/(?P<kind>blobs/uploads|blobs|manifests|tags)(?:/(?P<rest>.*))?"
)
_DIGEST: Final = re.compile(r"sha256:[a-f0-9]{64}")
_RANGE: Final = re.compile(r"bytes=(\d+)-(\d*)")
_CONTENT_RANGE: Final = re.compile(r"(\d+)-(\d+)")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Repository:
    """What one repository holds: the blobs linked into it, manifests by digest, tags."""

    blobs: set[str] = field(default_factory=set)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # Once tagged, a repository lists its tags (none, after deletes) instead of NAME_UNKNOWN:
    # distribution keeps the tags directory a first tag made.
    tagged: bool = False


@dataclass
class MemoryRegistry:
    """The registry's state and its request handler (``transport()`` for a client)."""

    token: bool = False
    blobs: dict[str, bytes] = field(default_factory=dict)
    repositories: dict[str, Repository] = field(default_factory=dict)
    uploads: dict[str, tuple[str, bytearray]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the clients' threads share the registry: one at a time)."""
        with self.lock:
            self.requests.append(f"{request.method} {request.url.path}")
            return self._handle(request)

    # -- routing ------------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/token":
            token = secrets.token_hex(16)
            self.issued.add(token)
            return _json(200, {"token": token, "access_token": token, "expires_in": 300})
        if not path.startswith("/v2/"):
            return _error(404, "UNSUPPORTED", "not a registry endpoint")
        if self.token and not self._authorised(request):
            return _error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                {
                    "WWW-Authenticate": f'Bearer realm="https://{HOST}/token",'
                    'service="registry.memory"'
                },
            )
        if path == "/v2/":
            return _json(200, {})
        route = _ROUTE.fullmatch(path)
        if route is None:
            return _error(404, "NAME_INVALID", "invalid repository name")
        name, kind, rest = route["name"], route["kind"], route["rest"] or ""
        method = request.method
        if kind == "blobs/uploads":
            if method == "POST" and not rest:
                return self._start_upload(name, request)
            upload = self.uploads.get(rest)
            if upload is None or upload[0] != name:
                return _error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
            if method == "PATCH":
                return self._patch(name, rest, request)
            if method == "PUT":
                return self._finish(name, rest, request)
            if method == "DELETE":
                del self.uploads[rest]
                return httpx.Response(204)
        elif kind == "blobs" and method in ("GET", "HEAD"):
            return self._blob(name, rest, request)
        elif kind == "manifests":
            if method in ("GET", "HEAD"):
                return self._get_manifest(name, rest, request)
            if method == "PUT":
                return self._put_manifest(name, rest, request)
            if method == "DELETE":
                return self._delete_manifest(name, rest)
        elif kind == "tags" and rest == "list" and method == "GET":
            repo = self.repositories.get(name)
            if repo is None or not repo.tagged:
                return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return _json(200, {"name": name, "tags": sorted(repo.tags)})
        return _error(405, "UNSUPPORTED", "The operation is unsupported.")

    def _authorised(self, request: httpx.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token in self.issued

    def _repo(self, name: str) -> Repository:
        return self.repositories.setdefault(name, Repository())

    # -- blobs --------------------------------------------------------------------------------

    def _blob(self, name: str, digest: str, request: httpx.Request) -> httpx.Response:
        if not _DIGEST.fullmatch(digest):
            return _error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        repo = self.repositories.get(name)
        if repo is None or digest not in repo.blobs:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry", detail=digest)
        data = self.blobs[digest]
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": digest,
            "Accept-Ranges": "bytes",
            "Etag": f'"{digest}"',
        }
        wanted = _RANGE.fullmatch(request.headers.get("Range", ""))
        status, body = 200, data
        if wanted is not None:
            first = int(wanted[1])
            last = int(wanted[2]) if wanted[2] else len(data) - 1
            if first >= len(data):
                return httpx.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
            last = min(last, len(data) - 1)
            status, body = 206, data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        if request.method == "HEAD":
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, headers=headers, content=body)

    def _start_upload(self, name: str, request: httpx.Request) -> httpx.Response:
        mount, source = request.url.params.get("mount"), request.url.params.get("from")
        if mount and source:
            origin = self.repositories.get(source)
            if origin is not None and mount in origin.blobs:
                self._repo(name).blobs.add(mount)
                return httpx.Response(
                    201,
                    headers={
                        "Location": f"/v2/{name}/blobs/{mount}",
                        "Docker-Content-Digest": mount,
                        "Content-Length": "0",
                    },
                )
        upload = secrets.token_hex(16)
        self.uploads[upload] = (name, bytearray())
        return self._upload_state(202, name, upload)

    def _upload_state(self, status: int, name: str, upload: str) -> httpx.Response:
        size = len(self.uploads[upload][1])
        return httpx.Response(
            status,
            headers={
                "Location": f"/v2/{name}/blobs/uploads/{upload}?_state={secrets.token_hex(4)}",
                "Range": f"0-{max(size - 1, 0)}",
                "Docker-Upload-UUID": upload,
                "Content-Length": "0",
            },
        )

    def _patch(self, name: str, upload: str, request: httpx.Request) -> httpx.Response:
        buffer = self.uploads[upload][1]
        body = request.read()
        given = request.headers.get("Content-Range")
        if given is not None:
            span = _CONTENT_RANGE.fullmatch(given.strip())
            if (
                span is None
                or int(span[1]) != len(buffer)
                or int(span[2]) - int(span[1]) + 1 != len(body)
            ):
                return httpx.Response(416)
        buffer.extend(body)
        return self._upload_state(202, name, upload)

    def _finish(self, name: str, upload: str, request: httpx.Request) -> httpx.Response:
        buffer = self.uploads[upload][1]
        buffer.extend(request.read())
        digest = request.url.params.get("digest", "")
        if not _DIGEST.fullmatch(digest) or sha256(bytes(buffer)) != digest:
            return _error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        del self.uploads[upload]
        self.blobs[digest] = bytes(buffer)
        self._repo(name).blobs.add(digest)
        return httpx.Response(
            201,
            headers={
                "Location": f"/v2/{name}/blobs/{digest}",
                "Docker-Content-Digest": digest,
                "Content-Length": "0",
            },
        )

    # -- manifests ----------------------------------------------------------------------------

    def _find(self, name: str, reference: str) -> tuple[str, str, bytes] | None:
        repo = self.repositories.get(name)
        if repo is None:
            return None
        digest = reference if _DIGEST.fullmatch(reference) else repo.tags.get(reference)
        if digest is None or digest not in repo.manifests:
            return None
        media_type, data = repo.manifests[digest]
        return digest, media_type, data

    def _get_manifest(self, name: str, reference: str, request: httpx.Request) -> httpx.Response:
        found = self._find(name, reference)
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown", detail=reference)
        digest, media_type, data = found
        headers = {
            "Content-Type": media_type,
            "Docker-Content-Digest": digest,
            "Content-Length": str(len(data)),
            "Etag": f'"{digest}"',
        }
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=data)

    def _put_manifest(self, name: str, reference: str, request: httpx.Request) -> httpx.Response:
        data = request.read()
        digest = sha256(data)
        if reference.startswith("sha256:") and reference != digest:
            return _error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        try:
            document = json.loads(data)
        except ValueError:
            return _error(400, "MANIFEST_INVALID", "manifest invalid")
        if not isinstance(document, dict):
            return _error(400, "MANIFEST_INVALID", "manifest invalid")
        repo = self._repo(name)
        # As distribution does: an image manifest's blobs, an index's manifests, must be here.
        wanted = [document.get("config"), *(document.get("layers") or [])]
        for item in wanted:
            if isinstance(item, dict) and item.get("digest") not in repo.blobs:
                return _error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry")
        for item in document.get("manifests") or []:
            if isinstance(item, dict) and item.get("digest") not in repo.manifests:
                return _error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry")
        media_type = request.headers.get("Content-Type", "") or str(document.get("mediaType", ""))
        repo.manifests[digest] = (media_type, data)
        if not reference.startswith("sha256:"):
            repo.tags[reference] = digest
            repo.tagged = True
        return httpx.Response(
            201,
            headers={
                "Location": f"/v2/{name}/manifests/{digest}",
                "Docker-Content-Digest": digest,
                "Content-Length": "0",
            },
        )

    def _delete_manifest(self, name: str, reference: str) -> httpx.Response:
        if not _DIGEST.fullmatch(reference):
            return _error(400, "UNSUPPORTED", "The operation is unsupported.")
        repo = self.repositories.get(name)
        if repo is None or reference not in repo.manifests:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown", detail=reference)
        del repo.manifests[reference]
        for tag in [t for t, d in repo.tags.items() if d == reference]:
            del repo.tags[tag]
        return httpx.Response(202, headers={"Content-Length": "0"})


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = {
        "Docker-Distribution-Api-Version": "registry/2.0",
        **(headers or {}),
    }
    return httpx.Response(status, json=body, headers=all_headers)


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    detail: object = None,
) -> httpx.Response:
    """The distribution spec's error body: ``{"errors": [{"code", "message", "detail"}]}``."""
    return _json(
        status, {"errors": [{"code": code, "message": message, "detail": detail}]}, headers
    )
