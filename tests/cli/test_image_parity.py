"""Image commands a Docker user types, checked against Docker: ``images NAME``, ``rmi`` of a
name a container uses, a container's ``.Image``, and one SIZE however an image arrived."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.conftest import Strata, debian_rootfs_tar
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.peers]


def _sized_tar(path: Path) -> Path:
    """A rootfs whose Docker size is not its regular files' bytes alone: 100 bytes of file, a
    hardlink to it (counted once), a symlink (its target's 10 bytes count), a directory."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("d", tarfile.DIRTYPE), ("a", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, 1
            info.size = 100 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"x" * info.size))
        for name, kind, target in (
            ("h", tarfile.LNKTYPE, "a"),
            ("l", tarfile.SYMTYPE, "abcdefghij"),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = kind, target, 1
            tar.addfile(info)
    return path


def _size(tool: Strata | Docker, name: str) -> int:
    return int(tool("image", "inspect", "-f", "{{.Size}}", name).stdout)


def test_images_name_matches_as_dockers_reference_filter(
    strata: Strata, docker: Docker, tmp_path: Path
) -> None:
    tar = _sized_tar(tmp_path / "rootfs.tar")
    prefix = f"localhost:5000/parity{os.getpid()}"
    names = [f"{prefix}/app:1", f"{prefix}/app:2", f"{prefix}/app", f"{prefix}/deep/x:1"]
    for tool in (strata, docker):
        tool("import", str(tar), names[0])
        for name in names[1:]:
            tool("tag", names[0], name)
    try:
        for pattern in (
            f"{prefix}/app",
            f"{prefix}/app:2",
            f"{prefix}/app:latest",
            f"{prefix}/*",
            f"{prefix}/*:1",
            f"{prefix}/*/*",
            f"{prefix}/ap?:[12]",
            "*",
        ):
            args = ("images", "--format", "{{.Repository}}:{{.Tag}}", pattern)
            got = sorted(strata(*args).stdout.splitlines())
            want = sorted(line for line in docker(*args).stdout.splitlines() if prefix in line)
            assert got == want, pattern
            filtered = (
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}}",
                "--filter",
                f"reference={pattern}",
            )
            assert sorted(strata(*filtered).stdout.splitlines()) == got
        assert strata("images", "-q", names[0]).stdout.strip()
    finally:
        docker("rmi", "-f", *names, check=False)


@pytest.mark.root
def test_rmi_of_one_name_a_container_uses(strata: Strata, docker: Docker, tmp_path: Path) -> None:
    tar = _sized_tar(tmp_path / "rootfs.tar")
    repo = f"parity{os.getpid()}/rm"
    container = f"parity{os.getpid()}-rm"
    results: dict[str, list[tuple[int, str, str]]] = {}
    for label, tool in (("strata", strata), ("docker", docker)):
        tool("import", str(tar), f"{repo}:1")
        tool("tag", f"{repo}:1", f"{repo}:2")
        cid = tool("create", "--name", container, f"{repo}:1", "/a").stdout.strip()
        image_id = tool("image", "inspect", "-f", "{{.Id}}", f"{repo}:1").stdout.strip()
        # A container's .Image is the image ID; .Config.Image the name typed.
        shown = tool("inspect", "-f", "{{.Image}} {{.Config.Image}}", container).stdout
        assert shown == f"{image_id} {repo}:1\n"
        steps = [
            ("rmi", image_id[7:19]),  # by ID: several names, must be forced
            ("rmi", f"{repo}:2"),  # one of several names: untagged, container or not
            ("rmi", f"{repo}:1"),  # the last name of an image a container uses: conflict
            ("rmi", image_id[7:19]),  # by ID, used by a stopped container
        ]
        out = []
        for step in steps:
            proc = tool(*step, check=False)
            text = proc.stdout + proc.stderr
            out.append(
                (proc.returncode, text.replace(image_id[7:19], "<ID>").replace(cid[:12], "<C>"), "")
            )
        results[label] = out
        tool("rm", container)
        tool("rmi", f"{repo}:1")
    strata_out = [(code, text.removeprefix("Error: ")) for code, text, _ in results["strata"]]
    docker_out = [
        (code, text.removeprefix("Error response from daemon: "))
        for code, text, _ in results["docker"]
    ]
    assert strata_out == docker_out
    assert strata_out[1] == (0, f"Untagged: {repo}:2\n")


