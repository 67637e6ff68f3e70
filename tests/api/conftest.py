"""Fixtures for the API's tests: a fresh store root holding a real Debian image."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import debian_rootfs_tar

BASE = "debian:bookworm"


def import_debian(root: Path) -> None:
    """Put the cached Debian rootfs into the store at ``root`` as ``debian:bookworm``."""
    from strata.image.imports import import_rootfs
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore
    from strata.oci.reference import parse_reference

    tar = debian_rootfs_tar()
    with tar.open("rb") as stream, StoreRoot(root) as where:
        import_rootfs(ImageStore(where), stream, name=str(tar), names=[parse_reference(BASE)])


@pytest.fixture
def debian_root(store_root: Path) -> Path:
    """A store root with ``debian:bookworm`` in it."""
    import_debian(store_root)
    return store_root
