"""What writing a layer tar produced: its diff ID, size and entry count."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO

from strata.digest import Digest


@dataclass(frozen=True, slots=True)
class LayerStats:
    """The uncompressed tar just written: ``diff_id`` is the sha256 of its bytes."""

    diff_id: Digest
    size: int
    entries: int
    content: int = 0  # bytes of regular files and symlink targets: the layer size Docker shows


class HashingWriter(io.RawIOBase):
    """Pass bytes to ``dst`` while counting and sha256-hashing them; never closes ``dst``."""

    def __init__(self, dst: BinaryIO) -> None:
        super().__init__()
        self._dst = dst
        # A destination that sha256-hashes everything it is given from its first byte (the
        # content store's writer) already computes the diff ID: a second pass over the same
        # bytes would cost ~0.7 s/GB for nothing.
        self._shared = bool(getattr(dst, "hashes_sha256_from_start", False))
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._shared:
            self._hash.update(data)
        self._dst.write(data)
        n = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        self.size += n
        return n

    def flush(self) -> None:
        if not self.closed:
            self._dst.flush()

    def digest(self) -> Digest:
        """The sha256 digest of everything written so far."""
        if self._shared:
            shared: Digest = self._dst.digest()  # type: ignore[attr-defined]
            return shared
        return Digest("sha256", self._hash.hexdigest())
