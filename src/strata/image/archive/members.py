"""The members of an archive being read: a tar stream taken in one pass, or a directory.

A tar stream may be stdin, so it is read exactly once, front to back: every blob-like member goes
straight into the content store as it passes (verified against the digest in its name when it has
one), small JSON members stay in memory under size bounds, and links are remembered to be
resolved afterwards. A directory is read lazily instead: only what the manifests reference is
ever opened. Both answer the same questions afterwards, so the format logic above them does not
care which it has. While a compressed blob streams into the store, a `DiffIdWorker` computes its
diff ID from the same chunks.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from strata.content import ContentStore, Writer
from strata.content.local import ContentWriter
from strata.digest import SHA256, Digest
from strata.errors import (
    ContentError,
    DigestMismatch,
    FormatError,
    InvalidDigest,
    SizeMismatch,
    StrataError,
    TooLarge,
    UnsafePath,
)
from strata.image.archive.diffid import CHUNK, DiffIdWorker
from strata.image.archive.formats import (
    INDEX_JSON,
    MANIFEST_JSON,
    MAX_JSON_MEMBER,
    MAX_JSON_TOTAL,
    OCI_LAYOUT,
    REPOSITORIES,
    clean_member_name,
)
from strata.layer.entry import DIRTYPE, LNKTYPE, REGTYPE, SYMTYPE, TarEntry
from strata.layer.tarreader import TarReader
from strata.oci.mediatypes import MAX_INDEX_JSON_SIZE, MAX_MANIFEST_SIZE

__all__ = ["DirMembers", "Members", "OnBlob", "Stored", "TarMembers"]

OnBlob = Callable[[Digest], None]

_MAX_LINK_HOPS: Final = 40
_DRAIN_CHUNKS: Final = 64
_METADATA_LIMITS: Final = {
    MANIFEST_JSON: MAX_MANIFEST_SIZE,
    INDEX_JSON: MAX_INDEX_JSON_SIZE,
    REPOSITORIES: MAX_MANIFEST_SIZE,
    OCI_LAYOUT: MAX_MANIFEST_SIZE,
}


@dataclass(frozen=True, slots=True)
class Stored:
    """A member now in the content store."""

    digest: Digest
    size: int


class Members(ABC):
    """Named members of an archive, their bytes, and their blobs in the content store."""

    def __init__(self, source: str, content: ContentStore, on_blob: OnBlob) -> None:
        self.source = source
        self.content = content
        self.on_blob = on_blob
        self._workers: dict[Digest, DiffIdWorker] = {}

    @abstractmethod
    def exists(self, member: str) -> bool:
        """True if ``member`` (after following links) is a regular file of the archive."""

    @abstractmethod
    def read(self, member: str, *, limit: int, what: str) -> bytes:
        """The bytes of a small member; `FormatError` if missing, `TooLarge` over ``limit``."""

    @abstractmethod
    def blob(
        self,
        member: str,
        *,
        what: str,
        expected: Digest | None = None,
        size: int | None = None,
        limit: int | None = None,
    ) -> Stored:
        """Put ``member`` in the content store (once) and return its digest and size.

        With ``expected`` the member must hold exactly that blob, with ``size`` exactly that
        many bytes (`SizeMismatch`), with ``limit`` at most that many (`TooLarge`). A directory
        checks sizes before copying anything.
        """

    def read_optional(self, member: str, *, limit: int, what: str) -> bytes | None:
        """Like `read`, but None when the member does not exist."""
        if not self.exists(member):
            return None
        return self.read(member, limit=limit, what=what)

    def diff_id_worker(self, digest: Digest) -> DiffIdWorker | None:
        """The worker that decompressed blob ``digest`` while it was ingested, if any."""
        return self._workers.get(digest)

    def missing(self, member: str, what: str) -> FormatError:
        return FormatError(f"{self.source}: {what} {member} is missing from the archive")

    def _check_size(
        self, actual: int, member: str, what: str, size: int | None, limit: int | None
    ) -> None:
        if size is not None and actual != size:
            raise SizeMismatch(
                f"{self.source}: {what} {member}: {actual} bytes in the archive, "
                f"but its descriptor says {size}"
            )
        if limit is not None and actual > limit:
            raise TooLarge(
                f"{self.source}: {what} {member}: {actual} bytes, over the limit {limit}"
            )

    def _mismatch(self, stored: Stored, member: str, what: str, expected: Digest | None) -> None:
        if expected is not None and stored.digest != expected:
            raise DigestMismatch(
                f"{self.source}: {what} {member}: holds {stored.digest}, not {expected}"
            )

    def _ingest(
        self, chunks: Iterable[bytes | memoryview], size: int, expected: Digest | None, member: str
    ) -> Stored:
        """Stream a member into the store; with ``expected``, verify it against that digest.

        A blob already in the store is still hashed from the archive: the archive is judged by
        its own bytes, so one input gives one answer whatever the store holds, and a corrupt
        archive is reported rather than papered over. Without ``expected`` the digest is
        computed on the way, and ``on_blob`` sees it before the commit makes the blob visible
        to a concurrent gc.
        """
        present = False
        if expected is not None:
            self.on_blob(expected)
            present = self.content.exists(expected)
        writer: Writer | None = None
        if not present:
            ref = f"archive-{uuid.uuid4().hex}"
            writer = self.content.writer(ref, expected=expected, total=size)
        # The local writer hashes what it writes; hash again only when no one else does.
        own_hash = present or (expected is None and not isinstance(writer, ContentWriter))
        hasher = hashlib.new(expected.algorithm if expected else SHA256) if own_hash else None
        worker: DiffIdWorker | None = None
        committed = False
        count = 0
        try:
            try:
                for chunk in chunks:
                    if count == 0:
                        head = bytes(chunk[:8])
                        worker = DiffIdWorker.start(head, size, f"{self.source}: {member}")
                    if worker is not None:
                        worker.feed(bytes(chunk))
                    if hasher is not None:
                        hasher.update(chunk)
                    if writer is not None:
                        writer.write(chunk)
                    count += len(chunk)
            except ContentError as err:  # the writer refusing more than the expected size
                raise type(err)(f"{self.source}: {member}: {err}") from None
            if count != size:
                raise FormatError(f"{self.source}: {member}: {count} bytes, expected {size}")
            if hasher is not None:
                digest = Digest(hasher.name, hasher.hexdigest())
            elif expected is not None:
                digest = expected
            else:
                assert isinstance(writer, ContentWriter)  # else own_hash would be set
                digest = writer.digest()
            if expected is not None and digest != expected:
                raise DigestMismatch(
                    f"{self.source}: {member}: content hashes to {digest}, not its name"
                )
            if writer is not None:
                if expected is None:
                    self.on_blob(digest)
                try:
                    writer.commit(expected=digest, size=size)
                except ContentError as err:
                    raise type(err)(f"{self.source}: {member}: {err}") from None
                committed = True
        finally:
            if writer is not None and not committed:
                writer.abort()  # nobody could resume an ingest with a random ref
            if worker is not None:
                worker.finish()
        if worker is not None:
            self._workers[digest] = worker
        return Stored(digest, size)


def _digest_from_member(member: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` member claims to hold, if its name is one."""
    parts = member.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        digest = Digest.parse(f"{parts[1]}:{parts[2]}")
    except InvalidDigest:
        return None
    return digest if digest.storable else None


