"""Fixtures for the runtime tests: a Debian rootfs (extracted once), overlays, backends."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.runtime.backend import RuntimeBackend
from strata.runtime.select import backend_by_name
from tests.conftest import debian_rootfs_tar

DEBIAN_DIR = Path(os.environ.get("STRATA_TEST_ROOTFS", "/var/tmp/strata-test-rootfs"))
BACKENDS = ["runc", "chroot"]


@pytest.fixture(scope="session")
def debian_rootfs() -> Path:
    """A Debian bookworm minbase rootfs, extracted once into a cached directory."""
    if (DEBIAN_DIR / "bin" / "sh").exists() or (DEBIAN_DIR / "usr" / "bin" / "sh").exists():
        return DEBIAN_DIR
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tar = debian_rootfs_tar()
    partial = DEBIAN_DIR.with_name(DEBIAN_DIR.name + f".{os.getpid()}.tmp")
    partial.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(tar), "-C", str(partial)], check=True)
    try:
        partial.rename(DEBIAN_DIR)
    except OSError:  # another session extracted it meanwhile
        shutil.rmtree(partial)
    return DEBIAN_DIR


@pytest.fixture
def rootfs(debian_rootfs: Path, tmp_path: Path) -> Iterator[Path]:
    """A private writable view of the Debian rootfs (overlayfs), as a container gets."""
    from strata.runtime import syscalls

    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    options = f"lowerdir={debian_rootfs},upperdir={upper},workdir={work}"
    syscalls.mount("overlay", str(merged), "overlay", 0, options)
    try:
        yield merged
    finally:
        syscalls.umount2(str(merged), syscalls.MNT_DETACH)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> RuntimeBackend:
    """Each backend in turn, on a fresh state root."""
    name: str = request.param
    if name == "runc" and shutil.which("runc") is None:
        pytest.skip("needs runc")
    return backend_by_name(name, tmp_path / "state")
