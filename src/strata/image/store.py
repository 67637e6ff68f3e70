"""The image store: which images exist, their names, and which blobs they keep alive.

An image is a manifest in the content store; its ID is its config digest, as in Docker. Tags map a
full reference (``docker.io/library/debian:bookworm``) to a manifest digest. Blobs are never
deleted by the operation that stops using them but by `strata.image.gc`, which keeps everything
image references or a lease holds.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from strata.digest import SHA256, SHA512, Digest
from strata.errors import Conflict, ImageNotFound, InvalidReference, StrataError
from strata.image import model
from strata.image.gc import live_blobs
from strata.image.root import StoreRoot
from strata.oci.config import ImageConfig, parse_config
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE
from strata.oci.reference import Reference, looks_like_id, parse_reference
from strata.store.leases import Lease, held

if TYPE_CHECKING:
    from strata.image.record import Hold, WriteRequest
    from strata.image.remove import ImageUsers

# Docker resolves an ID from any unambiguous prefix, after trying the text as a name.
_HEX = re.compile(r"[0-9a-f]{1,64}")
# The digest algorithms an image's manifest and config can have (those the content store keeps).
_ID_ALGORITHMS = (SHA256, SHA512)


@dataclass(frozen=True, slots=True)
class ImageLayer:
    """One layer as the store records it: the blob, its uncompressed diff ID and size."""

    blob: Digest
    media_type: str
    diff_id: Digest
    size: int  # of the uncompressed tar
    content_size: int | None = None  # of its regular files (Docker's size); None: not known

    @property
    def shown_size(self) -> int:
        """The size to show users: Docker's figure when known, else the tar's."""
        return self.size if self.content_size is None else self.content_size


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image and the names that point at it."""

    manifest_digest: Digest
    config_digest: Digest
    media_type: str
    created: str | None
    size: int
    added: str
    tags: tuple[Reference, ...] = ()
    repo_digests: tuple[str, ...] = ()
    intermediate: bool = False  # made by a build step (see `write`)

    @property
    def id(self) -> Digest:
        """The image ID: the config digest, as Docker has it."""
        return self.config_digest


