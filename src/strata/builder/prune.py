"""``builder prune``: drop the build cache and the intermediate images only it kept."""

from __future__ import annotations

from strata.builder.cache import BuildCache
from strata.errors import Conflict, NotFound
from strata.image.gc import collect
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.runtime.imageusers import image_users


def prune_build_cache(root: StoreRoot) -> tuple[list[str], int]:
    """Remove every cache record, then each untagged intermediate image no container uses.

    Returns the removed image IDs and the bytes gc reclaimed.
    """
    images = ImageStore(root)
    BuildCache(root.db).prune()
    removed: list[str] = []
    for image in images.all():
        if not image.intermediate or image.tags or image.repo_digests:
            continue
        try:
            report = images.remove(str(image.id), users=image_users, force=False, prune=False)
        except (Conflict, NotFound):
            continue  # a container stands on it, or a sibling went first
        removed.extend(str(d) for d in report.deleted)
    return removed, collect(images).reclaimed
