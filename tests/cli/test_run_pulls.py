"""``run`` and ``create`` pull an image they do not have, as Docker does (``--pull``).

The registry is a docker-registry the tests start on loopback; nothing reaches further.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.peers]


def _pushed(strata: Strata, registry: Registry, tmp_path: Path, name: str) -> str:  # noqa: F811
    """``name`` in the registry (a file /hello, not executable) and not in the store."""
    rootfs = rootfs_tar(tmp_path / "rootfs.tar", {"./hello": b"hi\n"})
    ref = f"{registry.address}/{name}:1"
    strata("import", str(rootfs), ref)
    strata("push", "-q", ref)
    strata("rmi", ref)
    return ref


def test_run_and_create_pull_what_is_missing(
    strata: Strata,
    registry: Registry,  # noqa: F811
    docker: Docker,
    tmp_path: Path,
) -> None:
    ref = _pushed(strata, registry, tmp_path, "pulled/app")
    # --pull never: Docker's "No such image", nothing fetched.
    assert strata.fail("create", "--pull", "never", ref) == f"Error: No such image: {ref}"
    created = strata("create", "--name", "c1", ref, "/hello")
    err = created.stderr.splitlines()
    assert err[0] == f"Unable to find image '{ref}' locally"
    assert err[1] == "1: Pulling from pulled/app"
    assert err[-1] == f"Status: Downloaded newer image for {ref}"
    assert err[-2].startswith("Digest: sha256:")
    assert len(created.stdout.strip()) == 64  # stdout holds only the container's ID
    assert strata("image", "ls", "-q", ref).stdout.strip()

    # Docker's run of the same pulled image: the same report, then its failure to exec /hello.
    want = docker("run", "--rm", ref, "/hello", check=False)
    docker("rmi", ref, check=False)
    strata("rm", "c1")
    strata("rmi", ref)
    got = strata("run", "--rm", ref, "/hello", check=False)
    assert got.returncode == want.returncode == 126
    assert got.stdout == want.stdout == ""
    lines, docker_lines = got.stderr.splitlines(), want.stderr.splitlines()
    assert lines[0] == docker_lines[0] == f"Unable to find image '{ref}' locally"
    assert lines[1] == docker_lines[1] == "1: Pulling from pulled/app"
    assert [x for x in lines if x.startswith(("Digest:", "Status:"))] == [
        x for x in docker_lines if x.startswith(("Digest:", "Status:"))
    ]
    assert lines[-1] == 'Error: exec: "/hello": permission denied'

    # --pull always pulls an image that is here; -q says nothing of it.
    always = strata("run", "--pull", "always", "--rm", ref, "/hello", check=False)
    assert always.stderr.splitlines()[:2] == [
        "1: Pulling from pulled/app",
        always.stderr.splitlines()[1],
    ]
    assert f"Status: Image is up to date for {ref}" in always.stderr
    quiet = strata("run", "--pull=always", "-q", "--rm", ref, "/hello", check=False)
    assert quiet.stderr == 'Error: exec: "/hello": permission denied\n'

    # A name without a tag: ":latest" in the first line, no "Using default tag" (that is pull's).
    strata("tag", ref, ref.removesuffix(":1"))
    strata("push", "-q", ref.removesuffix(":1"))
    strata("rmi", ref, ref.removesuffix(":1"))
    untagged = strata("run", "--rm", ref.removesuffix(":1"), "/hello", check=False)
    want = docker("run", "--rm", ref.removesuffix(":1"), "/hello", check=False)
    docker("rmi", ref.removesuffix(":1"), check=False)
    assert (
        untagged.stderr.splitlines()[:2]
        == want.stderr.splitlines()[:2]
        == [
            f"Unable to find image '{ref.removesuffix(':1')}:latest' locally",
            "latest: Pulling from pulled/app",
        ]
    )

    # What cannot be pulled is run's failure (125) and create's (1), in one line after the first.
    gone = f"{registry.address}/pulled/none:1"
    for command, status in (("run", 125), ("create", 1)):
        proc = strata(command, gone, check=False)
        assert proc.returncode == status
        first, error = proc.stderr.splitlines()
        assert first == f"Unable to find image '{gone}' locally"
        assert error.startswith("Error: ") and "not found" in error
    assert "invalid value for '--pull'" in strata.fail("run", "--pull", "bogus", ref).lower()


def test_push_of_a_missing_image_says_so_first(
    strata: Strata,
    registry: Registry,  # noqa: F811
    docker: Docker,
) -> None:
    for name in (f"{registry.address}/not/here", f"{registry.address}/not/here:2"):
        got = strata("push", name, check=False)
        want = docker("push", name, check=False)
        assert (got.returncode, got.stdout, got.stderr) == (
            want.returncode,
            want.stdout,
            f"Error: {want.stderr}",
        )
        # Docker names the repository, without the tag.
        repo = f"{registry.address}/not/here"
        assert want.stderr == f"An image does not exist locally with the tag: {repo}\n"