def _is_json_member(member: str) -> bool:
    base = posixpath.basename(member)
    return base.endswith(".json") or base == "json"


def _is_legacy_version(member: str) -> bool:
    return "/" in member and posixpath.basename(member) == "VERSION"


class TarMembers(Members):
    """Members of a tar stream, gathered in a single pass by `scan`."""

    def __init__(self, source: str, content: ContentStore, on_blob: OnBlob) -> None:
        super().__init__(source, content, on_blob)
        self._entries: dict[str, Stored | bytes] = {}
        self._links: dict[str, str] = {}
        self._json_total = 0

    def scan(self, stream: BinaryIO) -> None:
        """Read the whole tar on ``stream``; `FormatError` if it is not a whole, valid tar."""
        reader = TarReader(stream, source=self.source)
        try:
            for entry in reader:
                self._take(reader, entry)
            # Drain what follows the end-of-archive blocks so that a writer on the other end
            # of a pipe is not killed by SIGPIPE; bounded, since nothing there matters.
            for _ in range(_DRAIN_CHUNKS):
                if not stream.read(CHUNK):
                    break
        except OSError as err:
            raise FormatError(f"{self.source}: cannot read: {err.strerror or err}") from None

    def _take(self, reader: TarReader, entry: TarEntry) -> None:
        raw = entry.name.decode("utf-8", "surrogateescape")
        member = clean_member_name(raw, source=self.source)
        if not member or entry.type == DIRTYPE:
            return
        if member in self._entries or member in self._links:
            raise FormatError(f"{self.source}: member {member} appears twice")
        linkname = entry.linkname.decode("utf-8", "surrogateescape")
        if entry.type == SYMTYPE:
            self._links[member] = self._link_target(member, linkname, symlink=True)
        elif entry.type == LNKTYPE:
            target = self._link_target(member, linkname, symlink=False)
            if not self.exists(target):
                raise FormatError(
                    f"{self.source}: hard link {member} -> {linkname}: no such earlier member"
                )
            self._links[member] = target
        elif entry.type == REGTYPE:
            self._entries[member] = self._store_member(reader, member, entry.size)
        # Devices and fifos are never part of an image archive; like containerd's importer we
        # ignore them (nothing here is ever extracted, so they cannot do harm).

    def _link_target(self, member: str, linkname: str, *, symlink: bool) -> str:
        kind = "symlink" if symlink else "hard link"
        if linkname.startswith("/"):
            raise UnsafePath(f"{self.source}: {kind} {member} -> {linkname}: absolute target")
        base = posixpath.dirname(member) if symlink else ""
        joined = posixpath.normpath(posixpath.join(base, linkname))
        if joined == ".." or joined.startswith("../") or joined in ("", "."):
            raise UnsafePath(f"{self.source}: {kind} {member} -> {linkname}: outside the archive")
        return joined

    def _store_member(self, reader: TarReader, member: str, size: int) -> Stored | bytes:
        digest = _digest_from_member(member)
        if digest is not None:
            return self._ingest(reader.chunks(), size, digest, member)
        limit = _METADATA_LIMITS.get(member)
        if limit is None and _is_json_member(member):
            limit = MAX_JSON_MEMBER
        if limit is not None:
            if size > limit:
                raise TooLarge(f"{self.source}: {member}: {size} bytes, over the limit of {limit}")
            self._json_total += size
            if self._json_total > MAX_JSON_TOTAL:
                raise TooLarge(
                    f"{self.source}: {member}: JSON members over {MAX_JSON_TOTAL} bytes in all"
                )
            return reader.data()
        if _is_legacy_version(member):
            return b""  # legacy <id>/VERSION says "1.0"; no manifest refers to it
        return self._ingest(reader.chunks(), size, None, member)

    def _resolve(self, member: str) -> str | None:
        name = member
        for _ in range(_MAX_LINK_HOPS):
            if name in self._entries:
                return name
            target = self._links.get(name)
            if target is None:
                return None
            name = target
        raise FormatError(f"{self.source}: {member}: too many levels of links")

    def exists(self, member: str) -> bool:
        return self._resolve(clean_member_name(member, source=self.source)) is not None

    def _entry(self, member: str, what: str) -> tuple[str, Stored | bytes]:
        cleaned = clean_member_name(member, source=self.source, what=what)
        name = self._resolve(cleaned)
        if name is None:
            if cleaned in self._links:
                raise FormatError(
                    f"{self.source}: {what} {member}: link to a member that does not exist"
                )
            raise self.missing(member, what)
        return name, self._entries[name]

    def read(self, member: str, *, limit: int, what: str) -> bytes:
        _, entry = self._entry(member, what)
        size = len(entry) if isinstance(entry, bytes) else entry.size
        if size > limit:
            raise TooLarge(f"{self.source}: {what} {member}: {size} bytes, over the limit {limit}")
        if isinstance(entry, bytes):
            return entry
        try:
            return self.content.read_bytes(entry.digest, limit=limit)
        except StrataError as err:
            raise type(err)(f"{self.source}: {what} {member}: {err}") from None

    def blob(
        self,
        member: str,
        *,
        what: str,
        expected: Digest | None = None,
        size: int | None = None,
        limit: int | None = None,
    ) -> Stored:
        name, entry = self._entry(member, what)
        actual = len(entry) if isinstance(entry, bytes) else entry.size
        self._check_size(actual, member, what, size, limit)
        if isinstance(entry, bytes):
            digest = Digest.of(entry)
            self.on_blob(digest)
            self.content.put_bytes(entry, expected=digest)
            entry = self._entries[name] = Stored(digest, len(entry))
        self._mismatch(entry, member, what, expected)
        return entry


