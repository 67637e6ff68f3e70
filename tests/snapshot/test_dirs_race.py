"""A new snapshot directory taken by a cleanup before its maker locked it (a stress test found
``cannot create snapshot …: snapshots/new-…: No such file or directory``)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

from strata.snapshot import dirs
from strata.snapshot.dirs import lock_dir, make_locked_dir, remove_tree, unlock


def test_a_directory_taken_before_its_lock_is_replaced_by_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = tempfile.mkdtemp

    def made_then_taken(prefix: str, dir: Path) -> str:
        path = real(prefix=prefix, dir=dir)
        made.append(path)
        if len(made) == 1:  # a cleanup sees it unlocked, locks it and removes it
            lock = lock_dir(Path(path), wait=False)
            assert lock is not None
            remove_tree(Path(path))
            unlock(lock)
        return path

    monkeypatch.setattr(dirs.tempfile, "mkdtemp", made_then_taken)
    path, fd = make_locked_dir(tmp_path, "new-")
    try:
        assert len(made) == 2 and str(path) == made[1] and path.is_dir()
        with pytest.raises(BlockingIOError):  # ours, locked
            other = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(other)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == [path.name]