@dataclass(slots=True)
class RemoveReport:
    """Docker's ``Untagged:`` / ``Deleted:`` lines, in order, and the bytes freed."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[Digest] = field(default_factory=list)
    reclaimed: int = 0


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ImageStore:
    """Images, tags and repo digests in the metadata database, content in the content store."""

    def __init__(self, root: StoreRoot) -> None:
        self.root = root
        self.content = root.content
        self.db = root.db

    # -- reading ---------------------------------------------------------------------------

    def all(self) -> list[Image]:
        """Every image, newest first (by creation time, then by when it was added)."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM images").fetchall()
            tags = conn.execute("SELECT name, manifest_digest FROM tags").fetchall()
            repo_digests = conn.execute("SELECT * FROM repo_digests").fetchall()
        return _images(rows, tags, repo_digests)

    def lookup(self, text: str) -> Image | None:
        """Resolve a name, ``name@digest``, full ID or unique ID prefix; None if nothing matches.

        Each form is one indexed query (tags by name, images by manifest or config digest, a
        key range for a prefix), so a lookup costs the same with 2,000 images as with 10.
        """
        ref: Reference | None
        try:
            ref = parse_reference(text)
        except InvalidReference:
            ref = None
        if ref is not None and ref.digest is not None:
            # The name part is not checked, as before: the digest alone names the image.
            key = str(ref.digest)
            found = self._select("manifest_digest = ? OR config_digest = ?", (key, key))
            return found[0] if found else None
        if ref is not None:
            found = self._select(
                "manifest_digest = (SELECT manifest_digest FROM tags WHERE name = ?)",
                (str(ref.with_default_tag()),),
            )
            if found:
                return found[0]
        if text.startswith("sha256:") or looks_like_id(text) or _HEX.fullmatch(text):
            return self._by_id_prefix(text)
        if ref is None:
            # Re-raise the grammar error: the text is neither a reference nor an ID.
            parse_reference(text)
        return None

    def by_manifest(self, digest: Digest | str) -> Image | None:
        """The image with this manifest digest, read by key."""
        found = self._select("manifest_digest = ?", (str(digest),))
        return found[0] if found else None

    def _select(self, where: str, params: Sequence[str]) -> list[Image]:
        """The images matching an SQL condition on ``images``, with their names, newest first
        (the order of `all`). Every caller's condition is served by an index."""
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM images WHERE {where} ORDER BY rowid", params
            ).fetchall()
            if not rows:
                return []
            keys = json.dumps([row["manifest_digest"] for row in rows])
            tags = conn.execute(
                "SELECT name, manifest_digest FROM tags"
                " WHERE manifest_digest IN (SELECT value FROM json_each(?))",
                (keys,),
            ).fetchall()
            rds = conn.execute(
                "SELECT * FROM repo_digests"
                " WHERE manifest_digest IN (SELECT value FROM json_each(?))",
                (keys,),
            ).fetchall()
        return _images(rows, tags, rds)

    def get(self, text: str) -> Image:
        """Like `lookup` but raises Docker's ``No such image: NAME``."""
        image = self.lookup(text)
        if image is None:
            raise ImageNotFound(f"No such image: {text}")
        return image

    def manifest(self, image: Image) -> Manifest:
        data = self.content.read_bytes(image.manifest_digest, limit=MAX_MANIFEST_SIZE)
        parsed = parse_manifest(
            data,
            image.media_type,
            source=f"manifest {image.manifest_digest}",
            allow_empty_layers=True,
        )
        if isinstance(parsed, Index):
            raise StrataError(f"image {image.manifest_digest}: an index, not an image manifest")
        return parsed

    def config(self, image: Image) -> ImageConfig:
        data = self.content.read_bytes(image.config_digest, limit=MAX_CONFIG_SIZE)
        return parse_config(data, source=f"config {image.config_digest}")

    def layers(self, image: Image) -> list[ImageLayer]:
        """The image's layers, bottom first, with diff IDs and uncompressed sizes."""
        return self._layers_of(image, self.manifest(image))

    def _layers_of(self, image: Image, manifest: Manifest) -> list[ImageLayer]:
        with self.db.read() as conn:
            rows = {
                r["digest"]: r
                for r in conn.execute(
                    f"SELECT * FROM layers WHERE digest IN ({_marks(len(manifest.layers))})",
                    [str(d.digest) for d in manifest.layers],
                )
            }
        out = []
        for desc in manifest.layers:
            row = rows.get(str(desc.digest))
            if row is None:
                raise StrataError(f"image {image.id.short}: layer {desc.digest} is not recorded")
            content = row["content_size"]
            out.append(
                ImageLayer(
                    desc.digest,
                    desc.media_type,
                    Digest.parse(row["diff_id"]),
                    int(row["size"]),
                    None if content is None else int(content),
                )
            )
        return out

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def operation(self) -> Iterator[Lease]:
        """Scope of one write: blobs go under a lease; on failure the store is put back as it was.

        Whatever the operation added to ``blobs/`` or ``ingest/`` and no image references is
        removed again, so a rejected archive or import leaves no trace.
        """
        blobs_before = {b.digest for b in self.content.walk()}
        ingests_before = {i.ref for i in self.content.ingests()}
        with self.root.lease() as lease:
            try:
                yield lease
            except BaseException:
                # Files first: on a full disk, removing them is what makes room for the
                # database writes that follow; and cleanup never hides the error being reported.
                self._discard_new_ingests(ingests_before)
                with contextlib.suppress(StrataError):
                    lease.release()
                with contextlib.suppress(StrataError):
                    self._discard_new(blobs_before, ingests_before)
                raise

    def write(
        self,
        image: model.Image,
        *,
        names: Iterable[Reference] = (),
        repo_digests: Iterable[Reference] = (),
        intermediate: bool = False,
        parent: Digest | None = None,
        lease: Lease | None = None,
    ) -> Image:
        """The one way an image enters the store: the blobs of ``image`` the store lacks are
        streamed in (under ``lease``, else an `operation` of its own, which leaves nothing if it
        fails), then its rows are recorded and ``names`` pointed at it, in one transaction.

        An ``intermediate`` image (a build step's) is hidden by ``image ls`` unless ``-a`` and
        left alone by ``image prune``: the build cache holds it until ``builder prune``.
        The image appears with all its names, or not at all. A name that pointed at another
        image moves, leaving that image dangling (``<none>``) as Docker does.
        """
        from strata.image.record import WriteRequest

        request = WriteRequest(
            image, tuple(names), tuple(repo_digests), intermediate=intermediate, parent=parent
        )
        self.write_many([request], lease=lease)
        found = self.by_manifest(image.digest())
        if found is None:
            raise ImageNotFound(f"No such image: {image.digest()}")
        return found

    def write_many(
        self,
        requests: Sequence[WriteRequest],
        *,
        lease: Lease | None = None,
        hold: Hold | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> list[Image]:
        """`write` for many images: their missing blobs, then all their rows (and ``also``'s)
        in ONE transaction. Blobs are held by ``hold`` (a build's), else ``lease``, else an
        `operation` of the call's own. The images are returned as recorded, not read back."""
        from strata.image.record import write_images

        if hold is not None:
            return write_images(self, requests, hold, also=also)
        if lease is not None:
            return write_images(self, requests, _blob_hold(lease), also=also)
        with self.operation() as own:
            return write_images(self, requests, _blob_hold(own), also=also)

    def open(self, image: Image) -> model.Image:
        """``image`` as a model image, read from the store only when asked."""

        def facts(manifest: Manifest) -> dict[Digest, model.LayerInfo]:
            return {
                la.blob: model.LayerInfo(la.diff_id, la.size, la.content_size)
                for la in self._layers_of(image, manifest)
            }

        return model.ContentImage(
            self.content,
            image.manifest_digest,
            image.media_type,
            config_digest=image.config_digest,
            facts=facts,
        )

    def _sized(self, layers: Sequence[ImageLayer]) -> list[ImageLayer]:
        """``layers`` each with Docker's size: as recorded before, else counted from the blob
        now (a loaded archive's layers), so every way in gives an image the same SIZE."""
        unknown = [str(layer.blob) for layer in layers if layer.content_size is None]
        if not unknown:
            return list(layers)
        with self.db.read() as conn:
            known = {
                r[0]: int(r[1])
                for r in conn.execute(
                    "SELECT digest, content_size FROM layers WHERE content_size IS NOT NULL"
                    f" AND digest IN ({_marks(len(unknown))})",
                    unknown,
                )
            }
        from strata.image.layersize import count_layer_size

        out = []
        for layer in layers:
            size = layer.content_size
            if size is None:
                size = known.get(str(layer.blob))
                if size is None:
                    size = count_layer_size(self.content, layer.blob)
            out.append(replace(layer, content_size=size))
        return out

    def parent(self, image: Image) -> Digest | None:
        """The ID of the local image ``image`` was built or committed from (Docker's Parent),
        if that image is still here."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT p.config_digest FROM images c JOIN images p"
                " ON p.config_digest = c.parent WHERE c.config_digest = ? LIMIT 1",
                (str(image.config_digest),),
            ).fetchone()
        return Digest.parse(row[0]) if row is not None else None

    def ancestors(self, image: Image) -> dict[int, Digest]:
        """Local images ``image`` was made from, by how many history entries each has.

        Follows the parent links builds and commits record (Docker's Parent chain), for the
        IDs ``history`` shows instead of ``<missing>``.
        """
        found: dict[int, Digest] = {}
        current = image
        seen = {str(image.config_digest)}
        while True:
            with self.db.read() as conn:
                row = conn.execute(
                    "SELECT parent FROM images WHERE config_digest = ? AND parent IS NOT NULL",
                    (str(current.config_digest),),
                ).fetchone()
            if row is None or row[0] in seen:
                return found
            seen.add(row[0])
            parent = self.lookup(row[0])
            if parent is None:
                return found
            found[len(self.config(parent).history)] = parent.config_digest
            current = parent

    def record_content_size(self, blob: Digest, content_size: int) -> None:
        """Remember a layer's file bytes once someone has counted them (history does)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE layers SET content_size = ? WHERE digest = ?", (content_size, str(blob))
            )

    def tag(self, image: Image, ref: Reference) -> Reference:
        """Point ``ref`` (``:latest`` by default) at ``image``."""
        if ref.digest is not None:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {ref}")
        tagged = ref.with_default_tag()
        with self.db.transaction() as conn:
            # Asked inside the transaction: an rmi since the caller's lookup removed the image
            # (the tag's foreign key would fail with an internal error).
            found = conn.execute(
                "SELECT 1 FROM images WHERE manifest_digest = ?", (str(image.manifest_digest),)
            ).fetchone()
            if found is None:
                raise ImageNotFound(f"No such image: {image.id}")
            conn.execute(
                "INSERT OR REPLACE INTO tags (name, manifest_digest, updated) VALUES (?, ?, ?)",
                (str(tagged), str(image.manifest_digest), now_rfc3339()),
            )
        return tagged

    def remove(
        self, text: str, *, users: ImageUsers, force: bool = False, prune: bool = True
    ) -> RemoveReport:
        """``docker rmi``: untag a name, or delete an image by ID (see `strata.image.remove`).

        ``users`` says which containers use an image (`strata.runtime.imageusers.image_users`).
        """
        from strata.image.remove import remove_image

        return remove_image(self, text, users=users, force=force, prune=prune)

    def prune(self, *, users: ImageUsers, dangling_only: bool = True) -> RemoveReport:
        """``docker image prune``: delete untagged images (all unused ones with ``-a``)."""
        from strata.image.remove import prune_images

        return prune_images(self, users=users, dangling_only=dangling_only)

    # -- internals -------------------------------------------------------------------------

    def _discard_new(self, blobs_before: set[Digest], ingests_before: set[str]) -> None:
        with self.db.transaction(reclaim=True) as conn:
            live = live_blobs(self.content, conn) | held(conn, "blob")
            for info in self.content.walk():
                if info.digest not in blobs_before and str(info.digest) not in live:
                    self.content.delete(info.digest)
        self._discard_new_ingests(ingests_before)

    def _discard_new_ingests(self, ingests_before: set[str]) -> None:
        for ingest in self.content.ingests():
            if ingest.ref not in ingests_before:
                with contextlib.suppress(StrataError):
                    self.content.abort_ingest(ingest.ref)

    def _by_id_prefix(self, text: str) -> Image | None:
        """The one image whose ID or manifest digest starts with ``text``'s hex; `Conflict`
        when it names more than one image ID.

        A prefix is a key range on the digest indexes, one per algorithm the content store
        keeps (an image's digests are always of those): ``[alg:prefix, alg:prefiy)``.
        """
        prefix = text.removeprefix("sha256:")
        ranges: list[str] = []
        params: list[str] = []
        for algorithm in _ID_ALGORITHMS:
            low = f"{algorithm}:{prefix}"
            high = low[:-1] + chr(ord(low[-1]) + 1)
            for column in ("config_digest", "manifest_digest"):
                ranges.append(f"SELECT rowid FROM images WHERE {column} >= ? AND {column} < ?")
                params += [low, high]
        # A UNION of range searches: SQLite plans an OR of ranges as a scan of the table.
        where = f"rowid IN ({' UNION ALL '.join(ranges)})"
        found = {i.config_digest: i for i in self._select(where, params)}
        if len(found) > 1:
            raise Conflict(f"image ID prefix {text!r} is ambiguous: it matches {len(found)} images")
        return next(iter(found.values()), None)


def _images(
    rows: Sequence[sqlite3.Row], tags: Sequence[sqlite3.Row], repo_digests: Sequence[sqlite3.Row]
) -> list[Image]:
    """Images from their rows and the rows of their names, newest first (by creation time,
    then by when they were added)."""
    names: dict[str, list[Reference]] = {}
    for tag in tags:
        names.setdefault(tag["manifest_digest"], []).append(parse_reference(tag["name"]))
    digests: dict[str, list[str]] = {}
    for rd in repo_digests:
        digests.setdefault(rd["manifest_digest"], []).append(
            f"{rd['repository']}@{rd['digest'] or rd['manifest_digest']}"
        )
    images = [_image_from_row(row, names.get(row["manifest_digest"], []), digests) for row in rows]
    images.sort(key=lambda i: (i.created or "", i.added), reverse=True)
    return images


def _image_from_row(
    row: sqlite3.Row, tags: list[Reference], repo_digests: dict[str, list[str]]
) -> Image:
    return Image(
        manifest_digest=Digest.parse(row["manifest_digest"]),
        config_digest=Digest.parse(row["config_digest"]),
        media_type=row["media_type"],
        created=row["created"],
        size=int(row["size"]),
        added=row["added"],
        tags=tuple(sorted(tags, key=str)),
        repo_digests=tuple(sorted(repo_digests.get(row["manifest_digest"], []))),
        intermediate=bool(row["intermediate"]),
    )


def _blob_hold(lease: Lease) -> Hold:
    return lambda keys: lease.add_all("blob", keys)


def _marks(count: int) -> str:
    """``?, ?, ...`` placeholders for an ``IN`` list of ``count`` values."""
    return ",".join("?" * count)
