"""Where blobs are known to live: (registry, repository) pairs, for cross-repository mounts.

A pull records the repository each blob came from, a push the repository it went to. A later
push of the same blob to another repository of that registry can then ask the registry to mount
it instead of sending the bytes again (as Docker does with its distribution metadata).
"""

from __future__ import annotations

from collections.abc import Iterable

from strata.digest import Digest
from strata.store.db import Database

__all__ = ["known_repositories", "record_sources"]

# A few candidates are enough: a mount that fails costs one request.
MAX_CANDIDATES = 3


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_sources(db: Database, digests: Iterable[Digest], registry: str, repository: str) -> None:
    """Remember that ``registry``/``repository`` holds each of ``digests``."""
    now = _now()
    with db.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO blob_sources (digest, registry, repository, updated)"
            " VALUES (?, ?, ?, ?)",
            [(str(d), registry, repository, now) for d in digests],
        )


def known_repositories(db: Database, digest: Digest, registry: str, *, exclude: str) -> list[str]:
    """Other repositories of ``registry`` known to hold ``digest``, most recently seen first."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ?"
            " AND repository != ? ORDER BY updated DESC LIMIT ?",
            (str(digest), registry, exclude, MAX_CANDIDATES),
        ).fetchall()
    return [str(row[0]) for row in rows]
