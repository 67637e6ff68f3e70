"""Blobs, images and the database: what ``blobs/`` and ``strata.db`` must say together.

A blob must hash to its name (``git fsck``'s rule; ``--quick`` skips the hashing). An image needs
its manifest, its config and every layer, the layer either as the blob its manifest names or in
its uncompressed form (the blob named by its diff ID). Tags and other rows must point at rows
that exist (SQLite's ``foreign_key_check``), and the file itself must be sound
(``integrity_check``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator

from strata.digest import Digest
from strata.errors import BlobNotFound, DigestMismatch, StrataError
from strata.image.store import Image
from strata.system.context import CheckContext
from strata.system.problem import Problem

__all__ = ["check_blobs", "check_database", "check_images", "check_integrity"]

# Rows that only point at something else: dropping one loses nothing the thing itself holds.
_DROPPABLE = {"tags", "repo_digests", "build_cache", "lease_resources"}


def _names(image: Image) -> str:
    names = [str(t) for t in image.tags] or [image.id.short]
    return ", ".join(names)


def _users(ctx: CheckContext) -> dict[str, list[Image]]:
    """Blob digest -> the images whose manifest, config or layers name it."""
    users: dict[str, list[Image]] = {}
    for image in ctx.images.all():
        users.setdefault(str(image.manifest_digest), []).append(image)
        users.setdefault(str(image.config_digest), []).append(image)
        try:
            for layer in ctx.images.layers(image):
                users.setdefault(str(layer.blob), []).append(image)
                users.setdefault(str(layer.diff_id), []).append(image)
        except StrataError:
            continue  # reported by check_images
    return users


def check_blobs(ctx: CheckContext) -> Iterator[Problem]:
    """Every blob hashes to its name (unless quick)."""
    if ctx.quick:
        return
    content = ctx.root.content
    users: dict[str, list[Image]] | None = None
    for info in content.walk():
        try:
            content.verify(info.digest)
        except BlobNotFound:
            continue  # collected meanwhile
        except DigestMismatch as err:
            if users is None:
                users = _users(ctx)
            where = ctx.relative(content.path(info.digest))
            why = f"corrupt: content hashes to {str(err).rsplit(' ', 1)[-1]}"
            needed = users.get(str(info.digest), [])
            if needed:
                names = "; ".join(_names(i) for i in needed)
                yield Problem(
                    "blob",
                    where,
                    f"{why}; needed by image {names}",
                    advice=f"remove the image (strata rmi {names.split(',')[0]}) and pull or"
                    " load it again",
                )
            else:
                yield Problem("blob", where, why, _drop_blob(ctx, info.digest))


def _drop_blob(ctx: CheckContext, digest: Digest) -> Callable[[], str]:
    def repair() -> str:
        # Bytes that do not match their name are worth nothing to anyone, leased or not: a
        # writer that needs the blob writes it again once it is gone. Looked at again first,
        # since a writer may have put the right bytes in place meanwhile.
        try:
            ctx.root.content.verify(digest)
        except BlobNotFound:
            return f"blob {digest} already gone"
        except DigestMismatch:
            ctx.root.content.delete(digest)
            return f"removed corrupt blob {digest}"
        return f"blob {digest} is sound again, kept"

    return repair


def check_images(ctx: CheckContext) -> Iterator[Problem]:
    """Every image has its manifest, config and layers."""
    content = ctx.root.content
    for image in ctx.images.all():
        where = _names(image)
        advice = f"remove it (strata rmi {where.split(',')[0]}) and pull or load it again"
        if not content.exists(image.manifest_digest):
            yield Problem("image", where, f"manifest {image.manifest_digest} missing", None, advice)
            continue
        if not content.exists(image.config_digest):
            yield Problem("image", where, f"config {image.config_digest} missing", None, advice)
        try:
            layers = ctx.images.layers(image)
        except StrataError as err:
            yield Problem("image", where, str(err), None, advice)
            continue
        for layer in layers:
            if not (content.exists(layer.blob) or content.exists(layer.diff_id)):
                yield Problem("image", where, f"layer {layer.blob} missing", None, advice)
        # Sizes the manifest states: a truncated blob shows here even with --quick.
        try:
            manifest = ctx.images.manifest(image)
        except StrataError as err:
            yield Problem("image", where, str(err), None, advice)
            continue
        for desc in (manifest.config, *manifest.layers):
            with contextlib.suppress(BlobNotFound):
                size = content.info(desc.digest).size
                if size != desc.size:
                    why = f"blob {desc.digest} holds {size} bytes, its manifest says {desc.size}"
                    yield Problem("image", where, why, None, advice)


RECOVER = "copy the store elsewhere and run sqlite3 strata.db .recover"


def check_integrity(ctx: CheckContext) -> Iterator[Problem]:
    """SQLite's check of the file itself (every other check reads the database)."""
    try:
        with ctx.root.db.read() as conn:
            results = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    except (sqlite3.DatabaseError, StrataError) as err:
        yield Problem("database", "strata.db", f"unreadable: {err}", advice=RECOVER)
        return
    # A result may span lines (SQLite heads them with "*** in database main ***"): one each.
    for line in (line for result in results for line in result.splitlines()):
        if line != "ok" and not line.startswith("*** "):
            yield Problem("database", "strata.db", f"integrity check: {line}", advice=RECOVER)


def check_database(ctx: CheckContext) -> Iterator[Problem]:
    """Rows that point at rows that are gone."""
    where = "strata.db"
    with ctx.root.db.read() as conn:
        bad = conn.execute("PRAGMA foreign_key_check").fetchall()
    for table, rowid, parent, _ in bad:
        why = f"row {rowid} of {table} points at a row of {parent} that is gone"
        if table in _DROPPABLE and rowid is not None:
            yield Problem("database", where, why, _drop_row(ctx, str(table), int(rowid)))
        elif table != "snapshots":  # a snapshot's missing parent is check_snapshots' to repair
            yield Problem("database", where, why)


def _drop_row(ctx: CheckContext, table: str, rowid: int) -> Callable[[], str]:
    def repair() -> str:
        with ctx.root.db.transaction(reclaim=True) as conn:
            _delete_dangling(conn, table, rowid)
        return f"dropped row {rowid} of {table}"

    return repair


def _delete_dangling(conn: sqlite3.Connection, table: str, rowid: int) -> None:
    # Only if it still dangles: the row may have been fixed or replaced since the check.
    for row in conn.execute(f"PRAGMA foreign_key_check({table})"):
        if row[1] == rowid:
            conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            return
