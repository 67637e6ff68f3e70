"""Blob transfer pieces: the resumable download stream, and upload reading and progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Final

import httpx

from strata.digest import Digest
from strata.errors import RegistryError, RegistryUnreachable, SizeMismatch

if TYPE_CHECKING:
    from strata.registry.transport import Transport

DEFAULT_CHUNK: Final = 1 << 20


class BlobStream:
    """A blob being downloaded: ``total`` is its full size when the registry said it, ``offset``
    the byte the stream starts at (the offset asked for if the registry honoured the Range,
    else 0). A connection lost mid-way is resumed from the byte reached."""

    __slots__ = ("_open", "_response", "_retries", "_sleep", "_what", "offset", "total")

    def __init__(
        self,
        response: httpx.Response,
        offset: int,
        total: int | None,
        *,
        reopen: Callable[[int], tuple[httpx.Response, int, int | None]],
        retries: int,
        sleep: Callable[[int], None],
        what: str,
    ) -> None:
        self._response = response
        self.offset = offset
        self.total = total
        self._open = reopen
        self._retries = retries
        self._sleep = sleep
        self._what = what

    def iter_chunks(self, size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
        """The blob's bytes from ``offset`` on, in chunks of about ``size`` bytes."""
        position = self.offset  # the first byte not yet received
        pending: list[bytes] = []  # received, not yet yielded: kept across a resume
        pending_size = 0
        skip = 0
        resumes = 0
        while True:
            try:
                # Not iter_bytes(size): its re-chunking buffer would be lost with the connection.
                for received in self._response.iter_bytes():
                    chunk = received
                    if skip:
                        # The registry ignored the Range of a resume: drop what we had.
                        dropped = min(skip, len(chunk))
                        skip -= dropped
                        chunk = chunk[dropped:]
                    if not chunk:
                        continue
                    position += len(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= size:
                        yield b"".join(pending)
                        pending.clear()
                        pending_size = 0
                if pending:
                    yield b"".join(pending)
                return
            except httpx.DecodingError as err:
                self._response.close()
                raise RegistryError(f"{self._what}: undecodable body: {err}") from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
                self._response.close()
                if resumes >= self._retries:
                    reason = " ".join(str(err).split()) or type(err).__name__
                    raise RegistryUnreachable(
                        f"{self._what}: connection lost after {position} bytes "
                        f"({resumes + 1} attempts): {reason}"
                    ) from None
                self._sleep(resumes)
                resumes += 1
                self._response, start, _ = self._open(position)
                skip = position - start

    def close(self) -> None:
        self._response.close()


class Progress:
    """Reports bytes sent as increments, never twice for the same byte (after a retry)."""

    __slots__ = ("_callback", "_reported")

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self._callback = callback
        self._reported = 0

    def at(self, position: int) -> None:
        if self._callback is not None and position > self._reported:
            self._callback(position - self._reported)
            self._reported = position


def read_exactly(source: BinaryIO, size: int, reporter: Progress, what: str) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        chunk = source.read(min(DEFAULT_CHUNK, size - sent))
        if not chunk:
            raise SizeMismatch(f"{what}: source ended after {sent} of {size} bytes")
        sent += len(chunk)
        yield chunk
        reporter.at(sent)


def read_chunk(source: BinaryIO, want: int, what: str, sent: int, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < want:
        part = source.read(want - got)
        if not part:
            raise SizeMismatch(f"{what}: source ended after {sent + got} of {size} bytes")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def stream_upload(
    transport: Transport,
    registry: str,
    repo: str,
    chunks: Iterable[bytes],
    digest: Callable[[], Digest],
) -> None:
    """Upload a blob whose digest is known only once ``chunks`` are all sent.

    POST, one streamed PATCH, then PUT with ``digest()``. Nothing is retried: ``chunks`` can
    be read once (`RegistryClient.upload_stream`).
    """
    from strata.registry.auth import PUSH, repository_scope

    what = f"{registry}/{repo}: blob upload"
    scopes = [repository_scope(repo, PUSH)]

    def location(headers: object) -> str:
        found = getattr(headers, "get", lambda _: None)("Location")
        if not found:
            raise RegistryError(f"{what}: the registry answered without a Location")
        return str(found)

    started = transport.request(
        "POST", transport.url(f"/v2/{repo}/blobs/uploads/"), what=what, scopes=scopes,
        expect=(202,),
    )  # fmt: skip
    patched = transport.request(
        "PATCH",
        transport.resolve(location(started.headers), started.request.url),
        what=what,
        scopes=scopes,
        headers={"Content-Type": "application/octet-stream"},
        content=chunks,
        expect=(202,),
        retry=False,
    )
    final = transport.resolve(location(patched.headers), patched.request.url)
    transport.request(
        "PUT",
        final.copy_merge_params({"digest": str(digest())}),
        what=what,
        scopes=scopes,
        headers={"Content-Length": "0"},
        content=b"",
        expect=(201, 204),
        retry=False,
    )
