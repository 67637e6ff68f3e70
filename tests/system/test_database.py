"""A damaged database: ``system check`` says so on its own, as the one problem, and leaves it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata
from tests.system.conftest import assert_clean, check


def test_a_damaged_database_is_reported_alone(strata: Strata, tmp_path: Path) -> None:
    strata("import", str(rootfs_tar(tmp_path / "rootfs.tar", {"./hello": b"hi\n"})), "small:1")
    assert_clean(strata)
    db = Path(strata.root) / "strata.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:
        f.seek(size * (page - 1) + 8)
        f.write(b"\xff" * 64)
    code, lines = check(strata)
    assert code == 1
    problems = [line for line in lines[:-1] if not line.startswith("  ")]
    assert problems and all(line.startswith("database strata.db: ") for line in problems), lines
    assert "  to fix: copy the store elsewhere and run sqlite3 strata.db .recover" in lines
    assert lines[-1].endswith(" found (strata system check --repair fixes what it can)")
    code, lines = check(strata, "--repair")
    assert code == 1
    # Nothing repaired, everything left (how many lines SQLite finds may vary between runs).
    assert re.fullmatch(r"(\d+) problems? found, 0 repaired, \1 left", lines[-1]), lines
