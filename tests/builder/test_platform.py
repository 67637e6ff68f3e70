"""``build --platform`` and ``FROM --platform``: this machine's platform builds, any other is a
one-line error before anything runs, never an image that is silently not what was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.oci.descriptor import Platform
from tests.anchors import Docker
from tests.builder.test_build import context
from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]

HERE = Platform.current()
OTHER = "linux/arm64" if HERE.architecture != "arm64" else "linux/amd64"
ALIAS = {"amd64": "linux/x86_64", "arm64": "linux/aarch64"}.get(HERE.architecture, str(HERE))
SIMPLE = "FROM debian:bookworm\nRUN uname -m > /arch\n"


def test_build_platform_of_this_machine(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, SIMPLE)
    # Docker's spellings of this machine: os/arch, os alone, arch alone, an alias.
    ids = [
        st("build", "-q", "--platform", spelling, str(ctx)).stdout
        for spelling in (str(HERE), HERE.os, HERE.architecture, ALIAS)
    ]
    assert len(set(ids)) == 1, ids


def test_build_platform_of_another_machine_is_an_error(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, SIMPLE)
    before = st("images", "-a", "-q").stdout
    error = st.fail("build", "-t", "other:1", "--platform", OTHER, str(ctx))
    assert f"platform {OTHER}" in error and f"this machine is {HERE}" in error
    assert "bogus" in st.fail("build", "--platform", "linux/bogus", str(ctx))
    assert "platform" in st.fail("build", "--platform", "a/b/c/d", str(ctx))
    assert st("images", "-a", "-q").stdout == before


def test_from_platform_in_the_dockerfile(st: Strata, tmp_path: Path) -> None:
    ok = context(
        tmp_path / "ok",
        f"ARG P={HERE}\nFROM --platform=$P debian:bookworm AS one\n"
        "FROM --platform=$BUILDPLATFORM one\nRUN true\n",
    )
    st("build", "-q", str(ok))
    bad = context(
        tmp_path / "bad", f"FROM debian:bookworm\nFROM --platform={OTHER} debian:bookworm\n"
    )
    error = st.fail("build", str(bad))
    assert error.startswith(f"Error: Dockerfile:2: FROM --platform={OTHER} debian:bookworm: ")
    assert f"this machine is {HERE}" in error
    # A build arg naming another platform is caught the same way, as is one that is empty.
    assert OTHER in st.fail("build", "--build-arg", f"P={OTHER}", str(ok))
    assert "empty" in st.fail("build", "--build-arg", "P=", str(ok))


def test_docker_makes_the_wrong_image_strata_refuses(
    docker: Docker, st: Strata, tmp_path: Path
) -> None:
    """Why strata differs: Docker 20.10's classic builder, asked for another platform with the
    base image already local, builds this machine's image and says nothing."""
    if HERE.architecture != "amd64":
        pytest.skip("the anchors' Docker is amd64")
    ctx = context(tmp_path, "FROM debian:bookworm\nRUN true\n")
    docker("build", "--platform", OTHER, "-t", "strata-test-platform:1", str(ctx))
    try:
        arch = docker("inspect", "-f", "{{.Architecture}}", "strata-test-platform:1").stdout
        assert arch.strip() == "amd64"  # not what was asked for
    finally:
        docker("rmi", "strata-test-platform:1", check=False)
    assert f"platform {OTHER}" in st.fail("build", "--platform", OTHER, str(ctx))
