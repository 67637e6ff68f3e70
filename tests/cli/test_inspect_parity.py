"""``image inspect`` documents as Docker 20.10 prints them: the same keys in the same order and
the same values, for images imported, committed and built by each tool from the same base."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.anchors import Docker
from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata

pytestmark = [pytest.mark.peers, pytest.mark.root]

# Values that differ by nature: IDs, times, host paths, the daemon's version, layer digests
# (file times differ). `GraphDriver` (Docker's storage paths) and `Descriptor` (strata's
# manifest) are each tool's own; README's known differences lists both.
_OWN = {"Id", "Created", "Parent", "Container", "DockerVersion", "Metadata", "RootFS"}
_ONLY_DOCKER = {"GraphDriver"}
_ONLY_STRATA = {"Descriptor"}


def _doc(tool: Strata | Docker, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(tool("image", "inspect", name).stdout)[0]
    return doc


def _comparable(doc: dict[str, Any], only: set[str]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in _OWN | only}
    for key in ("Config", "ContainerConfig"):
        if isinstance(out.get(key), dict):
            # The parent step's image ID and the step container's name: IDs differ by nature.
            out[key] = {k: v for k, v in out[key].items() if k not in ("Image", "Hostname")}
    return out


def _assert_same(strata_doc: dict[str, Any], docker_doc: dict[str, Any]) -> None:
    ours = [k for k in strata_doc if k not in _ONLY_STRATA]
    theirs = [k for k in docker_doc if k not in _ONLY_DOCKER]
    assert ours == theirs
    assert _comparable(strata_doc, _ONLY_STRATA) == _comparable(docker_doc, _ONLY_DOCKER)


@pytest.fixture
def base(strata: Strata, docker: Docker, tmp_path: Path) -> Iterator[str]:
    """One small rootfs imported into both tools under one name."""
    name = f"inspect-parity{os.getpid()}/base:1"
    tarball = rootfs_tar(tmp_path / "rootfs.tar", {"./bin/true": b"#!/bin/sh\n"})
    for tool in (strata, docker):
        tool("import", "-m", "a base", "-c", 'CMD ["/bin/true"]', str(tarball), name)
    yield name
    docker("rmi", name, check=False)


def test_imported_images_inspect_as_dockers(
    strata: Strata, docker: Docker, base: str, tmp_path: Path
) -> None:
    _assert_same(_doc(strata, base), _doc(docker, base))
    # Without -m: Docker's "Imported from -" (its CLI sends a file as the request body).
    tarball = rootfs_tar(tmp_path / "plain.tar")
    name = f"{base}-plain"
    for tool in (strata, docker):
        tool("import", str(tarball), name)
    _assert_same(_doc(strata, name), _doc(docker, name))
    docker("rmi", name)


def test_built_images_do_not_inherit_the_base_comment(
    strata: Strata, docker: Docker, base: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nENV A=1\nLABEL x=y\nEXPOSE 80\nWORKDIR /\nSTOPSIGNAL SIGINT\n"
        'HEALTHCHECK --interval=5s CMD ["/bin/true"]\nSHELL ["/bin/sh", "-e", "-c"]\n'
    )
    name = f"{base}-built"
    for tool in (strata, docker):
        tool("build", "-q", "-t", name, str(ctx))
    ours, theirs = _doc(strata, name), _doc(docker, name)
    assert ours["Comment"] == theirs["Comment"] == ""
    # Docker's builder records each step's container config; strata does not (README).
    ours.pop("ContainerConfig")
    theirs.pop("ContainerConfig")
    _assert_same(ours, theirs)
    docker("rmi", name)


@pytest.mark.parametrize("network", [None, "default", "host", "none"])
def test_container_network_mode_as_typed(
    strata: Strata, docker: Docker, base: str, network: str | None
) -> None:
    name = f"inspect-parity{os.getpid()}-{network or 'unset'}"
    flags = ["--network", network] if network else []
    modes = []
    for tool in (strata, docker):
        tool("create", "--name", name, *flags, base)
        modes.append(tool("inspect", "-f", "{{.HostConfig.NetworkMode}}", name).stdout)
        tool("rm", name)
    assert modes[0] == modes[1]


def test_inspect_finds_a_container_before_an_image_of_its_name(
    strata: Strata, docker: Docker, base: str
) -> None:
    same = f"sameparity{os.getpid()}"
    kinds = []
    for tool in (strata, docker):
        tool("tag", base, same)
        tool("create", "--name", same, base)
        kinds.append(tool("inspect", "-f", "{{if .State}}container{{end}}", same).stdout)
        tool("rm", same)
        tool("rmi", same)
        # A name no image can have (upper case) is just not found, as any other.
        missing = tool("inspect", "Abc", check=False)
        assert missing.returncode == 1
        assert missing.stderr.strip().endswith("No such object: Abc")
    assert kinds == ["container\n", "container\n"]


@pytest.mark.parametrize("flags", [[], ["-e", "A=1"]], ids=["no-env", "env"])
def test_container_env_and_its_commit_add_no_path(
    strata: Strata, docker: Docker, base: str, flags: list[str]
) -> None:
    # The base has no Env: Docker gives the process a default PATH but records none, neither in
    # the container's config nor in an image committed from it.
    name = f"envparity{os.getpid()}-{len(flags)}"
    committed = f"{base}-env{len(flags)}"
    envs = []
    for tool in (strata, docker):
        tool("create", "--name", name, *flags, base)
        container_env = tool("inspect", "-f", "{{json .Config.Env}}", name).stdout
        tool("commit", name, committed)
        image_env = tool("image", "inspect", "-f", "{{json .Config.Env}}", committed).stdout
        envs.append((container_env, image_env))
        tool("rm", name)
        tool("rmi", committed)
    assert envs[0] == envs[1]
