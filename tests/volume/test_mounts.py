"""`strata.runtime.mounts`: Docker's ``-v``, ``--mount`` and ``--tmpfs`` grammar, and what a
``--volumes-from`` or ``ps --filter volume=`` sees of a container's mounts."""

from __future__ import annotations

import pytest

from strata.errors import InvalidArgument
from strata.runtime.mounts import (
    MountPoint,
    inherited,
    mounts_volume,
    parse_mount_flag,
    parse_volume_flag,
    ram_bytes,
    tmpfs_mount,
)


def test_volume_flag_forms() -> None:
    assert parse_volume_flag("/anon").anonymous
    assert not parse_volume_flag("/anon:ro").rw
    named = parse_volume_flag("data:/srv")
    assert (named.kind, named.source, named.mode, named.copy) == ("volume", "data", "z", True)
    assert not parse_volume_flag("data:/srv:ro,nocopy").copy
    bind = parse_volume_flag("/h:/c:ro")
    assert (bind.kind, bind.rw, bind.mode, bind.propagation) == ("bind", False, "ro", "rprivate")
    with pytest.raises(InvalidArgument, match="invalid mode: zz"):
        parse_volume_flag("data:/x:zz")


def test_mount_flag_and_tmpfs() -> None:
    mount = parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770")
    assert mount.options == ("nosuid", "nodev", "noexec", f"size={64 << 20}", "mode=1770")
    assert mount.spec == {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {
        "SizeBytes": 64 << 20, "Mode": 0o1770}}  # fmt: skip
    anonymous = parse_mount_flag("target=/v,volume-nocopy")
    assert anonymous.anonymous and not anonymous.copy
    assert ram_bytes("1g") == 1 << 30
    assert tmpfs_mount("/t", "exec,size=2m").options == ("nosuid", "nodev", "size=2m")
    with pytest.raises(InvalidArgument, match="field VolumeOptions must not be specified"):
        parse_mount_flag("type=bind,source=/,target=/x,volume-nocopy")


def test_inherited_and_filter() -> None:
    mounts = [parse_volume_flag("data:/srv"), parse_mount_flag("type=tmpfs,target=/t")]
    [taken] = inherited(mounts, readonly=True)
    assert (taken.source, taken.rw, taken.mode, taken.copy) == ("data", False, "", False)
    assert mounts_volume(mounts, "data") and mounts_volume(mounts, "/srv")
    assert not mounts_volume(mounts, "/t") and not mounts_volume(mounts, "other")
    assert MountPoint.from_json(taken.to_json()) == taken
