"""mount(2)/umount2(2) through ctypes: flags, relative overlay options, cwd, errors, unwinding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.errors import InvalidArgument, StrataError
from strata.snapshot import Mount
from strata.snapshot.mount import (
    PAGE_SIZE,
    mount_all,
    mount_points,
    option_data,
    shorten,
    unmount,
)


def _options(target: Path) -> tuple[str, str]:
    """The mount options and optional fields of the newest mount at ``target``."""
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        fields = line.split(" ")
        if fields[4] == str(target):
            return fields[5], " ".join(fields[6 : fields.index("-")])
    raise AssertionError(f"{target} is not mounted")


def _dirs(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        out.append(tmp_path / name)
    return out


def test_shorten_makes_overlay_paths_relative() -> None:
    mount = Mount(
        "overlay",
        "overlay",
        ("index=off", "lowerdir=/s/l/A:/s/l/B", "upperdir=/s/snapshots/3/fs", "workdir=/s/w"),
    )
    short, base = shorten(mount)
    assert base == "/s"
    assert short.options == (
        "index=off",
        "lowerdir=l/A:l/B",
        "upperdir=snapshots/3/fs",
        "workdir=w",
    )
    assert option_data(mount) == "index=off,lowerdir=l/A:l/B,upperdir=snapshots/3/fs,workdir=w"
    lowers_only = Mount("overlay", "overlay", ("lowerdir=/s/l/A:/s/l/B",))
    assert shorten(lowers_only) == (Mount("overlay", "overlay", ("lowerdir=A:B",)), "/s/l")
    for unchanged in (
        Mount("bind", "/s/x", ("rbind", "ro")),
        Mount("overlay", "overlay", ("lowerdir=l/A:l/B",)),
        Mount("overlay", "overlay", ("lowerdir=/a/x:/b/y",)),
    ):
        assert shorten(unchanged) == (unchanged, None)
    assert option_data(Mount("bind", "/x", ("rbind", "ro", "nosuid", "private"))) == ""


def test_options_over_a_page_are_refused(tmp_path: Path) -> None:
    lowers = ":".join(f"/a{i}/{'x' * 40}" for i in range(100))
    with pytest.raises(InvalidArgument, match=f"more than mount.2. accepts .{PAGE_SIZE - 1}."):
        mount_all([Mount("overlay", "overlay", (f"lowerdir={lowers}",))], tmp_path)


@pytest.mark.root
def test_overlay_mount_restores_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower, upper, work, target, elsewhere = _dirs(tmp_path, "l", "u", "w", "t", "cwd")
    (lower / "f").write_text("f")
    monkeypatch.chdir(elsewhere)
    good = Mount(
        "overlay", "overlay", (f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}")
    )
    mount_all([good], target)
    assert os.getcwd() == str(elsewhere)
    assert _options(target)[0].startswith("rw")
    assert (target / "f").read_text() == "f"
    unmount(target)
    bad = Mount("overlay", "overlay", (f"lowerdir={tmp_path}/missing", f"upperdir={upper}"))
    with pytest.raises(StrataError) as caught:
        mount_all([bad], target)
    assert os.getcwd() == str(elsewhere)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot mount overlay on {target}: ")
    assert mount_points(tmp_path) == []


@pytest.mark.root
def test_bind_flags_and_propagation(tmp_path: Path) -> None:
    source, target = _dirs(tmp_path, "src", "target")
    (source / "f").write_text("f")
    mount_all([Mount("bind", str(source), ("rbind", "ro", "nosuid", "nodev", "private"))], target)
    options, optional = _options(target)
    assert set(options.split(",")) >= {"ro", "nosuid", "nodev"}
    assert "shared:" not in optional
    with pytest.raises(OSError):
        (target / "g").write_text("g")
    unmount(target)
    assert mount_points(target) == []


@pytest.mark.root
def test_mount_all_is_all_or_nothing(tmp_path: Path) -> None:
    source, target = _dirs(tmp_path, "src", "target")
    mounts = [
        Mount("bind", str(source), ("rbind",)),
        Mount("tmpfs", "tmpfs", ("size=1m",)),
        Mount("bind", str(tmp_path / "missing"), ("rbind",)),
    ]
    with pytest.raises(StrataError, match=f"cannot mount bind on {target}: No such file"):
        mount_all(mounts, target)
    assert mount_points(target) == []


@pytest.mark.root
def test_unmount_takes_stacked_and_nested_mounts(tmp_path: Path) -> None:
    (target,) = _dirs(tmp_path, "with space")
    mount_all([Mount("tmpfs", "tmpfs", ("size=1m",)), Mount("tmpfs", "tmpfs", ())], target)
    (target / "inner").mkdir()
    mount_all([Mount("tmpfs", "tmpfs", ())], target / "inner")
    assert mount_points(tmp_path) == [target, target, target / "inner"]
    unmount(target)
    assert mount_points(tmp_path) == []
    unmount(target)  # nothing mounted: nothing to do


@pytest.mark.root
def test_busy_mounts(tmp_path: Path) -> None:
    (target,) = _dirs(tmp_path, "target")
    mount_all([Mount("tmpfs", "tmpfs", ())], target)
    fd = os.open(target / "open", os.O_CREAT | os.O_WRONLY)
    try:
        with pytest.raises(StrataError, match=f"cannot unmount {target}: Device or resource busy"):
            unmount(target)
        unmount(target, detach=True)
        assert mount_points(tmp_path) == []
    finally:
        os.close(fd)
