"""Read-only cgroups (an unprivileged container, many CI runners): ``strata run`` still works.

runc as root must create a cgroup per container, so the default runtime is the chroot backend
there, and ``--log-level info`` says why. The real tests run strata in a new mount namespace
whose cgroup mounts are read-only (or hidden under a read-only tmpfs); the host's mounts are
never touched (``unshare -m`` makes the namespace's mounts private before changing them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from strata.runtime.runc import cgroup_problem
from tests.conftest import Strata, debian_rootfs_tar

HYBRID = """\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup {tmpfs} shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw
28 26 0:25 / /sys/fs/cgroup/cpu {cpu} shared:10 - cgroup cgroup rw,cpu
29 26 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
"""


def everything_shown(point: str, device: str) -> bool:
    return True


def test_writable_cgroups_are_no_problem() -> None:
    # A read-only tmpfs holding the hierarchies is fine: runc writes in the hierarchies.
    text = HYBRID.format(tmpfs="ro,nosuid", cpu="rw,nosuid")
    assert cgroup_problem(text, everything_shown) is None


def test_one_read_only_hierarchy_is_named() -> None:
    text = HYBRID.format(tmpfs="rw,nosuid", cpu="ro,nosuid")
    assert cgroup_problem(text, everything_shown) == (
        "the cgroup filesystem /sys/fs/cgroup/cpu is read-only"
    )


def test_hidden_hierarchies_count_as_none() -> None:
    text = HYBRID.format(tmpfs="rw", cpu="rw")
    assert cgroup_problem(text, lambda point, device: False) == "no cgroup filesystem is mounted"


def test_this_hosts_cgroups_are_writable() -> None:
    if os.geteuid() != 0:
        pytest.skip("runc runs rootless: cgroups it cannot write are no problem")
    assert cgroup_problem() is None


# -- for real, in a mount namespace -----------------------------------------------------------

READ_ONLY = """\
set -e
mount --make-rprivate /
for point in $(awk '$9 ~ /^cgroup2?$/ {print $5}' /proc/self/mountinfo); do
  mount -o remount,ro,bind "$point"
done
"""
HIDDEN = """\
set -e
mount --make-rprivate /
mount -t tmpfs -o ro tmpfs /sys/fs/cgroup
"""


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("runc") is None:
        pytest.skip("needs root, unshare and runc")
    strata = Strata(tmp_path_factory.mktemp("cgroups") / "store")
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    strata("run", "--rm", "debian:bookworm", "true")  # runc's probe, cached: writable here
    return strata


def in_namespace(st: Strata, setup: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``strata ARGS`` in a new mount namespace prepared by the shell script ``setup``."""
    script = setup + 'exec "$@"\n'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "strata", *args],
        env={**os.environ, "STRATA_ROOT": str(st.root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cgroup_mounts() -> list[str]:
    text = Path("/proc/self/mountinfo").read_text()
    return [" ".join(line.split()[4:6]) for line in text.splitlines() if "cgroup" in line]


@pytest.mark.root
@pytest.mark.peers
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (READ_ONLY, "the cgroup filesystem /sys/fs/cgroup/"),
        (HIDDEN, "no cgroup filesystem is mounted"),
    ],
    ids=["read-only", "hidden"],
)
def test_run_chooses_chroot_and_says_why(st: Strata, setup: str, reason: str) -> None:
    before = cgroup_mounts()
    done = in_namespace(
        st, setup, "--log-level", "info", "run", "--rm", "debian:bookworm", "echo", "hi"
    )
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr
    info = [line for line in done.stderr.splitlines() if "runtime:" in line]
    assert len(info) == 1, done.stderr
    assert info[0].startswith(f"INFO strata.runtime.select: runtime: chroot, because {reason}")
    assert info[0].endswith(
        "runc needs to create a cgroup for each container (the chroot backend needs no cgroups)"
    )
    assert cgroup_mounts() == before  # the host's cgroups were never touched
    # Outside the namespace runc is still the choice (the cached probe is not overruled).
    outside = st("--log-level", "info", "run", "--rm", "debian:bookworm", "true")
    assert "runtime: runc (a probe container ran here)" in outside.stderr


@pytest.mark.root
@pytest.mark.peers
def test_runc_asked_for_by_name_fails_in_one_line(st: Strata) -> None:
    done = in_namespace(
        st, READ_ONLY, "run", "--rm", "--runtime", "runc", "debian:bookworm", "true"
    )
    assert done.returncode == 125
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # runc never ran, so it printed nothing of its own
    assert lines[0].startswith("Error: container ")
    assert ": runc cannot run containers here: the cgroup filesystem /sys/fs/cgroup/" in lines[0]
    assert lines[0].endswith(" is read-only (--runtime chroot runs without cgroups)")


@pytest.mark.root
@pytest.mark.peers
def test_a_detached_container_and_a_build_work_too(st: Strata, tmp_path: Path) -> None:
    done = in_namespace(st, READ_ONLY, "run", "-d", "--name", "ro-cg", "debian:bookworm", "true")
    assert done.returncode == 0, done.stderr
    assert st("wait", "ro-cg").stdout.strip() == "0"
    st("rm", "ro-cg")
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm\nRUN echo built > /built\n")
    done = in_namespace(st, READ_ONLY, "build", "-q", str(tmp_path))
    assert done.returncode == 0, done.stderr
