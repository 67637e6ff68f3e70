"""Find an already unpacked image by its plain name, reading the store directly.

``strata run`` of an image that was run before has everything on disk: this answers "which
manifest, which config, which top snapshot" with two queries (the second asked of
`strata.snapshot.metadata`) and one small JSON read, without loading the OCI model or the
reference grammar. Anything it is unsure of (a reference with a registry, a digest, an ID, an
image not unpacked yet, a config with odd types) returns None and the caller takes the full path,
which also gives the proper errors.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.diff.chain import chain_id_strings, layer_key
from strata.snapshot.metadata import is_committed

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_HEX = frozenset("0123456789abcdef")
MAX_CONFIG_SIZE = 4 << 20


@dataclass(frozen=True, slots=True)
class UnpackedImage:
    """An image whose layers are all extracted: what a container needs of it."""

    manifest_digest: str
    config: dict[str, Any]  # the config's "config" object (Entrypoint, Cmd, Env, ...)
    top: str | None  # the top layer's snapshot key; None for an image with no layers


def docker_hub_name(text: str) -> str | None:
    """``debian`` / ``debian:bookworm`` as stored (``docker.io/library/debian:bookworm``).

    Only one-component Docker Hub names; None for anything the full grammar must judge.
    """
    name, _, tag = text.partition(":")
    tag = tag or "latest"
    if not name or len(tag) > 128 or not set(name) <= _NAME_CHARS or not set(tag) <= _TAG_CHARS:
        return None
    if name[0] in "._-" or name[-1] in "._-" or tag[0] in ".-":
        return None
    if len(name) == 64 and set(name) <= _HEX:
        return None  # a full image ID: Docker refuses it as a name
    return f"docker.io/library/{name}:{tag}"


def find_unpacked(root: Path, conn: sqlite3.Connection, text: str) -> UnpackedImage | None:
    """The unpacked image tagged ``text``, or None (see the module docstring)."""
    tag = docker_hub_name(text)
    if tag is None:
        return None
    row = conn.execute(
        "SELECT i.manifest_digest, i.config_digest FROM tags t"
        " JOIN images i ON i.manifest_digest = t.manifest_digest WHERE t.name = ?",
        (tag,),
    ).fetchone()
    if row is None:
        return None
    manifest_digest, config_digest = str(row[0]), str(row[1])
    algorithm, _, encoded = config_digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64 or not set(encoded) <= _HEX:
        return None
    try:
        with open(root / "blobs" / "sha256" / encoded, "rb") as f:
            doc = json.loads(f.read(MAX_CONFIG_SIZE + 1))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(_is_sha256(d) for d in diff_ids):
        return None
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        return None
    top = layer_key(chain_id_strings(diff_ids)[-1]) if diff_ids else None
    if top is not None and not is_committed(conn, top):
        return None
    return UnpackedImage(manifest_digest, config, top)


def _is_sha256(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith("sha256:"):
        return False
    return len(value) == 71 and set(value[7:]) <= _HEX


def image_recorded(conn: sqlite3.Connection, manifest_digest: str) -> bool:
    """Whether an image with this manifest is recorded (asked inside the caller's transaction).

    A container made on an image must find it still there in the transaction that records the
    container: an ``rmi -f`` between a run's lookup and that moment would otherwise leave a
    container on an image whose blobs and snapshots the next prune collects.
    """
    row = conn.execute(
        "SELECT 1 FROM images WHERE manifest_digest = ?", (manifest_digest,)
    ).fetchone()
    return row is not None
