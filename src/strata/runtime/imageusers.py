"""Which containers use an image: the answer `strata.image.remove` asks of its caller.

Image removal sits a row below the runtime and may not read its ``containers`` table; the
runtime, which owns it, answers instead (`strata.image.remove.ImageUsers`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from strata.image.remove import ImageUser
from strata.runtime.containers import State


def image_users(conn: sqlite3.Connection, manifest_digests: Sequence[str], /) -> list[ImageUser]:
    """The containers made from any of ``manifest_digests``, oldest first, read through ``conn``
    (the caller's transaction, so that a container being created is seen or sees the removal)."""
    if not manifest_digests:
        return []
    marks = ", ".join("?" * len(manifest_digests))
    return [
        ImageUser(str(row[0]), row[1] == State.RUNNING)
        for row in conn.execute(
            f"SELECT id, state FROM containers WHERE image IN ({marks}) ORDER BY created",
            list(manifest_digests),
        )
    ]
