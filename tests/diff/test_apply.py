"""The one unpacker, on real snapshots (overlayfs and the copying snapshotter): whiteouts and
opaque directories, diff IDs checked, and nothing left behind by a failure or a lost race."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pytest

from strata.diff.apply import apply_to_snapshot, has_snapshot
from strata.digest import Digest
from strata.errors import DigestMismatch, StrataError
from strata.snapshot import Kind
from strata.snapshot.base import DirSnapshotter
from tests.layer.members import directory, file, tar
from tests.snapshot.helpers import files, mounted

pytestmark = pytest.mark.root

BASE = tar(
    directory("a"),
    file("a/x", b"x"),
    file("a/y", b"y"),
    directory("d"),
    file("d/old", b"old"),
    directory("d/sub"),
    file("d/sub/deep", b"deep"),
    file("f", b"f"),
)
TOP = tar(
    file(".wh.f"),
    file("a/.wh.x"),
    directory("d"),
    file("d/.wh..wh..opq"),
    file("d/new", b"new"),
    file("g", b"g"),
)


def diff_id(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def put(
    snap: DirSnapshotter, data: bytes, key: str, parent: str | None = None, **kw: object
) -> None:
    """Apply ``data`` as ``key`` on ``parent``, its real diff ID expected unless given."""
    expected = kw.pop("diff_id", diff_id(data))
    apply_to_snapshot(
        snap,
        io.BytesIO(data),
        key=key,
        parent=parent,
        active=f"active-{key}",
        diff_id=expected,  # type: ignore[arg-type]
        source=f"layer {key}",
        **kw,  # type: ignore[arg-type]
    )


def seen(snap: DirSnapshotter, key: str, work: Path) -> dict[str, str]:
    """What a container stacked on ``key`` sees."""
    snap.view(f"look-{key}", key)
    try:
        with mounted(snap, f"look-{key}", work) as target:
            return files(target)
    finally:
        snap.remove(f"look-{key}")


def keys(snap: DirSnapshotter) -> list[tuple[str, Kind]]:
    return [(info.key, info.kind) for info in snap.walk()]


def test_whiteouts_and_opaque_directories_in_the_snapshotters_own_form(
    snap: DirSnapshotter, tmp_path: Path
) -> None:
    put(snap, BASE, "base")
    put(snap, TOP, "top", "base")
    assert keys(snap) == [("base", Kind.COMMITTED), ("top", Kind.COMMITTED)]
    assert seen(snap, "top", tmp_path) == {
        "a": "<dir>",
        "a/y": "y",
        "d": "<dir>",
        "d/new": "new",
        "g": "g",
    }
    assert seen(snap, "base", tmp_path)["d/sub/deep"] == "deep"  # the parent is untouched
    upper = files(snap.upper("top"))
    if snap.name == "overlay":  # only the change, deletions as overlayfs spells them
        assert upper["f"] == "<char 0,0>" and upper["a/x"] == "<char 0,0>"
        assert "a/y" not in upper
    else:  # the whole tree, deletions done
        assert "f" not in upper and "a/x" not in upper and upper["a/y"] == "y"


def test_a_compressed_layer_reports_its_progress(snap: DirSnapshotter, tmp_path: Path) -> None:
    blob = gzip.compress(BASE, mtime=0)
    read: list[int] = []
    put(snap, blob, "base", diff_id=diff_id(BASE), progress=read.append)
    assert sum(read) == len(blob)
    assert seen(snap, "base", tmp_path)["a/x"] == "x"


def test_a_diff_id_mismatch_leaves_no_snapshot(snap: DirSnapshotter) -> None:
    put(snap, BASE, "base")
    before = keys(snap)
    with pytest.raises(DigestMismatch, match="layer top"):
        put(snap, TOP, "top", "base", diff_id=Digest.of(b"not this layer"))
    assert keys(snap) == before
    assert not has_snapshot(snap, "active-top")


def test_a_failed_verification_commits_nothing(snap: DirSnapshotter) -> None:
    def download_failed() -> None:
        raise StrataError("the download failed")

    with pytest.raises(StrataError, match="the download failed"):
        put(snap, BASE, "base", verified=download_failed)
    assert keys(snap) == []


def test_two_appliers_of_the_same_key_keep_one_snapshot(
    snap: DirSnapshotter, tmp_path: Path
) -> None:
    put(snap, BASE, "base")

    def other_process_first() -> None:
        # Between our apply and our commit, another applier commits the same key.
        apply_to_snapshot(
            snap,
            io.BytesIO(TOP),
            key="top",
            parent="base",
            active="theirs",
            diff_id=diff_id(TOP),
            source="their layer",
        )

    put(snap, TOP, "top", "base", verified=other_process_first)
    assert keys(snap) == [("base", Kind.COMMITTED), ("top", Kind.COMMITTED)]
    assert seen(snap, "top", tmp_path)["d/new"] == "new"
    put(snap, TOP, "top", "base")  # again, after the fact: ours is dropped, theirs stays
    assert keys(snap) == [("base", Kind.COMMITTED), ("top", Kind.COMMITTED)]
