"""Limits, OOM kills, restarts, health checks and ``update`` end to end: the real CLI, a real
Debian image, real runc and cgroups (this host: cgroup v1 controllers with a v2 tree).

Each limit is read back where the kernel keeps it, inside the container and outside (the
container's own cgroup directories, found from its pid). Waits poll ``inspect`` with a generous
deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.runtime.cgroups import cgroup_dirs
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]

IMAGE = "debian:bookworm"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "life", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)


def inspect(strata: Strata, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(strata("inspect", name).stdout)[0]
    return doc


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def status(strata: Strata, name: str) -> str:
    out = strata("ps", "-a", "--format", "{{.Names}}|{{.Status}}").stdout
    found = [line.split("|", 1)[1] for line in out.splitlines() if line.split("|")[0] == name]
    return found[0] if found else ""


_FILES = (
    "memory/memory.limit_in_bytes",
    "memory/memory.memsw.limit_in_bytes",
    "memory/memory.soft_limit_in_bytes",
    "cpu/cpu.cfs_quota_us",
    "cpu/cpu.cfs_period_us",
    "cpu/cpu.shares",
    "pids/pids.max",
    "cpuset/cpuset.cpus",
)
READ_BACK = f"cd /sys/fs/cgroup && cat {' '.join(_FILES)}; ulimit -Sn; ulimit -Hn"


def test_limits_are_read_back_inside_and_outside(strata: Strata) -> None:
    if not Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
        pytest.skip("written for cgroup v1 controllers with swap accounting (this host's)")
    limits = ["-m", "32m", "--memory-reservation", "16m", "--cpus", "1.5", "--cpu-shares", "512"]
    limits += ["--cpuset-cpus", "0", "--pids-limit", "50", "--ulimit", "nofile=100:200"]
    inside = strata("run", "--name", "lim", *limits, IMAGE, "sh", "-c", READ_BACK).stdout.split()
    expected = ["33554432", "67108864", "16777216", "150000", "100000", "512", "50", "0"]
    assert inside == [*expected, "100", "200"]
    strata("rm", "lim")

    strata("run", "-d", "--name", "lim2", *limits, IMAGE, "sleep", "100")
    dirs = cgroup_dirs(inspect(strata, "lim2")["State"]["Pid"])
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text() == "33554432\n"
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "150000\n"
    assert (dirs["pids"] / "pids.max").read_text() == "50\n"

    # update: applied live, read back from the same cgroups, and recorded.
    out = strata("update", "-m", "64m", "--cpus", "0.5", "--pids-limit", "20", "lim2").stdout
    assert out == "lim2\n"
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text() == "67108864\n"
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (dirs["pids"] / "pids.max").read_text() == "20\n"
    host = inspect(strata, "lim2")["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        64 << 20,
        64 << 20,  # the swap limit run gave (twice 32m) is kept, as Docker's update keeps it
        500_000_000,
        20,
    )
    strata("rm", "-f", "lim2")


def test_an_oom_kill_shows_as_dockers(strata: Strata) -> None:
    proc = strata(
        "run",
        "--name",
        "oom",
        "-m",
        "32m",
        "--memory-swap",
        "32m",
        IMAGE,
        "tail",
        "/dev/zero",
        check=False,
    )
    assert proc.returncode == 137
    state = inspect(strata, "oom")["State"]
    assert (state["Status"], state["OOMKilled"], state["ExitCode"]) == ("exited", True, 137)
    strata("rm", "oom")
    strata("run", "--name", "fine", "-m", "32m", IMAGE, "true")
    assert inspect(strata, "fine")["State"]["OOMKilled"] is False
    strata("rm", "fine")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "1k"], "Error: Minimum memory limit allowed is 6MB"),
        (["--cpus", "4096"], "Error: Range of CPUs is from 0.01 to"),
        (["--restart", "always", "--rm"], "Error: Conflicting options: --restart and --rm"),
        (["--restart", "sometimes"], "Error: invalid restart policy 'sometimes'"),
        (["--memory", "lots"], 'Error: invalid argument "lots" for "-m, --memory" flag'),
        (["--runtime", "chroot", "-m", "32m"], "Error: the chroot runtime cannot limit memory"),
    ],
)
def test_a_refused_limit_is_one_line_and_makes_nothing(
    strata: Strata, args: list[str], message: str
) -> None:
    proc = strata("run", "-d", *args, IMAGE, "true", check=False)
    assert proc.returncode == 125
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr
    assert strata("ps", "-a", "-q").stdout == ""


def test_on_failure_restarts_as_many_times_as_it_may(strata: Strata) -> None:
    strata(
        "run",
        "-d",
        "--name",
        "r",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo run; exit 3",
    )
    wait_until(lambda: inspect(strata, "r")["State"]["Status"] == "exited")
    doc = inspect(strata, "r")
    assert (doc["RestartCount"], doc["State"]["ExitCode"]) == (2, 3)
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert strata("logs", "r").stdout == "run\nrun\nrun\n"
    strata("rm", "r")


def test_always_restarts_until_the_user_stops_it(strata: Strata, tmp_path: Path) -> None:
    # Quick exits, until a file on the host says to stay up.
    script = "[ -e /m/hold ] && exec sleep 300; sleep 0.2"
    run = ("run", "-d", "--name", "a", "--restart", "always", "-v", f"{tmp_path}:/m")
    strata(*run, IMAGE, "sh", "-c", script)
    wait_until(lambda: inspect(strata, "a")["RestartCount"] >= 2)
    strata("stop", "a")
    state = inspect(strata, "a")
    assert state["State"]["Status"] == "exited"
    count = state["RestartCount"]
    time.sleep(1.0)  # longer than any back-off so far: a restart would have come
    assert inspect(strata, "a")["State"]["Status"] == "exited"
    assert inspect(strata, "a")["RestartCount"] == count
    # A start by the user starts its life over; kill is respected as stop is.
    (tmp_path / "hold").touch()
    strata("start", "a")
    assert inspect(strata, "a")["RestartCount"] == 0
    strata("kill", "a")
    time.sleep(1.0)
    assert inspect(strata, "a")["State"]["Status"] == "exited"
    assert inspect(strata, "a")["RestartCount"] == 0
    strata("rm", "a")


def test_a_healthcheck_turns_healthy_then_unhealthy(strata: Strata) -> None:
    health = ["--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-retries", "2"]
    strata("run", "-d", "--name", "h", *health, IMAGE, "sleep", "300")
    doc = inspect(strata, "h")
    assert doc["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/ok"],
        "Interval": 1_000_000_000,
        "Retries": 2,
    }
    assert doc["State"]["Health"]["Status"] in ("starting", "unhealthy")
    wait_until(lambda: inspect(strata, "h")["State"]["Health"]["Status"] == "unhealthy")
    assert status(strata, "h").endswith(" (unhealthy)")
    strata("exec", "h", "touch", "/tmp/ok")
    wait_until(lambda: inspect(strata, "h")["State"]["Health"]["Status"] == "healthy")
    assert status(strata, "h").endswith(" (healthy)")
    state = inspect(strata, "h")["State"]["Health"]
    assert state["FailingStreak"] == 0
    assert 1 <= len(state["Log"]) <= 5
    assert state["Log"][-1]["ExitCode"] == 0
    assert set(state["Log"][-1]) == {"Start", "End", "ExitCode", "Output"}
    strata("rm", "-f", "h")


def test_a_probe_past_its_timeout_fails_with_dockers_words(strata: Strata) -> None:
    health = ["--health-cmd", "sleep 5", "--health-interval", "1s", "--health-timeout", "1s"]
    strata("run", "-d", "--name", "t", *health, IMAGE, "sleep", "300")
    assert status(strata, "t").endswith(" (health: starting)")
    wait_until(lambda: inspect(strata, "t")["State"]["Health"]["Log"])
    entry = inspect(strata, "t")["State"]["Health"]["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (1s)")
    strata("rm", "-f", "t")


def test_the_images_healthcheck_runs_and_no_healthcheck_disables_it(strata: Strata) -> None:
    strata("run", "--name", "base", IMAGE, "true")
    change = 'HEALTHCHECK --interval=1s --retries=1 CMD ["true"]'
    strata("commit", "-c", change, "base", "hc:1")
    strata("rm", "base")
    strata("run", "-d", "--name", "on", "hc:1", "sleep", "300")
    strata("run", "-d", "--name", "off", "--no-healthcheck", "hc:1", "sleep", "300")
    wait_until(lambda: inspect(strata, "on")["State"]["Health"]["Status"] == "healthy")
    off = inspect(strata, "off")
    assert off["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert "Health" not in off["State"]
    assert not status(strata, "off").endswith(")")
    strata("rm", "-f", "on", "off")
    strata("rmi", "hc:1")


@pytest.mark.parametrize("runtime", ["chroot"])
def test_the_chroot_backend_applies_ulimits_restarts_and_checks_health(
    strata: Strata, runtime: str
) -> None:
    out = strata(
        "run",
        "--rm",
        "--runtime",
        runtime,
        "--ulimit",
        "nofile=50:60",
        IMAGE,
        "sh",
        "-c",
        "ulimit -Sn; ulimit -Hn",
    )
    assert out.stdout.split() == ["50", "60"]
    life = ["--restart", "on-failure:1", "--health-cmd", "true", "--health-interval", "1s"]
    strata(
        "run",
        "-d",
        "--runtime",
        runtime,
        "--name",
        "c",
        *life,
        IMAGE,
        "sh",
        "-c",
        "sleep 2; exit 1",
    )
    wait_until(lambda: inspect(strata, "c")["State"]["Status"] == "exited")
    doc = inspect(strata, "c")
    assert (doc["RestartCount"], doc["State"]["ExitCode"]) == (1, 1)
    assert doc["State"]["Health"]["Status"] == "healthy"
    strata("rm", "c")


def test_a_container_waiting_to_restart_shows_so_and_stop_ends_it(strata: Strata) -> None:
    strata("run", "-d", "--name", "w", "--restart", "always", IMAGE, "sh", "-c", "exit 2")
    # The back-off doubles after each quick exit: it soon lasts long enough to be seen.
    seen: list[dict[str, Any]] = []
    wait_until(lambda: seen.append(inspect(strata, "w")["State"]) or seen[-1]["Restarting"])
    state = seen[-1]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("restarting", True, 2)
    wait_until(lambda: re.fullmatch(r"Restarting \(2\) .* ago", status(strata, "w")))
    strata("stop", "w")
    state = inspect(strata, "w")["State"]
    assert (state["Status"], state["Restarting"]) == ("exited", False)
    strata("rm", "w")


def test_failures_in_the_start_period_do_not_count(strata: Strata) -> None:
    health = ["--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1"]
    strata(
        "run", "-d", "--name", "sp", *health, "--health-start-period", "1h", IMAGE, "sleep", "300"
    )
    wait_until(lambda: len(inspect(strata, "sp")["State"]["Health"]["Log"]) >= 2)
    health_state = inspect(strata, "sp")["State"]["Health"]
    assert (health_state["Status"], health_state["FailingStreak"]) == ("starting", 0)
    assert health_state["Log"][0]["ExitCode"] == 1
    assert status(strata, "sp").endswith(" (health: starting)")
    strata("rm", "-f", "sp")


def test_wait_ends_with_the_first_exit_of_a_container_that_restarts(strata: Strata) -> None:
    strata("run", "-d", "--name", "wr", "--restart", "always", IMAGE, "sh", "-c", "sleep 1; exit 4")
    assert strata("wait", "wr").stdout == "4\n"  # as Docker's: the restarts go on
    wait_until(lambda: inspect(strata, "wr")["RestartCount"] >= 1)
    strata("rm", "-f", "wr")


def test_update_without_a_flag_or_of_a_missing_container_is_one_line(strata: Strata) -> None:
    assert strata.fail("update", "x") == (
        "Error: You must provide one or more flags when using this command."
    )
    assert strata.fail("update", "-m", "32m", "nosuch") == "Error: No such container: nosuch"
