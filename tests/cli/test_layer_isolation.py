"""A container never modifies the image layers it stands on (checksums before and after)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from strata.image.root import StoreRoot
from strata.snapshot import Kind
from strata.snapshot.select import default_snapshotter
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]


def _tree_digest(root: Path) -> str:
    """Names, types, modes, owners, sizes, link targets and file bytes of a whole tree."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            digest.update(f"{path.relative_to(root)} {st.st_mode} {st.st_uid} {st.st_gid}".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _layer_digests(store: Path) -> dict[str, str]:
    root = StoreRoot(store)
    snapshotter = default_snapshotter(root.path, root.db)
    layers = {
        info.key: _tree_digest(snapshotter.upper(info.key))
        for info in snapshotter.walk()
        if info.kind is Kind.COMMITTED and info.key.startswith("layer-")
    }
    root.close()
    return layers


def test_containers_leave_image_layers_untouched(strata: Strata) -> None:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    strata("run", "--rm", "debian:bookworm", "true")  # unpack
    before = _layer_digests(strata.root)
    assert before
    vandal = (
        "echo x >> /etc/passwd; rm -rf /usr/share/doc /bin/ls; chmod 777 /etc;"
        " chown 1:1 /etc/hostname 2>/dev/null; mkdir /new; echo y > /usr/bin/apt-get"
    )
    strata("run", "--name", "v1", "debian:bookworm", "sh", "-c", vandal, check=False)
    strata("run", "--name", "v2", "debian:bookworm", "sh", "-c", vandal, check=False)
    strata("commit", "v1", "vandal:1")
    strata("run", "--rm", "vandal:1", "true")  # unpacks the committed layer on top
    after = _layer_digests(strata.root)
    assert {k: after[k] for k in before} == before
    # The original image still has everything the containers deleted.
    assert strata("run", "--rm", "debian:bookworm", "ls", "/bin/ls").stdout == "/bin/ls\n"