@pytest.mark.root
def test_one_size_however_the_image_arrived(
    strata: Strata,
    docker: Docker,
    registry: Registry,  # noqa: F811
    tmp_path: Path,
) -> None:
    tar = _sized_tar(tmp_path / "rootfs.tar")
    name = f"{registry.address}/parity/size:1"
    strata("import", str(tar), name)
    docker("import", str(tar), f"parity{os.getpid()}/size:1")
    try:
        want = _size(docker, f"parity{os.getpid()}/size:1")
    finally:
        docker("rmi", f"parity{os.getpid()}/size:1")
    assert want == 110
    sizes = {"imported": _size(strata, name)}
    strata("save", "-o", str(tmp_path / "saved.tar"), name)
    strata("push", "-q", name)
    strata("rmi", name)
    strata("load", "-i", str(tmp_path / "saved.tar"))
    sizes["loaded"] = _size(strata, name)
    strata("rmi", name)
    strata("pull", "-q", name)
    sizes["pulled"] = _size(strata, name)
    assert set(sizes.values()) == {want}, sizes
    rows = strata("images", "--format", "{{.Size}}", name).stdout
    assert rows == docker_size_text(want)
    images_row = strata("system", "df").stdout.splitlines()[1].split()
    assert images_row[:4] == ["Images", "1", "0", docker_size_text(want).strip()]


def docker_size_text(size: int) -> str:
    return f"{size}B\n"


@pytest.mark.root
def test_commit_and_build_sizes_match_docker(
    strata: Strata, docker: Docker, tmp_path: Path
) -> None:
    """A layer that adds a file and a symlink weighs what Docker says, committed or built."""
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    script = "head -c 1000 /dev/zero > /f && ln -s /some/where/else /l"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM debian:bookworm\nRUN {script}\n")
    tag = f"parity{os.getpid()}/built:1"
    grown = {}
    for label, tool in (("strata", strata), ("docker", docker)):
        base = _size(tool, "debian:bookworm")
        tool("build", "-q", "-t", tag, str(ctx))
        built = _size(tool, tag)
        tool("run", "--name", f"parity{os.getpid()}-c", "debian:bookworm", "sh", "-c", script)
        tool("commit", f"parity{os.getpid()}-c", f"{tag}-committed")
        committed = _size(tool, f"{tag}-committed")
        tool("rm", f"parity{os.getpid()}-c")
        if label == "strata":
            assert strata("images", "--format", "{{.Size}}", tag).stdout.strip()
        tool("rmi", tag, f"{tag}-committed")
        grown[label] = (built - base, committed - base)
    assert grown["strata"] == grown["docker"] == (1016, 1016)


def test_rmi_goes_on_after_a_failure(strata: Strata, docker: Docker, tmp_path: Path) -> None:
    tar = _sized_tar(tmp_path / "rootfs.tar")
    missing, real = f"parity{os.getpid()}/missing:1", f"parity{os.getpid()}/real:1"
    for tool in (strata, docker):
        prefix = "Error: " if tool is strata else "Error response from daemon: "
        tool("import", str(tar), real)
        tool("tag", real, f"{real}-2")
        # -f: a missing image is said, but is no failure.
        proc = tool("rmi", "-f", missing, check=False)
        assert (proc.returncode, proc.stderr) == (0, f"{prefix}No such image: {missing}\n")
        # Without -f it is; the names after it are still removed.
        proc = tool("rmi", missing, f"{real}-2", real, check=False)
        assert proc.returncode == 1
        assert proc.stdout.startswith(f"Untagged: {real}-2\nUntagged: {real}\nDeleted: sha256:")
