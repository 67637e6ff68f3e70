"""Random test images built straight into a content store, and hand-made tar archives."""

from __future__ import annotations

import io
import random
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.image.archive import SaveImage
from strata.layer.compression import Compression, open_compressed
from strata.layer.generate import write_tar_from_dir
from strata.oci.config import ContainerConfig, History, ImageConfig, RootFS
from strata.oci.descriptor import Descriptor, Platform
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from strata.oci.reference import parse_reference

REPO = Path(__file__).resolve().parents[3]
CONFORMANCE = (REPO / ".." / "shared" / "conformance").resolve()
FIXTURES = CONFORMANCE / "containers-image-fixtures"

_MEDIA_TYPES = {
    Compression.NONE: OCI_LAYER,
    Compression.GZIP: OCI_LAYER_GZIP,
    Compression.ZSTD: OCI_LAYER_ZSTD,
}

Files = Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class Built:
    """A test image: what `write_archive` takes, plus what a load must give back."""

    save: SaveImage
    config_digest: Digest
    diff_ids: tuple[Digest, ...]
    layer_files: tuple[Files, ...]

    @property
    def blobs(self) -> set[Digest]:
        m = self.save.manifest
        return {self.save.manifest_digest, m.config.digest, *(d.digest for d in m.layers)}


def random_files(seed: int, count: int = 3, size: int = 2000) -> dict[str, bytes]:
    """A few files of random bytes under a per-seed directory."""
    rng = random.Random(seed)
    return {f"data{seed}/file{i}.bin": rng.randbytes(size) for i in range(count)}


def layer_tar(files: Files, tmp: Path) -> bytes:
    """The deterministic tar of a directory holding ``files``."""
    root = tmp / f"rootfs-{random.getrandbits(64):x}"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out = io.BytesIO()
    write_tar_from_dir(root, out, clamp_mtime=0)
    return out.getvalue()


def compress(data: bytes, compression: Compression) -> bytes:
    out = io.BytesIO()
    stream = open_compressed(out, compression)
    stream.write(data)
    stream.close()
    return out.getvalue()


def build_image(
    content: LocalContentStore,
    tmp: Path,
    *,
    names: Sequence[str] = (),
    layers: Sequence[Files] = (),
    compression: Compression = Compression.GZIP,
    cmd: tuple[str, ...] = ("/bin/sh",),
) -> Built:
    """An image of ``layers`` (each a set of files) with an OCI manifest, stored in ``content``."""
    descriptors, diff_ids = [], []
    for files in layers:
        tar = layer_tar(files, tmp)
        diff_ids.append(Digest.of(tar))
        blob = tar if compression is Compression.NONE else compress(tar, compression)
        digest = content.put_bytes(blob)
        descriptors.append(Descriptor(_MEDIA_TYPES[compression], digest, len(blob)))
    platform = Platform.current()
    config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        config=ContainerConfig(env=("PATH=/usr/bin:/bin",), cmd=cmd),
        rootfs=RootFS("layers", tuple(diff_ids)),
        history=tuple(History(created_by=f"layer {i}") for i in range(len(layers))),
        created="2024-01-02T03:04:05Z",
    )
    config_bytes = config.to_json()
    config_digest = content.put_bytes(config_bytes)
    manifest = Manifest(
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(descriptors),
    )
    manifest_digest = content.put_bytes(manifest.to_json())
    full = tuple(str(parse_reference(n).with_default_tag()) for n in names)
    return Built(
        SaveImage(full, manifest_digest, manifest, config),
        config_digest,
        tuple(diff_ids),
        tuple(layers),
    )


def tar_bytes(members: Iterable[tuple[str, bytes | tarfile.TarInfo]]) -> bytes:
    """A tar of ``(name, data)`` regular files, or ready-made headers (links, dirs)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, item in members:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(item)
                tar.addfile(info, io.BytesIO(item))
    return out.getvalue()


def link(name: str, target: str, *, hard: bool = False) -> tuple[str, tarfile.TarInfo]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return name, info


def tar_members(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def untar(data: bytes, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    # GNU tar, not tarfile: extraction filters arrived in Python 3.11.4, after Debian 12's 3.11.2,
    # and an unfiltered tarfile extraction follows hostile links.
    subprocess.run(["tar", "-C", str(dest), "-xf", "-"], input=data, check=True)
    return dest


class OneWayStream(io.RawIOBase):
    """A stdin-like stream: reads only, no seeking, no peeking beyond what was read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), len(self._data) - self._pos, 65536)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n
