"""Compressed blobs of local layers, made once for a push and kept.

Layers that strata builds, commits or imports are stored uncompressed (their digest is their
diff ID). A registry wants them compressed, so a push compresses each one (gzip through isal at
level 1, or zstd level 3: see `strata.layer.compression`), keeps the blob in the content store
and records ``(diff ID, compression) -> digest, size``. The next push of the layer, to any
registry, finds the record: it can ask the registry about the digest without compressing again,
and since compression is reproducible the manifest digest stays the same even when the blob has
been collected meanwhile and must be made anew.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal, cast

from strata.content import Writer
from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import InvalidArgument, StrataError
from strata.oci.mediatypes import DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from strata.store.db import Database

__all__ = [
    "COMPRESSIONS",
    "CompressedBlob",
    "LayerCompression",
    "compress_blob",
    "layer_media_type",
    "record_compressed",
    "recorded_compressed",
]

LayerCompression = Literal["gzip", "zstd"]
COMPRESSIONS: Final[tuple[LayerCompression, ...]] = ("gzip", "zstd")
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class CompressedBlob:
    """A layer's compressed form: its blob digest and size, and how it was compressed."""

    digest: Digest
    size: int
    compression: LayerCompression


class _Tap:
    """A writer that also hands every piece written to ``tap``."""

    def __init__(self, writer: Writer, tap: Callable[[bytes], None]) -> None:
        self._writer = writer
        self._tap = tap

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._writer.write(data)
        self._tap(bytes(data))
        return n

    def flush(self) -> None:
        return


def layer_media_type(compression: LayerCompression, manifest_format: str) -> str:
    """The layer media type for ``compression`` in an ``"oci"`` or ``"docker"`` manifest."""
    if manifest_format == "docker":
        if compression != "gzip":
            raise InvalidArgument(
                f"{compression} layers need an OCI manifest: Docker schema 2 has no"
                f" {compression} layer type (use --format oci)"
            )
        return DOCKER_LAYER_GZIP
    return OCI_LAYER_GZIP if compression == "gzip" else OCI_LAYER_ZSTD


def recorded_compressed(
    db: Database, diff_id: Digest, compression: LayerCompression
) -> CompressedBlob | None:
    """The compressed blob recorded for ``diff_id``, if a push ever made one."""
    with db.read() as conn:
        row = conn.execute(
            "SELECT digest, size FROM layer_compressions WHERE diff_id = ? AND compression = ?",
            (str(diff_id), compression),
        ).fetchone()
    if row is None:
        return None
    return CompressedBlob(Digest.parse(row["digest"]), int(row["size"]), compression)


def record_compressed(db: Database, diff_id: Digest, blob: CompressedBlob) -> None:
    """Remember ``blob`` as the compressed form of ``diff_id``."""
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO layer_compressions (diff_id, compression, digest, size)"
            " VALUES (?, ?, ?, ?)",
            (str(diff_id), blob.compression, str(blob.digest), blob.size),
        )


def compress_blob(
    content: LocalContentStore,
    source: Digest,
    compression: LayerCompression,
    *,
    progress: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    tap: Callable[[bytes], None] | None = None,
    hold: Callable[[Digest], None] | None = None,
) -> CompressedBlob:
    """Compress the stored blob ``source`` into a new blob of the content store.

    Touches only the content store (no database), so it runs on worker threads; the caller
    records the result. ``progress`` gets the count of source bytes read as they go; ``tap``
    every compressed piece as it is written; ``hold`` the digest once it is known and before
    the blob is committed, to lease it (a blob committed unleased is anybody's gc's until
    recorded). The bytes depend on the input alone, so the digest is the same on every machine.
    """
    from strata.layer.compression import Compression, open_compressed

    kind = Compression.GZIP if compression == "gzip" else Compression.ZSTD
    ref = f"compress-{source}-{compression}-{uuid.uuid4().hex}"
    with content.open(source) as src, content.writer(ref) as writer:
        try:
            # open_compressed needs only write(): the writer, or a tap in front of it.
            out = cast(BinaryIO, writer if tap is None else _Tap(writer, tap))
            sink = open_compressed(out, kind)
            try:
                while data := src.read(_CHUNK):
                    sink.write(data)
                    if progress is not None:
                        progress(len(data))
                    if cancelled is not None and cancelled():
                        raise StrataError(f"layer {source}: compression cancelled")
            finally:
                sink.close()
            size = writer.offset
            if hold is not None:
                hold(writer.digest())
            digest = writer.commit()
        except OSError as err:
            writer.abort()
            raise StrataError(f"layer {source}: cannot compress: {err.strerror or err}") from None
        except BaseException:
            writer.abort()
            raise
    return CompressedBlob(digest, size, compression)
