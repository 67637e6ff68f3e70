"""Small rootfs tarballs and archives built in tests, hostile ones included."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from strata.digest import Digest


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 1_700_000_000
    tar.addfile(info)


def rootfs_tar(
    path: Path, files: dict[str, bytes] | None = None, *, compress: bool = False
) -> Path:
    """A tiny root filesystem: /bin, /etc/os-release and whatever ``files`` adds."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, "./")
        add_dir(tar, "./bin/")
        add_dir(tar, "./etc/")
        add_file(tar, "./etc/os-release", b'PRETTY_NAME="strata test"\n')
        add_file(tar, "./bin/hello", b"#!/bin/sh\necho hello\n", 0o755)
        for name, data in (files or {}).items():
            add_file(tar, name, data)
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def tar_with_members(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            add_file(tar, name, data)
    return path


def oci_layout_archive(
    path: Path,
    *,
    manifest: bytes | None = None,
    layer_media_type: str = "application/vnd.oci.image.layer.v1.tar",
    corrupt_layer_name: bool = False,
) -> Path:
    """A one-image oci-archive; options make it hostile in one specific way."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer_tar:
        add_file(layer_tar, "hello.txt", b"hello\n")
    layer = layer_buf.getvalue()
    layer_digest = Digest.of(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(layer_digest)]},
            "config": {},
        }
    ).encode()
    config_digest = Digest.of(config)
    if manifest is None:
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": str(config_digest),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": layer_media_type, "digest": str(layer_digest), "size": len(layer)}
                ],
            }
        ).encode()
    manifest_digest = Digest.of(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": str(manifest_digest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": "docker.io/library/hostile:test",
                        "org.opencontainers.image.ref.name": "test",
                    },
                }
            ],
        }
    ).encode()
    layer_name = f"blobs/sha256/{layer_digest.hex}"
    if corrupt_layer_name:
        layer_name = f"blobs/sha256/{'0' * 64}"
    with tarfile.open(path, "w") as tar:
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_file(tar, "index.json", index)
        add_file(tar, f"blobs/sha256/{manifest_digest.hex}", manifest)
        add_file(tar, f"blobs/sha256/{config_digest.hex}", config)
        add_file(tar, layer_name, layer)
    return path


def truncate_inside_last_member(src: Path, dst: Path) -> Path:
    """Cut ``src`` half-way through its last member's data: a genuinely truncated tar."""
    with tarfile.open(src) as tar:
        last = tar.getmembers()[-1]
    data = src.read_bytes()
    cut = last.offset_data + max(1, last.size // 2)
    dst.write_bytes(data[:cut])
    return dst
