"""Choosing the snapshotter: the probe, the recorded choice, and hosts where overlay fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.errors import InvalidArgument, StoreError
from strata.snapshot.copy import CopySnapshotter
from strata.snapshot.mount import mount_all, mount_points, unmount
from strata.snapshot.overlay import OverlaySnapshotter, overlay_mount
from strata.snapshot.select import (
    CHOICE_FILE,
    default_snapshotter,
    open_snapshotter,
    overlay_works,
)
from strata.store.db import Database

pytestmark = pytest.mark.root


def test_overlay_is_chosen_here_and_remembered(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Database(tmp_path / "strata.db") as db:
        assert isinstance(default_snapshotter(root, db), OverlaySnapshotter)
        choice = root / "snapshots" / CHOICE_FILE
        assert choice.read_text() == "overlay\n"
        assert sorted(os.listdir(root / "snapshots")) == [CHOICE_FILE]  # the probe is gone
        # The recorded choice wins over probing again.
        choice.write_text("copy\n")
        assert isinstance(default_snapshotter(root, db), CopySnapshotter)
        choice.write_text("zfs\n")
        with pytest.raises(StoreError, match="unknown snapshotter 'zfs'"):
            default_snapshotter(root, db)
        with pytest.raises(InvalidArgument, match="unknown snapshotter 'aufs'"):
            open_snapshotter("aufs", root, db)
    assert mount_points(tmp_path) == []


def test_copy_where_overlay_cannot_work(tmp_path: Path) -> None:
    # overlayfs cannot take an upper dir on overlayfs: a store inside a container's rootfs.
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for path in (lower, upper, work, merged):
        path.mkdir()
    mount_all([overlay_mount([lower], upper, work)], merged)
    try:
        assert not overlay_works(merged)
        with Database(tmp_path / "strata.db") as db:
            snap = default_snapshotter(merged / "store", db)
            assert isinstance(snap, CopySnapshotter)
            assert (merged / "store" / "snapshots" / CHOICE_FILE).read_text() == "copy\n"
        assert sorted(os.listdir(merged / "store" / "snapshots")) == [CHOICE_FILE]
    finally:
        unmount(merged)
    bad = tmp_path / "a:b"
    bad.mkdir()
    assert not overlay_works(bad)
