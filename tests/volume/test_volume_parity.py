"""Volumes as Docker 20.10 shows them: ``volume inspect`` and ``volume ls``, a container's
``Mounts``, ``HostConfig.Binds``/``Mounts``/``Tmpfs``/``VolumesFrom`` and ``Config.Volumes``, and
the one-line errors of bad mount specifications, compared with the anchors' Docker."""

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

TAG = f"volpar{os.getpid()}"  # Docker is shared: every name this test makes carries it
IMAGE = f"{TAG}/img:1"  # our own, small: no other session's prune takes it meanwhile


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rootfs_tar(tmp_path_factory.mktemp("volparity") / "rootfs.tar")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Strata:
    strata = Strata(tmp_path_factory.mktemp("volparity") / "store")
    strata("import", str(tiny), IMAGE)
    return strata


@pytest.fixture
def docker_clean(docker: Docker, tiny: Path) -> Iterator[Docker]:
    docker("import", str(tiny), IMAGE)
    yield docker
    names = docker("ps", "-aq", "--filter", f"name={TAG}").stdout.split()
    if names:
        docker("rm", "-fv", *names, check=False)
    volumes = docker("volume", "ls", "-q", "--filter", f"name={TAG}").stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
    docker("rmi", IMAGE, check=False)


def _volume_doc(tool: Strata | Docker, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(tool("volume", "inspect", name).stdout)[0]
    doc["Mountpoint"] = doc["Mountpoint"].rsplit("/volumes/", 1)[1]
    del doc["CreatedAt"]
    return doc


def test_volume_inspect_and_ls_as_dockers(store: Strata, docker_clean: Docker) -> None:
    for tool in (store, docker_clean):
        # One label each: Docker's ls joins labels in Go's (random) map order.
        tool("volume", "create", "--label", "a=b", f"{TAG}-one")
        tool("volume", "create", "--label", "c=", f"{TAG}-two")
    for name in (f"{TAG}-one", f"{TAG}-two"):
        assert list(json.loads(store("volume", "inspect", name).stdout)[0]) == list(
            json.loads(docker_clean("volume", "inspect", name).stdout)[0]
        )
        assert _volume_doc(store, name) == _volume_doc(docker_clean, name)
    for args in (
        ("volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{.Options}} {{.Scope}}", f"{TAG}-one"),
        ("volume", "ls", "--filter", f"name={TAG}"),
        ("volume", "ls", "-q", "--filter", f"name={TAG}", "--filter", "label=a"),
        ("volume", "ls", "--filter", f"name={TAG}", "--format", "{{.Name}}\t{{.Labels}}"),
        ("volume", "ls", "--filter", f"name={TAG}", "--filter", "dangling=true", "-q"),
    ):
        assert store(*args).stdout == docker_clean(*args).stdout, args
    for args in (("volume", "inspect", f"{TAG}-none"), ("volume", "rm", f"{TAG}-none")):
        ours = store(*args, check=False)
        theirs = docker_clean(*args, check=False)
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr.removeprefix("Error: ") == theirs.stderr.removeprefix(
            "Error response from daemon: "
        )


def _mounts(tool: Strata | Docker, name: str, root: Path | None) -> dict[str, Any]:
    [doc] = json.loads(tool("container", "inspect", name).stdout)
    mounts = {}
    for shown in doc["Mounts"]:
        mount = dict(shown)
        if mount["Type"] == "volume":
            if len(mount["Name"]) == 64:
                mount["Name"] = "<anonymous>"
            mount["Source"] = mount["Source"].rsplit("/volumes/", 1)[1].split("/", 1)[-1]
        mounts[mount["Destination"]] = mount
    host = doc["HostConfig"]
    return {
        "Mounts": mounts,
        "Binds": sorted(host["Binds"] or []),  # Docker's client orders them by a map
        "HostMounts": host.get("Mounts", "<absent>"),
        "Tmpfs": host.get("Tmpfs", "<absent>"),
        "VolumesFrom": host["VolumesFrom"],
        "Volumes": doc["Config"].get("Volumes"),
    }


def test_container_mounts_as_dockers(store: Strata, docker_clean: Docker, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    args = (
        "-v", f"{TAG}-a:/a", "-v", f"{TAG}-a:/a-ro:ro", "-v", "/anon", "-v", f"{host}:/h",
        "-v", f"{host}:/h-ro:ro", "--mount", f"type=volume,source={TAG}-m,target=/m",
        "--mount", f"type=bind,source={host},target=/mb,readonly",
        "--tmpfs", "/t:size=2m,mode=1700",
    )  # fmt: skip
    tmpfs = ("--mount", "type=tmpfs,target=/mt,tmpfs-size=1m,tmpfs-mode=0700")
    for tool in (store, docker_clean):
        net = ("--network", "host") if tool is docker_clean else ()
        tool("create", *net, "--name", f"{TAG}-c", *args, *tmpfs, IMAGE, "true")
        # Docker 20.10 cannot take --volumes-from a container with a --mount tmpfs (README).
        tool("create", *net, "--name", f"{TAG}-s", *args, IMAGE, "true")
        tool("create", *net, "--name", f"{TAG}-f", "--volumes-from", f"{TAG}-s:ro", IMAGE, "true")
    for name in (f"{TAG}-c", f"{TAG}-f"):
        ours, theirs = _mounts(store, name, store.root), _mounts(docker_clean, name, None)
        assert ours == theirs, name


@pytest.mark.parametrize(
    "args",
    [
        ("--volumes-from", f"{TAG}-nope"),
        ("--mount", "type=foo,target=/x"),
        ("--mount", "type=bind,target=/x"),
        ("--mount", "type=bind,source=/nonexistent-volpar,target=/x"),
        ("--mount", "type=tmpfs,source=a,target=/x"),
        ("-v", "bad/name:/x"),
        ("-v", f"{TAG}:rel"),
        ("-v", f"{TAG}:/x:zz"),
        ("--tmpfs", "rel"),
        ("-v", "/tmp:/x", "-v", f"{TAG}-v:/x"),
    ],
)
def test_bad_mounts_fail_as_dockers(
    store: Strata, docker_clean: Docker, args: tuple[str, ...]
) -> None:
    ours = store.fail("run", "--rm", *args, IMAGE, "true")
    theirs = docker_clean("run", "--rm", "--network", "host", *args, IMAGE, "true", check=False)
    assert theirs.returncode == 125
    first = theirs.stderr.splitlines()[0]
    daemon = "docker: Error response from daemon: "
    assert ours.removeprefix("Error: ") == first.removeprefix(daemon)
