"""``image bootstrap``: a real Debian base image from the host's Debian mirror."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from strata.image.bootstrap import BootstrapOptions, check_options, host_mirror
from strata.image.debian_rootfs import CLEAN, CONFIG, shape_rootfs
from tests.conftest import Strata, store_state

pytestmark = [pytest.mark.root, pytest.mark.peers, pytest.mark.slow]

EPOCH = "1700000000"


def test_bootstrap_is_reproducible_and_usable(strata: Strata, tmp_path: Path) -> None:
    first = strata("image", "bootstrap", "--timestamp", EPOCH, "debian:bookworm").stdout.strip()
    again = strata("image", "bootstrap", "--timestamp", EPOCH, "again:bookworm").stdout.strip()
    # Same mirror state and timestamp: the same bytes, so the same image ID.
    assert first == again
    doc = json.loads(strata("image", "inspect", "debian:bookworm").stdout)[0]
    assert doc["Config"]["Cmd"] == ["/bin/bash"]
    assert doc["Created"].startswith("2023-11-14T22:13:20")
    assert doc["Size"] > 50_000_000
    config = json.loads(
        (strata.root / "blobs" / "sha256" / doc["Id"].removeprefix("sha256:")).read_bytes()
    )
    history = config["history"]
    assert history[0]["created_by"].startswith("mmdebstrap --variant=minbase")
    assert history[1]["empty_layer"] is True
    assert_clean(strata, "debian:bookworm")
    # The saved image is a real one: skopeo reads it and umoci unpacks a working rootfs.
    archive = tmp_path / "bookworm.tar"
    strata("save", "--format", "oci-archive", "-o", str(archive), "debian:bookworm")
    # The archive names images by their full reference (what Podman and skopeo read).
    full = "docker.io/library/debian:bookworm"
    out = subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{archive}:{full}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["Layers"]
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-C", str(layout), "-xf", str(archive)], check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{full}", str(bundle)],
        capture_output=True,
        check=True,
    )
    assert "bookworm" in (bundle / "rootfs" / "etc" / "os-release").read_text()
    assert (bundle / "rootfs" / "usr" / "bin" / "apt-get").exists()
    assert not (bundle / "rootfs" / "etc" / "hostname").exists()


def test_host_mirror_reads_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: x\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert host_mirror([deb822]) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n")
    assert host_mirror([legacy]) == "http://mirror.example/debian"
    assert host_mirror([tmp_path / "missing"]) is None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--suite", "Bad Suite"], "invalid suite"),
        (["--variant", "huge"], "invalid variant"),
        (["--mirror", "ftp://x"], "invalid mirror"),
        (["--tool", "cdebootstrap"], "invalid --tool"),
        (["--include", "bad_name!"], "invalid package name"),
    ],
)
def test_bad_options_fail_before_anything_runs(
    strata: Strata, args: list[str], reason: str
) -> None:
    strata("images")
    before = store_state(strata.root)
    error = strata.fail("image", "bootstrap", *args, "x:1")
    assert reason in error
    assert store_state(strata.root) == before


@pytest.mark.parametrize(
    ("tool", "stage"),
    [("mmdebstrap", "running apt-get update..."), ("debootstrap", "Retrieving Release")],
)
def test_unreachable_mirror_is_one_line(strata: Strata, tool: str, stage: str) -> None:
    strata("images")
    before = store_state(strata.root)
    mirror = "http://127.0.0.1:9/debian"
    error = strata.fail("image", "bootstrap", "--tool", tool, "--mirror", mirror, "x:1")
    # The tool, how far it got, and its first error (the cause, not its cleanup after it).
    assert error.startswith(f"Error: {tool} failed (exit ")
    assert f"at {stage!r}: E: " in error and "127.0.0.1:9" in error
    assert store_state(strata.root) == before


def test_progress_line_on_a_terminal(strata: Strata) -> None:
    command = [sys.executable, "-m", "strata", "image", "bootstrap", "--tool", "debootstrap"]
    command += ["--mirror", "http://127.0.0.1:9/debian", "x:1"]
    out = subprocess.run(
        ["script", "-qec", shlex.join(command), "/dev/null"],
        capture_output=True,
        env={**os.environ, "STRATA_ROOT": str(strata.root)},
        check=False,
    ).stdout.decode()  # as bytes: text mode would turn the carriage returns into newlines
    # Redrawn in place: the image, the tool and its step, and the time so far.
    assert "\r\x1b[2K[+] x:1: debootstrap: Retrieving Release  " in out, out
    assert "Error: debootstrap failed" in out


def layer_members(strata: Strata, ref: str) -> dict[str, tarfile.TarInfo]:
    """The one layer of ``ref`` (stored uncompressed by bootstrap), by member name."""
    doc = json.loads(strata("image", "inspect", ref).stdout)[0]
    (diff_id,) = doc["RootFS"]["Layers"]
    blob = strata.root / "blobs" / "sha256" / diff_id.removeprefix("sha256:")
    with tarfile.open(blob) as tar:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tar}


def assert_clean(strata: Strata, ref: str) -> None:
    """No path of CLEAN in the image, apt's lists and caches empty (as in Docker's Debian
    images), Docker's apt and dpkg settings, and no file naming the store on this host."""
    members = layer_members(strata, ref)
    for path, (mode, _) in CONFIG.items():
        assert path in members and members[path].isfile(), path
        assert members[path].mode & 0o7777 == mode, path
    for pattern in CLEAN:
        if pattern.endswith("/*"):
            folder = pattern.removesuffix("/*")
            assert folder in members, folder
            assert not [n for n in members if n.startswith(folder + "/")], folder
        else:
            assert pattern not in members, pattern
    assert not [n for n in members if n.endswith(".deb")]
    doc = json.loads(strata("image", "inspect", ref).stdout)[0]
    (diff_id,) = doc["RootFS"]["Layers"]
    blob = strata.root / "blobs" / "sha256" / diff_id.removeprefix("sha256:")
    host = str(strata.root).encode()
    with tarfile.open(blob) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                assert host not in data.read(), member.name


