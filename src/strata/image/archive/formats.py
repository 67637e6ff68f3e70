"""The values of image archives: formats, what a load yields, what a save takes, member names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from strata.digest import Digest
from strata.errors import UnsafePath
from strata.oci.config import ImageConfig
from strata.oci.manifest import Manifest

__all__ = [
    "INDEX_JSON",
    "MANIFEST_JSON",
    "MAX_JSON_MEMBER",
    "MAX_JSON_TOTAL",
    "OCI_LAYOUT",
    "REPOSITORIES",
    "ArchiveFormat",
    "LoadedImage",
    "LoadedLayer",
    "SaveImage",
    "blob_member",
    "clean_member_name",
]

OCI_LAYOUT: Final = "oci-layout"
INDEX_JSON: Final = "index.json"
MANIFEST_JSON: Final = "manifest.json"
REPOSITORIES: Final = "repositories"

# JSON members other than manifest.json/index.json (configs, legacy <id>/json) are kept in memory
# during the single pass over a tar; each is bounded like a config, and all of them together too,
# so an archive of a million tiny JSON files cannot exhaust memory.
MAX_JSON_MEMBER: Final = 8 << 20
MAX_JSON_TOTAL: Final = 64 << 20


class ArchiveFormat(StrEnum):
    """The archive formats strata writes (it reads these and OCI layout directories)."""

    DOCKER = "docker-archive"
    OCI = "oci-archive"


@dataclass(frozen=True, slots=True)
class LoadedLayer:
    """A layer blob now in the content store; ``size`` is its uncompressed size in bytes."""

    blob: Digest
    media_type: str
    diff_id: Digest
    size: int


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An image read from an archive: every blob it needs is in the content store, verified.

    ``names`` are full normalised references (``docker.io/library/debian:bookworm``); an image
    without a usable name in the archive has none.
    """

    names: tuple[str, ...]
    manifest_digest: Digest
    manifest: Manifest
    config_digest: Digest
    config: ImageConfig
    layers: tuple[LoadedLayer, ...]


@dataclass(frozen=True, slots=True)
class SaveImage:
    """An image to write: its names (full references), stored manifest and parsed config."""

    names: tuple[str, ...]
    manifest_digest: Digest
    manifest: Manifest
    config: ImageConfig


def blob_member(digest: Digest) -> str:
    """The member name of a blob in an OCI layout: ``blobs/<algorithm>/<encoded>``."""
    return f"blobs/{digest.algorithm}/{digest.encoded}"


def clean_member_name(name: str, *, source: str, what: str = "member") -> str:
    """Normalise an archive member name (``./a//b`` -> ``a/b``); `UnsafePath` if it could escape.

    Absolute names and ``..`` components are refused rather than rewritten: a well-formed archive
    never has them, and a name that means something else after cleaning would make the error
    messages lie about what the archive holds.
    """
    if not name or "\x00" in name:
        raise UnsafePath(f"{source}: {what} {name!r}: empty name or NUL byte in name")
    if name.startswith("/"):
        raise UnsafePath(f"{source}: {what} {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{source}: {what} {name!r}: '..' would leave the archive")
    return "/".join(parts)
