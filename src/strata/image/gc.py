"""Garbage collection: delete the blobs no image references and no lease holds, stale ingests,
and the extracted layers of images that are gone.

Blobs are never deleted by the operation that stops using them but here, so a writer only ever
has to lease what it is about to rely on (see `strata.store.leases`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.content import ContentStore
from strata.digest import Digest
from strata.errors import StrataError
from strata.oci.manifest import Manifest, parse_manifest
from strata.oci.mediatypes import MAX_MANIFEST_SIZE
from strata.store.leases import held

if TYPE_CHECKING:
    from strata.image.store import ImageStore

# gc drops every ingest no live process writes (a writer holds its lock for its whole life), so a
# killed command's partial write goes at the next prune, not a day later.
INGEST_MAX_AGE = 0.0


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a garbage collection removed."""

    blobs: int = 0
    reclaimed: int = 0
    ingests: int = 0
    snapshots: int = 0


def collect(images: ImageStore) -> GcReport:
    """Delete every blob no image references and no lease holds; drop stale ingests.

    Mark and sweep run inside one write transaction, so a writer that has leased a blob
    (it leases before it writes) can never lose it to a concurrent collection.
    """
    blobs = reclaimed = 0
    content = images.content
    with images.db.transaction(reclaim=True, what="collecting unused blobs") as conn:
        live = live_blobs(content, conn) | held(conn, "blob")
        for info in content.walk():
            if str(info.digest) in live:
                continue
            if content.delete(info.digest):
                blobs += 1
                reclaimed += info.size
        recorded = {r[0] for r in conn.execute("SELECT digest FROM layers")}
        conn.executemany(
            "DELETE FROM layers WHERE digest = ?", [(d,) for d in sorted(recorded - live)]
        )
    ingests = content.clean_ingests(older_than=INGEST_MAX_AGE)
    return GcReport(blobs, reclaimed, ingests, collect_snapshots(images))


def collect_snapshots(images: ImageStore) -> int:
    """Extracted layers of images that are gone (only where something was ever unpacked)."""
    if not (images.root.path / "snapshots").is_dir():
        return 0
    from strata.image.unpack import collect_snapshots as collect_unpacked
    from strata.snapshot.select import default_snapshotter

    return collect_unpacked(images, default_snapshotter(images.root.path, images.db))


def live_blobs(content: ContentStore, conn: sqlite3.Connection) -> set[str]:
    """The digests of every blob a recorded image references, read inside ``conn``'s
    transaction: manifests, configs, layers, and the compressed forms pushes made of them."""
    live: set[str] = set()
    for row in conn.execute("SELECT manifest_digest, media_type FROM images"):
        digest = Digest.parse(row["manifest_digest"])
        live.add(str(digest))
        try:
            data = content.read_bytes(digest, limit=MAX_MANIFEST_SIZE)
            parsed = parse_manifest(
                data, row["media_type"], source=f"manifest {digest}", allow_empty_layers=True
            )
        except StrataError:
            continue  # a missing or broken manifest keeps nothing else alive
        if isinstance(parsed, Manifest):
            live.add(str(parsed.config.digest))
            live.update(str(d.digest) for d in parsed.layers)
        else:
            live.update(str(d.digest) for d in parsed.manifests)
    # A push keeps the compressed form it made of a layer (strata.registry records it), so
    # the next push neither compresses again nor changes a digest: it lives while some
    # image still has that layer.
    diff_ids = {r[0] for r in conn.execute("SELECT diff_id FROM layers WHERE digest IN"
                                             " (SELECT value FROM json_each(?))",
                                             (json.dumps(sorted(live)),))}  # fmt: skip
    if diff_ids:
        rows = conn.execute(
            "SELECT digest FROM layer_compressions WHERE diff_id IN"
            " (SELECT value FROM json_each(?))",
            (json.dumps(sorted(diff_ids)),),
        )
        live.update(r[0] for r in rows)
    return live
