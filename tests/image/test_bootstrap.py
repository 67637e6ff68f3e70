"""``image bootstrap``: a real Debian base image from the host's Debian mirror."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from strata.image.bootstrap import BootstrapOptions, check_options, host_mirror
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


def test_unreachable_mirror_is_one_line(strata: Strata) -> None:
    strata("images")
    before = store_state(strata.root)
    error = strata.fail("image", "bootstrap", "--mirror", "http://127.0.0.1:9/debian", "x:1")
    assert "mmdebstrap failed" in error
    assert store_state(strata.root) == before


def test_check_options_defaults_to_host_mirror() -> None:
    assert check_options(BootstrapOptions()) == host_mirror()
