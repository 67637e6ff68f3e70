"""Fixtures of the snapshot tests: the implementations under test (`env`), and a check that
every test leaves no mount behind under its temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.snapshot.base import DirSnapshotter
from strata.snapshot.copy import CopySnapshotter
from strata.snapshot.mount import mount_points, unmount
from strata.snapshot.overlay import OverlaySnapshotter
from strata.store.db import Database
from tests.snapshot.helpers import mounted


@pytest.fixture(autouse=True)
def no_stray_mounts(tmp_path: Path) -> Iterator[None]:
    yield
    stray = mount_points(tmp_path)
    if stray:
        unmount(tmp_path, detach=True)
    assert stray == [], f"mounts left behind: {stray}"


IMPLEMENTATIONS: dict[str, Callable[[Path, Database], DirSnapshotter]] = {
    "overlay": OverlaySnapshotter,
    "copy": CopySnapshotter,
}


@dataclass
class Env:
    snap: DirSnapshotter
    root: Path
    work: Path
    name: str

    def layer(self, name: str, parent: str | None, change: Callable[[Path], None]) -> None:
        """Commit ``name``: a child of ``parent`` changed through a real mount by ``change``."""
        self.snap.prepare(f"{name}-active", parent)
        with mounted(self.snap, f"{name}-active", self.work) as target:
            change(target)
        self.snap.commit(name, f"{name}-active")


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    root = tmp_path / "store"
    root.mkdir()
    db = Database(root / "strata.db")
    try:
        yield Env(IMPLEMENTATIONS[request.param](root, db), root, tmp_path, request.param)
    finally:
        db.close()
