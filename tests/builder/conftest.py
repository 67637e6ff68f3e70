"""The build tests' store: one per test module, with the Debian base imported once."""

from __future__ import annotations

import pytest

from tests.conftest import Strata, debian_rootfs_tar


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    strata = Strata(tmp_path_factory.mktemp("build") / "store")
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    return strata