def _file_chunks(f: BinaryIO) -> Iterator[bytes]:
    while data := f.read(CHUNK):
        yield data


class DirMembers(Members):
    """Members of a directory (an OCI layout or an extracted docker-archive), read on demand."""

    def __init__(self, root: Path, source: str, content: ContentStore, on_blob: OnBlob) -> None:
        super().__init__(source, content, on_blob)
        self._root = os.path.realpath(root)
        self._stored: dict[str, Stored] = {}

    def _path(self, member: str, what: str = "member") -> str:
        cleaned = clean_member_name(member, source=self.source, what=what)
        real = os.path.realpath(os.path.join(self._root, cleaned))
        if real != self._root and not real.startswith(self._root + os.sep):
            raise UnsafePath(f"{self.source}: {what} {member}: a link leads outside the directory")
        return real

    def exists(self, member: str) -> bool:
        return os.path.isfile(self._path(member))

    def _open(self, member: str, what: str) -> tuple[BinaryIO, int]:
        path = self._path(member, what)
        try:
            f = open(path, "rb")  # noqa: SIM115 -- handed to the caller, who closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self.missing(member, what) from None
        except OSError as err:
            raise FormatError(f"{self.source}: {member}: {err.strerror or err}") from None
        return f, os.fstat(f.fileno()).st_size

    def read(self, member: str, *, limit: int, what: str) -> bytes:
        f, size = self._open(member, what)
        with f:
            if size > limit:
                raise TooLarge(f"{self.source}: {what} {member}: {size} bytes, over limit {limit}")
            try:
                data = f.read(limit + 1)
            except OSError as err:
                raise FormatError(f"{self.source}: {member}: {err.strerror or err}") from None
        if len(data) > limit:
            raise TooLarge(f"{self.source}: {what} {member}: over the limit of {limit} bytes")
        return data

    def blob(
        self,
        member: str,
        *,
        what: str,
        expected: Digest | None = None,
        size: int | None = None,
        limit: int | None = None,
    ) -> Stored:
        key = self._path(member, what)
        stored = self._stored.get(key)
        if stored is None:
            f, actual = self._open(member, what)
            with f:
                self._check_size(actual, member, what, size, limit)
                try:
                    stored = self._ingest(_file_chunks(f), actual, expected, member)
                except OSError as err:
                    raise FormatError(f"{self.source}: {member}: {err.strerror or err}") from None
            self._stored[key] = stored
        else:
            self._check_size(stored.size, member, what, size, limit)
        self._mismatch(stored, member, what, expected)
        return stored
