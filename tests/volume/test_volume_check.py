"""``system check`` finds what a killed volume create or removal leaves and repairs it; ``system
df`` counts volumes."""

from __future__ import annotations

import shutil

from tests.conftest import Strata


def _check(strata: Strata, *args: str) -> tuple[int, list[str]]:
    proc = strata("system", "check", *args, check=False)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def test_check_finds_and_repairs_volume_debris(strata: Strata) -> None:
    strata("volume", "create", "kept")
    strata("volume", "create", "lost")
    assert _check(strata) == (0, ["no problems found"])
    volumes = strata.root / "volumes"
    (volumes / "half" / "_data").mkdir(parents=True)  # a create killed before its commit
    (volumes / ".removing-0123").mkdir()  # a removal killed after its commit
    shutil.rmtree(volumes / "lost")
    code, lines = _check(strata)
    assert code == 1
    assert any(line.startswith("volume volumes/half: a directory without") for line in lines)
    assert any(line.startswith("volume volumes/.removing-0123: ") for line in lines)
    assert "volume lost: its directory is gone" in lines
    code, lines = _check(strata, "--repair")
    assert code == 0, lines
    assert _check(strata) == (0, ["no problems found"])
    assert sorted(p.name for p in volumes.iterdir()) == ["kept", "lost"]
    assert strata("volume", "ls", "-q").stdout.split() == ["kept", "lost"]


def test_df_counts_volumes(strata: Strata) -> None:
    empty = strata("system", "df").stdout
    assert "Local Volumes   0         0         0B        0B\n" in empty
    strata("volume", "create", "v1")
    (strata.root / "volumes" / "v1" / "_data" / "f").write_bytes(b"x" * 2000)
    out = strata("system", "df").stdout
    assert "Local Volumes   1         0         2kB       2kB (100%)\n" in out
