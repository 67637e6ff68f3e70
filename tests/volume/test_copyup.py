"""`strata.volume.copyup`: an empty volume takes a directory's content whole; a full one is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.volume.copyup import copy_into_empty


@pytest.mark.root
def test_copies_owner_mode_xattrs_links_into_an_empty_volume(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "vol"
    (source / "d").mkdir(parents=True)
    target.mkdir()
    (source / "d" / "f").write_text("x")
    os.chown(source / "d", 1, 2)
    os.chmod(source / "d", 0o710)
    os.chmod(source, 0o750)
    os.symlink("/etc/shadow", source / "link")
    os.link(source / "d" / "f", source / "hard")
    os.setxattr(source / "d" / "f", "user.k", b"v")
    assert copy_into_empty(source, target)
    info = os.stat(target / "d")
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (1, 2, 0o710)
    assert os.stat(target).st_mode & 0o7777 == 0o750  # the mount point's own mode too
    assert os.readlink(target / "link") == "/etc/shadow"
    assert os.stat(target / "hard").st_ino == os.stat(target / "d" / "f").st_ino
    assert os.getxattr(target / "d" / "f", "user.k") == b"v"
    (source / "new").write_text("y")
    assert not copy_into_empty(source, target)  # not empty any more: never copied again
    assert not (target / "new").exists()
