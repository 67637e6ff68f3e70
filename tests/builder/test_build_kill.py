"""A build killed with SIGKILL leaves nothing running, mounted or recorded.

Docker's daemon removes the RUN container of a build whose client is killed (checked below
against Docker itself); strata has no daemon, so the RUN container dies with the build through
its guard (runtime/guard.py), and if the guard is killed too, the next command removes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.conftest import Strata
from tests.system.conftest import assert_clean

pytestmark = [pytest.mark.root, pytest.mark.peers]

DEADLINE = 5.0


def dockerfile(ctx: Path, marker: str, base: str = "debian:bookworm") -> Path:
    """``RUN sleep 1000`` whose processes carry ``marker`` in their environment (to find ours)."""
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM {base}\nENV KILL_TEST={marker}\nRUN sleep 1000\n")
    return ctx


def sleepers(marker: str) -> list[int]:
    """The pids of ``sleep 1000`` processes of this test (any shell they run under too)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if f"KILL_TEST={marker}".encode() in environ.split(b"\0") and b"sleep" in cmdline:
            found.append(int(name))
    return found


def store_mounts(root: Path) -> list[str]:
    """Mount points under the store root, from our mount table."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            mounts.append(point)
    return mounts


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_build(
    st: Strata, ctx: Path, marker: str, runtime: str = "runc"
) -> subprocess.Popen[bytes]:
    build = subprocess.Popen(
        [sys.executable, "-m", "strata", "build", "--no-cache", "--runtime", runtime, str(ctx)],
        env={**os.environ, "STRATA_ROOT": str(st.root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for("the RUN container", lambda: bool(sleepers(marker)))
    return build


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        found += [int(p) for p in text.split()]
    return found


def guards_of(build: int) -> list[int]:
    """The build's guard: its child in a session of its own that runs strata (not runc's init)."""
    return [
        p
        for p in children(build)
        if os.getsid(p) == p and b"strata" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]


def dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")


# chroot: its intermediate process, forked by the build, outlives it (the guard sees the death
# through a pidfd, not the end of a pipe that process shares).
@pytest.mark.parametrize("runtime", ["runc", "chroot"])
def test_run_containers_die_with_a_killed_build(st: Strata, tmp_path: Path, runtime: str) -> None:
    marker = uuid.uuid4().hex
    build = start_build(st, dockerfile(tmp_path / "ctx", marker), marker, runtime)
    assert store_mounts(st.root)  # the RUN container's rootfs, while it runs
    (guard,) = guards_of(build.pid)
    build.send_signal(signal.SIGKILL)
    build.wait()
    wait_for("the RUN container to die", lambda: not sleepers(marker), DEADLINE)
    # The guard removes the container itself (the record, its mount, its snapshot), then leaves.
    wait_for("the guard to finish", lambda: dead(guard), DEADLINE)
    assert store_mounts(st.root) == []
    assert st("ps", "-a", "-q").stdout == ""
    assert st("image", "ls", "-q").stdout.strip() != ""  # debian:bookworm, nothing else lost
    assert list((st.root / "containers").iterdir()) == []
    # And nothing else of the build: its lease, ingests, step snapshot and scratch.
    assert_clean(st)


def test_the_next_command_removes_what_a_killed_build_left(st: Strata, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    build = start_build(st, dockerfile(tmp_path / "ctx", marker), marker)
    (guard,) = guards_of(build.pid)
    os.kill(guard, signal.SIGKILL)  # the guard first: nobody is left to clean up
    wait_for("the guard to die", lambda: dead(guard), DEADLINE)
    build.send_signal(signal.SIGKILL)
    build.wait()
    time.sleep(0.5)
    assert sleepers(marker)  # left running: nobody saw the build die
    assert st("ps", "-a", "-q").stdout == ""  # it reconciles: the build's container goes
    assert not sleepers(marker)
    assert store_mounts(st.root) == []
    assert list((st.root / "containers").iterdir()) == []
    # The build's own leftovers (its lease, its step's snapshot) are the next build's to drop.
    (tmp_path / "next").mkdir()
    (tmp_path / "next" / "Dockerfile").write_text("FROM debian:bookworm\nRUN true\n")
    st("build", "-q", "--no-cache", str(tmp_path / "next"))
    assert_clean(st)


def test_a_build_that_ends_leaves_no_guard(st: Strata, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM debian:bookworm\nRUN true\nRUN false\n")
    proc = subprocess.run(
        [sys.executable, "-m", "strata", "build", "--no-cache", str(ctx)],
        env={**os.environ, "STRATA_ROOT": str(st.root)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    # The guard left with the build (it was told "done"); nothing of the steps remains.
    assert st("ps", "-a", "-q").stdout == ""
    assert store_mounts(st.root) == []
    assert_clean(st)


def test_docker_removes_the_run_container_of_a_killed_build(docker: Docker, tmp_path: Path) -> None:
    """The reference: Docker 20.10's legacy builder, its CLI killed mid-RUN."""
    marker = uuid.uuid4().hex
    ctx = dockerfile(tmp_path / "ctx", marker)
    build = subprocess.Popen(
        ["docker", "build", "--no-cache", str(ctx)],
        env=docker.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for("Docker's RUN container", lambda: bool(sleepers(marker)))
    build.send_signal(signal.SIGKILL)
    build.wait()
    wait_for("Docker's RUN container to die", lambda: not sleepers(marker), DEADLINE)

    def recorded() -> bool:
        ids = docker("ps", "-a", "-q").stdout.split()
        # check=False: a container listed may be gone by the inspect (this one, or another's).
        envs = docker("inspect", "-f", "{{.Config.Env}}", *ids, check=False) if ids else None
        return envs is not None and marker in envs.stdout

    # And its record: no container (running or not) with our marker is left.
    wait_for("Docker to remove the container", lambda: not recorded(), DEADLINE)
