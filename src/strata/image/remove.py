"""``docker rmi`` and ``docker image prune`` over the image store, with Docker's rules.

A name is untagged at once unless it is the image's only reference and a container uses the
image (moby's ``isSingleReference``: at most one tag, all names in one repository); an ID needs
``-f`` when the image has several names or a stopped container uses it, and cannot be removed
while a running container uses it. Unlike Docker, ``-f`` never deletes an image a container
still stands on: its layers are the container's lower layers, so only its names go.

Containers are a higher package's records (`strata.runtime`), so the caller says who uses an image:
an `ImageUsers` check, asked inside the removal's own transaction so that a container recorded
concurrently either is seen here or finds the image gone when it records itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from strata.digest import Digest
from strata.errors import Conflict, ImageNotFound, InvalidReference
from strata.image.gc import collect
from strata.image.store import RemoveReport, _marks
from strata.oci.reference import Reference, parse_reference

if TYPE_CHECKING:
    from strata.image.store import Image, ImageStore


@dataclass(frozen=True, slots=True)
class ImageUser:
    """A container made from an image: what Docker's removal rules need to know of it."""

    container_id: str
    running: bool


class ImageUsers(Protocol):
    """The containers made from any of ``manifest_digests``, oldest first.

    Asked with the removal's connection, inside its write transaction: it must read through
    ``conn`` and neither commit nor write.
    """

    def __call__(
        self, conn: sqlite3.Connection, manifest_digests: Sequence[str], /
    ) -> list[ImageUser]: ...


def remove_image(
    store: ImageStore, text: str, *, users: ImageUsers, force: bool = False, prune: bool = True
) -> RemoveReport:
    """``docker rmi``: untag a name, or delete an image by ID; then collect its blobs.

    Removing by name only untags while other names remain; removing by ID an image with
    several names needs ``force``, as in Docker.
    """
    image = store.get(text)
    report = RemoveReport()
    by_name = _names_tag(text, image)
    with store.db.transaction(reclaim=True, what=f"removing image {text}") as conn:
        siblings = _rows_with_config(conn, image.config_digest)
        if not siblings:
            # Removed by another command since the lookup: nothing of it is left to remove.
            raise ImageNotFound(f"No such image: {text}")
        # Every container on an image with this ID (any of its manifests) counts.
        found = users(conn, siblings)
        in_use = [user.container_id for user in found]
        running = [user.container_id for user in found if user.running]
        names = [
            row["name"]
            for row in conn.execute(
                f"SELECT name FROM tags WHERE manifest_digest IN ({_marks(len(siblings))})"
                " ORDER BY name",
                siblings,
            )
        ]
        if by_name is not None:
            # Docker's rule: a name is taken away at once unless it is the image's only
            # reference and a container uses the image (it would be left dangling).
            if in_use and not force and _single_reference(conn, names, siblings):
                raise Conflict(
                    f'conflict: unable to remove repository reference "{text}" (must'
                    f" force) - container {in_use[0][:12]} is using its referenced image"
                    f" {image.id.short}"
                )
            conn.execute("DELETE FROM tags WHERE name = ?", (str(by_name),))
            report.untagged.append(by_name.familiar)
            if len(names) > 1:
                return report
        else:
            if running:
                raise Conflict(
                    f"conflict: unable to delete {image.id.short} (cannot be forced) - image"
                    f" is being used by running container {running[0][:12]}"
                )
            if len(names) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id.short} (must be forced) - image"
                    " is referenced in multiple repositories"
                )
            if in_use and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id.short} (must be forced) - image"
                    f" is being used by stopped container {in_use[0][:12]}"
                )
            for name in names:
                conn.execute("DELETE FROM tags WHERE name = ?", (name,))
                report.untagged.append(parse_reference(name).familiar)
        if in_use:
            # Docker keeps an image that containers use: -f only takes its names away.
            return report
        for digest in _rows_with_config(conn, image.config_digest):
            conn.execute("DELETE FROM images WHERE manifest_digest = ?", (digest,))
        report.deleted.append(image.config_digest)
    if prune:
        report.reclaimed = collect(store).reclaimed
    return report


def prune_images(
    store: ImageStore, *, users: ImageUsers, dangling_only: bool = True
) -> RemoveReport:
    """``docker image prune``: delete untagged images (all unused ones with ``-a``)."""
    report = RemoveReport()
    images = store.all()
    with store.db.read() as conn:
        used = {
            i.config_digest for i in images if users(conn, _rows_with_config(conn, i.config_digest))
        }
    for image in images:
        if (dangling_only and (image.tags or image.intermediate)) or image.config_digest in used:
            continue
        try:
            removed = remove_image(
                store, str(image.manifest_digest), users=users, force=True, prune=False
            )
        except (ImageNotFound, Conflict):
            # Removed meanwhile, or a container started on it since the listing: as Docker's
            # prune, skip it rather than fail the whole prune over a race.
            continue
        report.untagged.extend(removed.untagged)
        report.deleted.extend(d for d in removed.deleted if d not in report.deleted)
    report.reclaimed = collect(store).reclaimed
    return report


def _single_reference(conn: sqlite3.Connection, names: list[str], manifests: list[str]) -> bool:
    """Docker's ``isSingleReference``: at most one tag, and every name (repo digests too)
    in one repository."""
    if len(names) > 1:
        return False
    repositories = {parse_reference(name).name for name in names}
    repositories.update(
        row[0]
        for row in conn.execute(
            f"SELECT repository FROM repo_digests WHERE manifest_digest IN"
            f" ({_marks(len(manifests))})",
            manifests,
        )
    )
    return len(repositories) <= 1


def _rows_with_config(conn: sqlite3.Connection, config_digest: Digest) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT manifest_digest FROM images WHERE config_digest = ?", (str(config_digest),)
        )
    ]


def _names_tag(text: str, image: Image) -> Reference | None:
    """The tag ``text`` names when it resolved through a tag (not an ID or digest)."""
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    if ref.digest is not None:
        return None
    tagged = ref.with_default_tag()
    return tagged if tagged in image.tags else None
