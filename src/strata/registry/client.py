"""The OCI distribution API of one registry: manifests, blobs, uploads, mounts, tags, delete.

`RegistryClient` speaks distribution-spec v1.1 (Docker's registry API v2) over a `Transport`,
which owns authentication, retries and error mapping. Manifests are size-bounded and checked
against the digest they were asked by; blobs stream both ways and are never held whole in memory.
A blob download that breaks off resumes with a Range request from the byte it reached; an upload
that fails part-way starts again from the source's first byte when the source can seek.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Final

import httpx

from strata import jsonload
from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    InvalidArgument,
    InvalidDigest,
    InvalidReference,
    RegistryError,
    RegistryUnreachable,
    TooLarge,
)
from strata.oci.mediatypes import MAX_MANIFEST_SIZE
from strata.registry.auth import DELETE, PULL, PUSH, repository_scope
from strata.registry.blobs import BlobStream, Progress, read_chunk, read_exactly, stream_upload
from strata.registry.credentials import CredentialStore
from strata.registry.deadline import Limits
from strata.registry.transport import MAX_BODY, PermanentlyUnreachable, Transport

__all__ = ["BlobStream", "ManifestResponse", "RegistryClient"]

_MAX_TAG_PAGES: Final = 10_000
_OCTET_STREAM: Final = {"Content-Type": "application/octet-stream"}
# Content types that say nothing about which manifest a body is.
_GENERIC_TYPES: Final = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream"}
)

_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_CONTENT_RANGE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_LINK_NEXT: Final = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


@dataclass(frozen=True, slots=True)
class ManifestResponse:
    """A manifest or index as the registry served it: its media type, digest and exact bytes."""

    media_type: str
    digest: Digest
    data: bytes


class RegistryClient:
    """A client for one registry (``localhost:5000``, ``ghcr.io``, ``docker.io``).

    ``insecure`` None means plain HTTP for loopback addresses and the configuration's insecure
    registries, HTTPS otherwise. ``credentials`` None means anonymous. ``retries`` is how many
    times a failed request is tried again, ``backoff`` the first pause (doubling each time).
    ``timeout`` bounds each socket operation; ``limits`` (None: from the environment, see
    `strata.registry.deadline`) bound whole responses and their transfer rate.

    ``transport`` None speaks HTTP/1.1 through `deadline_transport` (pooled connections whose
    socket reads keep to the deadline); any other `httpx.BaseTransport` (an
    `httpx.MockTransport` in tests, say) is used instead. Authentication, retries, error mapping
    and the minimum transfer rate (of bodies that stream) still apply above it; the per-read
    deadline does not (it lives in `deadline_transport`'s sockets): a given transport brings its
    own.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool | None = None,
        credentials: CredentialStore | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        user_agent: str = "strata",
        backoff: float = 0.5,
        limits: Limits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._transport = Transport(
            registry,
            insecure=insecure,
            credentials=credentials,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            user_agent=user_agent,
            limits=limits,
            transport=transport,
        )
        self.registry = self._transport.name
        self.base_url = self._transport.base

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> None:
        """Check that the registry speaks the v2 API and accepts the credentials, if any."""
        self._transport.ping()

    # -- manifests ----------------------------------------------------------------------------

    def get_manifest(self, repo: str, ref: str, accept: Sequence[str]) -> ManifestResponse:
        """Fetch a manifest or index by tag or digest (at most 4 MiB; a digest is verified)."""
        what, digest = self._manifest_what(repo, ref)
        t = self._transport
        response = t.request(
            "GET",
            t.url(f"/v2/{repo}/manifests/{ref}"),
            what=what,
            scopes=[repository_scope(repo, PULL)],
            headers={"Accept": ", ".join(accept)},
            limit=MAX_MANIFEST_SIZE,
            noun="manifest",
        )
        data = response.content
        if digest is not None:
            got = Digest.of(data, digest.algorithm)
            if got != digest:
                raise DigestMismatch(f"{what}: manifest digest mismatch (got {got})")
        else:
            digest = Digest.of(data)
        return ManifestResponse(_media_type(response, data, what), digest, data)

    def head_manifest(
        self, repo: str, ref: str, accept: Sequence[str]
    ) -> tuple[Digest, int, str] | None:
        """``(digest, size, media type)`` of a manifest, or None when the registry has none."""
        what, digest = self._manifest_what(repo, ref)
        t = self._transport
        response = t.request(
            "HEAD",
            t.url(f"/v2/{repo}/manifests/{ref}"),
            what=what,
            scopes=[repository_scope(repo, PULL)],
            headers={"Accept": ", ".join(accept)},
            expect=(200, 404),
        )
        if response.status_code == 404:
            return None
        header = response.headers.get("Docker-Content-Digest", "")
        length = response.headers.get("Content-Length", "")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not header or not length.isdigit() or media_type in _GENERIC_TYPES:
            # Not every registry answers HEAD fully; the body tells all three.
            manifest = self.get_manifest(repo, ref, accept)
            return manifest.digest, len(manifest.data), manifest.media_type
        try:
            found = Digest.parse(header)
        except InvalidDigest:
            raise RegistryError(f"{what}: invalid Docker-Content-Digest {header!r}") from None
        if digest is not None and found != digest:
            raise DigestMismatch(f"{what}: registry reports digest {found}")
        return found, int(length), media_type

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> Digest:
        """Upload a manifest under a tag or its digest; return its digest."""
        what, digest = self._manifest_what(repo, ref)
        if len(data) > MAX_MANIFEST_SIZE:
            raise TooLarge(f"{what}: manifest of {len(data)} bytes is over the 4 MiB limit")
        computed = Digest.of(data, digest.algorithm if digest is not None else "sha256")
        if digest is not None and computed != digest:
            raise DigestMismatch(f"{what}: manifest digest mismatch (got {computed})")
        t = self._transport
        t.request(
            "PUT",
            t.url(f"/v2/{repo}/manifests/{ref}"),
            what=what,
            scopes=[repository_scope(repo, PUSH)],
            headers={"Content-Type": media_type},
            content=data,
            expect=(200, 201, 202, 204),
        )
        return computed

    def delete_manifest(self, repo: str, digest: Digest) -> None:
        """Delete a manifest (and so every tag pointing at it) by digest."""
        what, _ = self._manifest_what(repo, str(digest))
        t = self._transport
        t.request(
            "DELETE",
            t.url(f"/v2/{repo}/manifests/{digest}"),
            what=what,
            scopes=[repository_scope(repo, DELETE)],
            expect=(200, 202, 204),
        )

    def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo``, following the registry's pages."""
        what = self._repo_what(repo)
        t = self._transport
        url = t.url(f"/v2/{repo}/tags/list")
        found: list[str] = []
        for _ in range(_MAX_TAG_PAGES):
            response = t.request("GET", url, what=what, scopes=[repository_scope(repo, PULL)])
            body = jsonload.loads(response.content, source=f"{what}: tags list", limit=MAX_BODY)
            names = body.get("tags") if isinstance(body, dict) else None
            if names is not None and not (
                isinstance(names, list) and all(isinstance(n, str) for n in names)
            ):
                raise FormatError(f"{what}: tags list has no list of strings in 'tags'")
            found.extend(names or [])
            link = _LINK_NEXT.search(response.headers.get("Link", ""))
            if link is None:
                return found
            url = t.resolve(link.group(1), response.request.url)
        raise RegistryError(f"{what}: tags list has more than {_MAX_TAG_PAGES} pages")

    # -- blobs --------------------------------------------------------------------------------

    def upload_stream(
        self, repo: str, chunks: Iterable[bytes], digest: Callable[[], Digest]
    ) -> None:
        """Upload a blob whose digest is known only once ``chunks`` are sent (no retries)."""
        stream_upload(self._transport, self.registry, repo, chunks, digest)

    def blob_size(self, repo: str, digest: Digest) -> int | None:
        """The size of a blob the registry has, or None when it has not."""
        what = self._blob_what(repo, digest)
        t = self._transport
        response = t.request(
            "HEAD",
            t.url(f"/v2/{repo}/blobs/{digest}"),
            what=what,
            scopes=[repository_scope(repo, PULL)],
            expect=(200, 404),
            follow_redirects=True,
        )
        if response.status_code == 404:
            return None
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise RegistryError(f"{what}: HEAD answered without a Content-Length")
        return int(length)

    @contextlib.contextmanager
    def get_blob(self, repo: str, digest: Digest, *, offset: int = 0) -> Iterator[BlobStream]:
        """Stream a blob, from ``offset`` when the registry honours a Range request."""
        what = self._blob_what(repo, digest)
        if offset < 0:
            raise InvalidArgument(f"{what}: negative offset {offset}")

        def reopen(position: int) -> tuple[httpx.Response, int, int | None]:
            return self._open_blob(repo, digest, position, what)

        # A registry that ignores the Range answers from byte 0, and the caller starts over.
        response, start, total = reopen(offset)
        stream = BlobStream(
            response,
            start,
            total,
            reopen=reopen,
            retries=self._transport.retries,
            sleep=self._transport.pause,
            what=what,
        )
        try:
            yield stream
        finally:
            stream.close()

    def _open_blob(
        self, repo: str, digest: Digest, offset: int, what: str
    ) -> tuple[httpx.Response, int, int | None]:
        t = self._transport
        headers = {"Accept-Encoding": "identity"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        response = t.request(
            "GET",
            t.url(f"/v2/{repo}/blobs/{digest}"),
            what=what,
            scopes=[repository_scope(repo, PULL)],
            headers=headers,
            expect=(200, 206, 416),
            stream=True,
            follow_redirects=True,
        )
        if response.status_code == 416:
            response.close()
            if offset == 0:
                raise RegistryError(f"{what}: registry refused a download from byte 0 (HTTP 416)")
            return self._open_blob(repo, digest, 0, what)
        if response.status_code == 206:
            m = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if m is None or int(m.group(1)) != offset:
                response.close()
                raise RegistryError(
                    f"{what}: bad Content-Range {response.headers.get('Content-Range')!r} "
                    f"for a download from byte {offset}"
                )
            total = None if m.group(3) == "*" else int(m.group(3))
            return response, int(m.group(1)), total
        length = response.headers.get("Content-Length", "")
        return response, 0, int(length) if length.isdigit() else None

    def upload_blob(
        self,
        repo: str,
        digest: Digest,
        size: int,
        source: BinaryIO,
        *,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Upload ``size`` bytes from ``source`` as blob ``digest``.

        Monolithic (POST, then one streamed PUT) when ``chunk_size`` is None, else chunked
        (PATCH per chunk, then PUT). ``progress`` gets the number of bytes sent since its last
        call; after a retry it is called again only past the point it already reported.
        """
        what = self._blob_what(repo, digest)
        if size < 0 or (chunk_size is not None and chunk_size <= 0):
            raise InvalidArgument(f"{what}: bad size {size} or chunk size {chunk_size}")
        try:
            start: int | None = source.tell() if source.seekable() else None
        except OSError:
            start = None
        reporter = Progress(progress)
        attempt = 0
        while True:
            try:
                self._upload_once(repo, digest, size, source, chunk_size, reporter, what)
                return
            except _Transient as err:
                failure = err.error
            if start is None or attempt >= self._transport.retries:
                raise failure
            try:
                source.seek(start)
            except OSError:
                raise failure from None
            self._transport.pause(attempt)
            attempt += 1

    def _upload_once(
        self,
        repo: str,
        digest: Digest,
        size: int,
        source: BinaryIO,
        chunk_size: int | None,
        reporter: Progress,
        what: str,
    ) -> None:
        t = self._transport
        scopes = [repository_scope(repo, PUSH)]
        started = t.request(
            "POST",
            t.url(f"/v2/{repo}/blobs/uploads/"),
            what=what,
            scopes=scopes,
            expect=(202,),
        )
        location = self._location(started, what)
        if chunk_size is None:
            headers = {**_OCTET_STREAM, "Content-Length": str(size)}
            body: bytes | Iterator[bytes] = (
                read_exactly(source, size, reporter, what) if size else b""
            )
        else:
            sent = 0
            while sent < size:
                chunk = read_chunk(source, min(chunk_size, size - sent), what, sent, size)
                content_range = f"{sent}-{sent + len(chunk) - 1}"
                patched = self._send_data(
                    "PATCH",
                    location,
                    what,
                    scopes,
                    {**_OCTET_STREAM, "Content-Range": content_range},
                    chunk,
                    (202,),
                )
                sent += len(chunk)
                reporter.at(sent)
                location = self._location(patched, what)
            headers = {"Content-Length": "0"}
            body = b""
        put = location.copy_merge_params({"digest": str(digest)})
        self._send_data("PUT", put, what, scopes, headers, body, (201, 204))

    def mount_blob(self, repo: str, digest: Digest, from_repo: str) -> bool:
        """Mount a blob from another repository of this registry: True if mounted, False if the
        registry declined (the upload session it opened instead is cancelled)."""
        what = self._blob_what(repo, digest)
        self._repo_what(from_repo)
        t = self._transport
        url = t.url(f"/v2/{repo}/blobs/uploads/").copy_merge_params(
            {"mount": str(digest), "from": from_repo}
        )
        response = t.request(
            "POST",
            url,
            what=what,
            scopes=[repository_scope(repo, PUSH), repository_scope(from_repo, PULL)],
            expect=(201, 202),
        )
        if response.status_code == 201:
            return True
        with contextlib.suppress(RegistryError):
            t.request(
                "DELETE",
                self._location(response, what),
                what=what,
                scopes=[repository_scope(repo, PUSH)],
                expect=range(200, 500),
                retry=False,
            )
        return False

    # -- helpers ------------------------------------------------------------------------------

    def _location(self, response: httpx.Response, what: str) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: upload answered without a Location")
        return self._transport.resolve(location, response.request.url)

    def _send_data(
        self,
        method: str,
        url: httpx.URL,
        what: str,
        scopes: list[str],
        headers: dict[str, str],
        content: bytes | Iterator[bytes],
        expect: tuple[int, ...],
    ) -> httpx.Response:
        """A request carrying blob data: not retried alone (a body half-applied by the registry
        cannot be sent again as is); a transient failure restarts the upload instead."""
        try:
            response = self._transport.request(
                method,
                url,
                what=what,
                scopes=scopes,
                headers=headers,
                content=content,
                expect=(*expect, *_TRANSIENT),
                retry=False,
            )
        except PermanentlyUnreachable:
            raise  # restarting the upload cannot bring the registry back
        except RegistryUnreachable as err:
            raise _Transient(err) from None
        if response.status_code in _TRANSIENT:
            raise _Transient(RegistryError(f"{what}: upload failed (HTTP {response.status_code})"))
        return response

    def _repo_what(self, repo: str) -> str:
        if len(repo) > 255 or not _REPOSITORY.fullmatch(repo):
            raise InvalidReference(f"invalid repository name {repo!r} at {self.registry}")
        return f"{self.registry}/{repo}"

    def _blob_what(self, repo: str, digest: Digest) -> str:
        return f"{self._repo_what(repo)}: blob {digest}"

    def _manifest_what(self, repo: str, ref: str) -> tuple[str, Digest | None]:
        name = self._repo_what(repo)
        if ":" in ref:
            try:
                digest = Digest.parse(ref)
            except InvalidDigest as err:
                raise InvalidReference(f"{name}: invalid manifest reference: {err}") from None
            return f"{name}@{digest}", digest
        if not _TAG.fullmatch(ref):
            raise InvalidReference(f"{name}: invalid tag {ref!r}")
        return f"{name}:{ref}", None


_TRANSIENT: Final = (429, 500, 502, 503, 504)


class _Transient(Exception):
    """An upload step failed in a way worth starting the upload again (never escapes)."""

    def __init__(self, error: RegistryError) -> None:
        super().__init__(str(error))
        self.error = error


def _media_type(response: httpx.Response, data: bytes, what: str) -> str:
    header: str = response.headers.get("Content-Type", "").split(";")[0].strip()
    if header not in _GENERIC_TYPES:
        return header
    body = jsonload.loads(data, source=f"{what}: manifest", limit=MAX_MANIFEST_SIZE)
    declared = body.get("mediaType") if isinstance(body, dict) else None
    if not isinstance(declared, str) or not declared:
        raise FormatError(f"{what}: manifest has no media type (header or mediaType field)")
    return str(declared)
