"""What strata pushes, skopeo and Podman read and run; what skopeo pushes, strata pulls and runs.

Every image is Debian bookworm minbase (`tests.conftest.debian_rootfs_tar`), imported once per
module and pushed to the session's docker-registry.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.oci.mediatypes import OCI_INDEX
from strata.registry.client import RegistryClient
from tests.conftest import Strata, debian_rootfs_tar
from tests.registry.conftest import Registry, _start_registry

pytestmark = [pytest.mark.peers, pytest.mark.root, pytest.mark.slow]


def skopeo(*args: str) -> str:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Strata]:
    """A store holding ``debian:bookworm``; the image is pushed as ``<registry>/debian:12``."""
    strata = Strata(tmp_path_factory.mktemp("interop") / "store")
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    strata("tag", "debian:bookworm", f"{registry.address}/debian:12")
    strata("push", f"{registry.address}/debian:12")
    yield strata


def digest_line(output: str) -> str:
    last = output.strip().splitlines()[-1]
    return last.split("digest: ")[1].split()[0]


def test_skopeo_reads_what_strata_pushed(
    debian: Strata, registry: Registry, tmp_path: Path
) -> None:
    ref = f"docker://{registry.address}/debian:12"
    info = json.loads(skopeo("inspect", "--tls-verify=false", ref))
    raw = skopeo("inspect", "--tls-verify=false", "--raw", ref)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert info["Digest"] == str(Digest.of(raw.encode()))
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    # The same push again: the same digest.
    again = debian("push", f"{registry.address}/debian:12").stdout
    assert digest_line(again) == info["Digest"]
    assert "Layer already exists" in again
    # skopeo copies it out as a valid OCI layout (it verifies every digest on the way).
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'layout'}:debian")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == info["Digest"]


def test_docker_format_is_read_by_skopeo(debian: Strata, registry: Registry) -> None:
    name = f"{registry.address}/debian-docker:12"
    debian("tag", "debian:bookworm", name)
    pushed = debian("push", "--format", "docker", name).stdout
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}")
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert digest_line(pushed) == str(Digest.of(raw.encode()))
    # The layer was compressed once, for the first push: its blob is mounted, not made again.
    assert "Mounted from debian" in pushed


@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
def test_podman_runs_what_strata_pushed(debian: Strata, registry: Registry) -> None:
    proc = subprocess.run(
        ["podman", "run", "--rm", "--tls-verify=false", "--network=host",
         "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
         f"{registry.address}/debian:12", "cat", "/etc/debian_version"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("12")
    subprocess.run(
        ["podman", "rmi", "-f", f"{registry.address}/debian:12"], capture_output=True, check=False
    )


@pytest.fixture
def empty_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of the test's own: skopeo remembers which blobs it sent to the session's one
    and would send those again instead of compressing anew."""
    yield from _start_registry(tmp_path / "registry")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_strata_pulls_and_runs_what_skopeo_pushed(
    debian: Strata, empty_registry: Registry, tmp_path: Path, strata: Strata, compression: str
) -> None:
    archive = tmp_path / "debian.tar"
    debian("save", "-o", str(archive), "debian:bookworm")
    name = f"{empty_registry.address}/from-skopeo-{compression}:1"
    skopeo(
        "copy", "--dest-tls-verify=false", "--format", "oci",
        "--dest-compress-format", compression,
        f"docker-archive:{archive}", f"docker://{name}",
    )  # fmt: skip
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}")
    layer_type = json.loads(raw)["layers"][0]["mediaType"]
    assert layer_type.endswith("+" + compression)
    out = strata("pull", name).stdout.splitlines()
    assert out[-3] == f"Digest: {Digest.of(raw.encode())}"
    run = strata("run", "--rm", name, "cat", "/etc/debian_version")
    assert run.stdout.strip().startswith("12")
    history = strata("history", name).stdout.splitlines()
    assert history[1].split()[0] != "<missing>"  # the image's own ID on top, as Docker


def test_pull_of_a_multi_platform_index(
    debian: Strata, registry: Registry, strata: Strata, tmp_path: Path
) -> None:
    """An index made by hand of this image and an arm64 twin: each platform gets its own."""
    name = f"{registry.address}/debian:12"
    with RegistryClient(registry.address) as client:
        amd = client.get_manifest("debian", "12", ["application/vnd.oci.image.manifest.v1+json"])
        manifest = json.loads(amd.data)
        config_desc = manifest["config"]
        config = json.loads(
            skopeo("inspect", "--tls-verify=false", "--config", "--raw", f"docker://{name}")
        )
        config["architecture"] = "arm64"
        arm_config = json.dumps(config).encode()
        arm_config_digest = Digest.of(arm_config)
        client.upload_blob("multi", arm_config_digest, len(arm_config), io.BytesIO(arm_config))
        assert client.mount_blob("multi", Digest.parse(manifest["layers"][0]["digest"]), "debian")
        assert client.mount_blob("multi", Digest.parse(config_desc["digest"]), "debian")
        arm_manifest = dict(
            manifest,
            config=dict(config_desc, digest=str(arm_config_digest), size=len(arm_config)),
        )
        arm_data = json.dumps(arm_manifest).encode()
        arm = client.put_manifest("multi", str(Digest.of(arm_data)), arm_data, amd.media_type)
        client.put_manifest("multi", str(amd.digest), amd.data, amd.media_type)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": amd.media_type, "digest": str(arm), "size": len(arm_data),
                     "platform": {"architecture": "arm64", "os": "linux"}},
                    {"mediaType": amd.media_type, "digest": str(amd.digest), "size": len(amd.data),
                     "platform": {"architecture": "amd64", "os": "linux"}},
                ],
            }
        ).encode()  # fmt: skip
        index_digest = client.put_manifest("multi", "1", index, OCI_INDEX)
    # skopeo takes the index as valid and copies every platform.
    skopeo("copy", "--all", "--src-tls-verify=false",
           f"docker://{registry.address}/multi:1", f"oci:{tmp_path / 'all'}:multi")  # fmt: skip
    out = strata("pull", "--platform", "linux/amd64", f"{registry.address}/multi:1").stdout
    assert f"Digest: {index_digest}" in out  # the digest the tag names: the index's
    native = json.loads(strata("image", "inspect", f"{registry.address}/multi:1").stdout)[0]
    assert native["Descriptor"]["digest"] == str(amd.digest)
    assert native["Architecture"] == "amd64"
    strata("pull", "--platform", "linux/arm64", f"{registry.address}/multi:1")
    other = json.loads(strata("image", "inspect", f"{registry.address}/multi:1").stdout)[0]
    assert other["Descriptor"]["digest"] == str(arm)
    assert other["Architecture"] == "arm64"
    missing = strata.fail("pull", "--platform", "linux/s390x", f"{registry.address}/multi:1")
    assert "no matching manifest for linux/s390x" in missing
