"""Fixtures of the diff tests: each snapshotter implementation on a fresh store (`snap`), and
the snapshot tests' check that nothing stays mounted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.snapshot.base import DirSnapshotter
from strata.store.db import Database
from tests.snapshot.conftest import IMPLEMENTATIONS, no_stray_mounts

__all__ = ["no_stray_mounts"]


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def snap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DirSnapshotter]:
    root = tmp_path / "store"
    root.mkdir()
    db = Database(root / "strata.db")
    try:
        yield IMPLEMENTATIONS[request.param](root, db)
    finally:
        db.close()
