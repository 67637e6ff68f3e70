"""``strata push``, ``pull``, ``login`` and ``logout`` run for real against docker-registry."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata
from tests.registry.conftest import (
    PASSWORD,
    USER,
    Registry,
    basic_registry,  # noqa: F401 (a fixture)
    registry,  # noqa: F401 (a fixture)
)


def inspect(strata: Strata, name: str) -> dict[str, object]:
    doc = json.loads(strata("image", "inspect", name).stdout)
    assert isinstance(doc, list)
    found = doc[0]
    assert isinstance(found, dict)
    return found


@pytest.mark.peers
def test_push_and_pull_print_what_docker_prints(
    strata: Strata,
    registry: Registry,  # noqa: F811
    tmp_path: Path,
) -> None:
    rootfs = rootfs_tar(tmp_path / "rootfs.tar", {"./app/data": b"data\n"})
    name = f"{registry.address}/cli/app:1"
    strata("import", str(rootfs), name)
    layers = inspect(strata, name)["RootFS"]
    assert isinstance(layers, dict)
    layer = layers["Layers"][0].removeprefix("sha256:")[:12]

    out = strata("push", name).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{registry.address}/cli/app]"
    assert f"{layer}: Pushed" in out
    m = re.fullmatch(r"1: digest: (sha256:[0-9a-f]{64}) size: \d+", out[-1])
    assert m is not None, out
    digest = m.group(1)
    again = strata("push", name).stdout.splitlines()
    assert f"{layer}: Layer already exists" in again
    assert again[-1] == out[-1]  # the same manifest digest the second time

    strata("rmi", name)
    out = strata("pull", name).stdout.splitlines()
    assert out[0] == "1: Pulling from cli/app"
    assert any(line.endswith(": Pull complete") for line in out), out
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}", name]
    out = strata("pull", name).stdout.splitlines()
    assert out[-2:] == [f"Status: Image is up to date for {name}", name]
    listing = strata("image", "ls", "--digests").stdout
    assert digest in listing
    assert inspect(strata, name)["RepoDigests"] == [f"{registry.address}/cli/app@{digest}"]
    # A name without a tag is "latest", and Docker says so.
    strata("tag", name, f"{registry.address}/cli/app")
    strata("push", f"{registry.address}/cli/app")
    out = strata("pull", f"{registry.address}/cli/app").stdout.splitlines()
    assert out[0] == "Using default tag: latest"
    assert out[-1] == f"{registry.address}/cli/app:latest"


@pytest.mark.peers
def test_errors_are_one_line(
    strata: Strata,
    registry: Registry,  # noqa: F811
) -> None:
    missing = strata.fail("pull", f"{registry.address}/no/such:1")
    assert missing.startswith(f"Error: pull {registry.address}/no/such:1: ")
    assert "not found" in missing
    nothing = strata.fail("push", f"{registry.address}/not/local:1")
    assert nothing == (
        f"Error: An image does not exist locally with the tag: {registry.address}/not/local"
    )
    bad = strata.fail("pull", "--platform", "nonsense", f"{registry.address}/x:1")
    assert "invalid platform" in bad


@pytest.mark.peers
def test_login_push_logout(
    strata: Strata,
    basic_registry: Registry,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "docker"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    address = basic_registry.address
    name = f"{address}/private/app:1"
    strata("import", str(rootfs_tar(tmp_path / "rootfs.tar")), name)
    assert "authentication required" in strata.fail("push", name)

    wrong = strata("login", "-u", USER, "--password-stdin", address, input=b"nope\n", check=False)
    assert wrong.returncode != 0
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert not (config / "config.json").exists()

    ok = strata("login", "-u", USER, "--password-stdin", address, input=PASSWORD.encode() + b"\n")
    assert ok.stdout.strip().splitlines()[-1] == "Login Succeeded"
    saved = json.loads((config / "config.json").read_text())
    assert base64.b64decode(saved["auths"][address]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert (config / "config.json").stat().st_mode & 0o777 == 0o600

    strata("push", name)
    strata("rmi", name)
    strata("pull", name)

    assert strata("logout", address).stdout == f"Removing login credentials for {address}\n"
    assert strata("logout", address).stdout == f"Not logged in to {address}\n"
    assert "authentication required" in strata.fail("pull", name)


def test_progress_on_a_terminal_and_off_it(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from rich.console import Console

    from strata.cli.registry import PlainEvents, RichEvents

    plain = PlainEvents()
    plain.header("1: Pulling from app")
    plain.status("0123456789ab", "Pulling fs layer")
    plain.start("0123456789ab", "Downloading", 100)  # bytes are for bars only
    plain.advance("0123456789ab", 100)
    plain.status("0123456789ab", "Pull complete", final=True)
    assert capsys.readouterr().out.splitlines() == [
        "1: Pulling from app",
        "0123456789ab: Pulling fs layer",
        "0123456789ab: Pull complete",
    ]
    screen = io.StringIO()
    with RichEvents(Console(file=screen, force_terminal=True, width=120)) as bars:
        bars.header("1: Pulling from app")
        bars.status("0123456789ab", "Pulling fs layer")
        bars.start("0123456789ab", "Downloading", 2_000_000)
        bars.advance("0123456789ab", 2_000_000)
        bars.status("0123456789ab", "Pull complete", final=True)
    shown = screen.getvalue()
    assert "1: Pulling from app" in shown
    assert "0123456789ab: Pull complete" in shown
    assert "2.0/2.0 MB" in shown
