"""``strata run`` / ``ps`` / ``rm`` end to end on a real Debian image and a real runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture
def debian(strata: Strata) -> Strata:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    return strata


def _mounts_under(root: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line
    ]


def test_run_prints_and_exits_with_the_containers_code(debian: Strata) -> None:
    assert debian("run", "--rm", "debian:bookworm", "echo", "hello").stdout == "hello\n"
    proc = debian("run", "--name", "c1", "debian:bookworm", "sh", "-c", "exit 3", check=False)
    assert proc.returncode == 3
    ps = debian("ps", "-a").stdout.splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"]
    assert "Exited (3)" in ps[1] and ps[1].rstrip().endswith("c1")
    assert debian("ps", "-q").stdout == ""  # nothing running
    proc = debian(
        "run", "--rm", "-e", "A=1", "-w", "/tmp", "debian:bookworm", "sh", "-c", "echo $A $PWD"
    )
    assert proc.stdout == "1 /tmp\n"
    net = debian(
        "run", "--rm", "--network", "none", "debian:bookworm", "cat", "/proc/net/dev"
    ).stdout
    assert [line.split(":")[0].strip() for line in net.splitlines()[2:]] == ["lo"]
    assert debian("rm", "c1").stdout == "c1\n"
    assert debian("ps", "-a", "-q").stdout == ""
    assert not _mounts_under(debian.root)
    assert not any((debian.root / "containers").iterdir())


def test_run_errors_are_one_line(debian: Strata) -> None:
    proc = debian("run", "--rm", "debian:bookworm", "nope", check=False)
    assert proc.returncode == 127
    assert proc.stderr == 'Error: exec: "nope": executable file not found in $PATH\n'
    debian("run", "--name", "dup", "debian:bookworm", "true")
    assert 'The container name "/dup" is already in use' in debian.fail(
        "run", "--name", "dup", "debian:bookworm", "true"
    )
    assert "No such image: nope:1" in debian.fail("run", "nope:1")
    assert "No such container: ghost" in debian.fail("rm", "ghost")
    assert "invalid --network" in debian.fail(
        "run", "--network", "bridge", "debian:bookworm", "true"
    )
    # The image a container stands on cannot be removed without -f.
    assert "must force" in debian.fail("rmi", "debian:bookworm")
    debian("rm", "dup")
    assert not _mounts_under(debian.root)
