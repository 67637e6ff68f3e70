"""One store per module with a real Debian image in it: each test makes its debris, checks that
``system check`` names it, repairs it, and leaves the store clean for the next."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strata]:
    strata = Strata(tmp_path_factory.mktemp("system") / "store")
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    yield strata
    strata("rm", "-f", *strata("ps", "-aq").stdout.split(), check=False)


def check(strata: Strata, *args: str) -> tuple[int, list[str]]:
    """``system check``'s exit status and lines (a traceback fails the test)."""
    proc = strata("system", "check", *args, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == "", proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def assert_clean(strata: Strata) -> None:
    code, lines = check(strata)
    assert (code, lines) == (0, ["no problems found"])


def found(strata: Strata, *expected: str) -> list[str]:
    """Check, which must fail naming each ``expected`` text in a line of its own; then repair."""
    code, lines = check(strata)
    assert code == 1, lines
    for text in expected:
        assert any(text in line for line in lines[:-1]), (text, lines)
    assert lines[-1].endswith("found (strata system check --repair fixes what it can)")
    return lines


def repair(strata: Strata) -> list[str]:
    """``check --repair`` fixes everything; then the store checks clean."""
    code, lines = check(strata, "--repair")
    assert code == 0, lines
    assert lines[-1].endswith(" left") and lines[-1].endswith(", 0 left"), lines
    assert_clean(strata)
    return lines


def sql(strata: Strata, statement: str, *params: object) -> list[tuple[object, ...]]:
    """A statement run on the store's database as a crash or a bit flip might leave it."""
    conn = sqlite3.connect(Path(strata.root) / "strata.db")
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()
