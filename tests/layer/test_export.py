"""Whatever a layer applied can be exported: the tree walk, the CLI, a reader that goes away.

Also the differential check of the applier itself: one layer of containerd's breakout shapes
(symlinked parents, ``..``, ``.wh.`` in a directory name, a hardlink through a symlink) is
loaded into Docker and into strata, and both containers' ``export`` list the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from strata.errors import StrataError
from strata.layer.generate import write_tar_from_dir
from tests.anchors import Docker
from tests.conftest import Strata

from .hostile import CASES, Sandbox, plant
from .members import apply, directory, fifo, file, hardlink, symlink, tar
from .test_hostile import PARAMS

# The cases the applier takes (those it refuses, as containerd does, leave nothing to export).
APPLIED = [p for p in PARAMS if CASES[str(p.values[0])].error is None]


@pytest.mark.parametrize(("name", "mode"), APPLIED)
def test_every_applied_hostile_tree_exports(tmp_path: Path, name: str, mode: str) -> None:
    c = CASES[name]
    target = tmp_path / "target"
    target.mkdir()
    plant(tmp_path / "canary")
    tmp_canary = Path(tempfile.mkdtemp(prefix="strata-canary-", dir="/tmp"))
    try:
        plant(tmp_canary)
        s = Sandbox(tmp_path, target, tmp_path / "canary", tmp_canary, mode)
        apply(c.build(s), target, mode, limit=c.limit)  # type: ignore[arg-type]
        out = io.BytesIO()
        stats = write_tar_from_dir(target, out, label="container abc")
        again = tmp_path / "again"
        again.mkdir()
        assert apply(out.getvalue(), again, "delete").diff_id == stats.diff_id
    finally:
        shutil.rmtree(tmp_canary)


def test_errors_name_the_container_not_the_mount(tmp_path: Path) -> None:
    with pytest.raises(StrataError) as info:
        write_tar_from_dir(tmp_path / "gone", io.BytesIO(), label="container abc")
    assert str(info.value) == "container abc: cannot archive: No such file or directory"


def _odd_layer() -> bytes:
    return tar(
        directory("bin"),
        file("bin/sh", b"#!", 0o755),
        directory("usr"),
        directory("usr/lib"),
        symlink("lib", "usr/lib"),
        file("lib/x.so", b"so"),  # lands in usr/lib
        directory("noperm", 0o000),
        file("noperm/secret", b"s", 0o000),
        symlink("loop", "loop"),
        symlink("out", "/../../etc/shadow"),
        fifo("fifo"),
        file("negative-mtime", b"n", mtime=-5),
        file("big-ids", b"u", uid=2**31, gid=2**31),
        file("n" * 200, b"long"),
        file(b"bad\xffname", b"b"),
        hardlink("hl", "lib/x.so"),
        file(".wh.etc/file", b"w"),
        *(file(f"many/{i:04d}", bytes(4096)) for i in range(600)),
    )


@pytest.mark.root
def test_cli_export_of_an_odd_tree_and_a_reader_that_leaves(strata: Strata, tmp_path: Path) -> None:
    layer = tmp_path / "odd.tar"
    layer.write_bytes(_odd_layer())
    strata("import", str(layer), "odd:1")
    strata("create", "--name", "odd", "odd:1", "/bin/sh")
    out = tmp_path / "fs.tar"
    strata("export", "-o", str(out), "odd")
    with tarfile.open(out) as archive:
        names = set(archive.getnames())
    assert {"usr/lib/x.so", "hl", ".wh.etc/file", "noperm/secret", "many/0599"} <= names
    # `strata export odd | head -c 10`: killed by SIGPIPE as Docker is, nothing on stderr
    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", "export", "odd"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    assert proc.wait(timeout=60) == -signal.SIGPIPE
    assert proc.stderr.read() == b""


@pytest.mark.peers
def test_docker_export_also_dies_of_sigpipe(docker: Docker) -> None:
    docker("create", "--name", "strata-export-pipe", "debian:bookworm", "true")
    try:
        proc = subprocess.Popen(
            ["docker", "export", "strata-export-pipe"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=docker.env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(10)) == 10
        proc.stdout.close()
        assert proc.wait(timeout=60) == -signal.SIGPIPE
        assert proc.stderr.read() == b""
    finally:
        docker("rm", "-f", "strata-export-pipe", check=False)


# --- the applier against Docker's -----------------------------------------------------------


def _breakout_layer() -> bytes:
    return tar(
        directory("etc"),
        file("etc/passwd", b"inside"),
        symlink("localetc", "/etc"),
        file("localetc/unbroken", b"u"),  # through an absolute symlink: etc/unbroken
        directory("dummy"),
        symlink("upandout", "/dummy/../../../etc"),
        file("upandout/via-up", b"v"),
        directory("breakouts"),
        symlink("breakouts/d1", "../../etc"),
        hardlink("breakouts/mypasswd", "/breakouts/d1/passwd"),
        file("a/../b", b"b"),  # cleaned: b
        file(".wh.etc/somefile", b"w"),  # a directory named .wh.etc
        directory("inner"),
        symlink("inner/go_up", ".."),
        file("inner/go_up/escaped", b"e"),  # go_up is the root
        file("../dotdot-name", b"d"),  # ".." stops at the root: dotdot-name
        file("/../abs-dotdot", b"a"),
        hardlink("hl-up", "../../etc/passwd"),  # etc/passwd
        directory(".wh..wh.plnk"),  # AUFS bookkeeping: skipped
        file(".wh..wh.plnk/123", b"aufs"),  # but this is content
    )


def _docker_archive(layer: bytes, tag: str) -> bytes:
    """A docker-archive (``docker save`` format) of one image with this one layer."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in (
            (config_name, config),
            ("layer/layer.tar", layer),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _listing(export: bytes) -> dict[str, tuple[str, str]]:
    """name -> (kind, link target or content hash) of an export, Docker's extras left out."""
    found: dict[str, tuple[str, str]] = {}
    with tarfile.open(fileobj=io.BytesIO(export)) as archive:
        for member in archive:
            name = member.name.rstrip("/")
            if name in {".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts"}:
                continue
            if name.startswith(("dev/", "proc/", "sys/")) or name in (
                "etc/resolv.conf",
                "etc/mtab",
            ):
                continue
            if member.isreg():
                extracted = archive.extractfile(member)
                assert extracted is not None
                found[name] = ("file", hashlib.sha256(extracted.read()).hexdigest())
            elif member.islnk():
                found[name] = ("hardlink-or-file", "")
            elif member.issym():
                found[name] = ("symlink", member.linkname)
            elif member.isdir():
                found[name] = ("dir", "")
    # which of two hardlinked names carries the data is the writer's choice: compare content
    for name, (kind, _) in list(found.items()):
        linked = name in ("etc/passwd", "breakouts/mypasswd", "hl-up")
        if kind == "hardlink-or-file" or (kind == "file" and linked):
            found[name] = ("file", "linked")
    return found


@pytest.mark.root
@pytest.mark.peers
def test_layers_apply_as_docker_applies_them(
    docker: Docker, strata: Strata, tmp_path: Path
) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(_docker_archive(_breakout_layer(), "strata-breakouts:1"))
    docker("load", "-i", str(archive))
    docker("create", "--name", "strata-breakouts", "strata-breakouts:1")
    try:
        export = ["docker", "export", "strata-breakouts"]
        theirs = subprocess.run(export, capture_output=True, env=docker.env, check=True).stdout
    finally:
        docker("rm", "-f", "strata-breakouts", check=False)
        docker("rmi", "strata-breakouts:1", check=False)
    strata("load", "-i", str(archive))
    strata("create", "--name", "breakouts", "strata-breakouts:1")
    ours = subprocess.run(
        [sys.executable, "-m", "strata", "export", "breakouts"],
        capture_output=True,
        env={**os.environ, "STRATA_ROOT": str(strata.root)},
        check=True,
    ).stdout
    want = _listing(theirs)
    assert want["etc/unbroken"][0] == "file" and want["escaped"][0] == "file"
    assert want["dotdot-name"][0] == want["hl-up"][0] == want[".wh..wh.plnk/123"][0] == "file"
    assert _listing(ours) == want
