"""Images for the model, mutate and write tests: a store with a one-layer image in it, and
layers made in memory (a snapshot-like layer from a tar, one that fails half way)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from strata.digest import Digest
from strata.image.imports import import_rootfs
from strata.image.model import SnapshotLayer
from strata.image.store import Image, ImageStore
from strata.layer.normalize import normalize_tar
from strata.layer.stats import LayerStats
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import parse_reference
from tests.cli.tarballs import rootfs_tar


def imported(images: ImageStore, tmp_path: Path, name: str = "base:1") -> Image:
    tar = rootfs_tar(tmp_path / f"{name.replace(':', '-')}.tar")
    with tar.open("rb") as src:
        return import_rootfs(images, src, name=str(tar), names=[parse_reference(name)])


def tar_layer(tmp_path: Path, files: dict[str, bytes]) -> SnapshotLayer:
    """A layer made on demand from a tar of ``files`` (as a snapshot's diff would be)."""
    tar = rootfs_tar(tmp_path / f"layer-{len(list(tmp_path.iterdir()))}.tar", files)

    def write_tar(out: BinaryIO) -> LayerStats:
        with tar.open("rb") as src:
            return normalize_tar(src, out, source=str(tar))

    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return SnapshotLayer(write_tar, scratch)


class _Failing(io.RawIOBase):
    def __init__(self, good: bytes) -> None:
        self._good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._good.readinto(buffer)
        if n == 0:
            raise OSError("the source went away half way")
        return n


class FailingLayer:
    """A layer whose blob stream breaks after ``good`` bytes (a dropped download)."""

    def __init__(self, good: bytes, *, size: int) -> None:
        self._good = good
        self.digest = self.diff_id = Digest.of(b"never" + good)
        self.media_type = OCI_LAYER
        self.size = size
        self.uncompressed_size: int | None = size
        self.content_size: int | None = 0

    @contextlib.contextmanager
    def compressed(self) -> Iterator[BinaryIO]:
        yield io.BufferedReader(_Failing(self._good))

    def uncompressed(self) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.compressed()