def test_debootstrap_is_reproducible_and_clean(strata: Strata) -> None:
    runs = [
        strata("image", "bootstrap", "--tool", "debootstrap", "--timestamp", EPOCH, f"deb:{n}")
        for n in (1, 2)
    ]
    # The same mirror state and timestamp give the same bytes, so the same image ID.
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.startswith("sha256:")
    # Off a terminal too, one line says which tool made it (stdout is the ID alone).
    assert runs[0].stderr.startswith("Bootstrapped deb:1 with debootstrap 1.")
    assert "(bookworm, minbase)" in runs[0].stderr
    history = strata("image", "history", "--no-trunc", "deb:1").stdout
    assert "debootstrap --variant=minbase bookworm TARGET http" in history
    assert_clean(strata, "deb:1")
    assert "bookworm" in strata("run", "--rm", "deb:1", "cat", "/etc/os-release").stdout


def test_shape_rootfs_never_leaves_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "log").mkdir(parents=True)
    (outside / "log" / "dpkg.log").write_text("host's own log")
    (outside / "lists").mkdir()
    (outside / "lists" / "keep").write_text("x")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("0123\n")
    (root / "etc" / "hostname").write_text("host\n")
    (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True)
    (root / "var" / "cache" / "apt" / "archives" / "bash.deb").write_text("deb")
    (root / "var" / "cache" / "apt" / "pkgcache.bin").write_text("bin")
    (root / "var" / "lib" / "apt").mkdir(parents=True)
    (root / "etc" / "apt" / "apt.conf.d").mkdir(parents=True)
    # Symlinks on the way lead out of the root: they are not followed.
    (root / "var" / "log").symlink_to(outside / "log")
    (root / "var" / "lib" / "apt" / "lists").symlink_to("../../../../outside/lists")
    (outside / "apt.conf").write_text("host's own")
    (root / "etc" / "apt" / "apt.conf.d" / "docker-clean").symlink_to(outside / "apt.conf")
    (outside / "dpkg.cfg.d").mkdir()
    (root / "etc" / "dpkg").symlink_to(outside)
    removed = shape_rootfs(root)
    assert removed == [
        "etc/hostname",
        "etc/machine-id",
        "var/cache/apt/archives",
        "var/cache/apt/pkgcache.bin",
    ]
    assert (outside / "log" / "dpkg.log").read_text() == "host's own log"
    assert (outside / "lists" / "keep").exists()
    assert (root / "var" / "cache" / "apt").is_dir()
    # Docker's settings are written where their directory is a real one, as plain files.
    clean = root / "etc" / "apt" / "apt.conf.d" / "docker-clean"
    assert not clean.is_symlink() and "DPkg::Post-Invoke" in clean.read_text()
    assert (outside / "apt.conf").read_text() == "host's own"
    assert not list((outside / "dpkg.cfg.d").iterdir())
    assert not (root / "usr").exists()


def test_check_options_defaults_to_host_mirror() -> None:
    assert check_options(BootstrapOptions()) == host_mirror()
