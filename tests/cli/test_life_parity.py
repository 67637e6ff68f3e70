"""Limits, restart policies and health checks as Docker 20.10 shows them: ``inspect``'s
HostConfig resource fields (values and defaults) and ``ps``'s health status, side by side."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.anchors import Docker
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.peers, pytest.mark.root]

IMAGE = "debian:bookworm"  # the anchors load it into Docker; strata imports the same rootfs
FIELDS = (
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "MemoryReservation",
    "MemorySwap",
    "PidsLimit",
    "Ulimits",
    "RestartPolicy",
)


@pytest.fixture
def both(strata: Strata, docker: Docker) -> Iterator[tuple[Strata, Docker, str]]:
    strata("import", str(debian_rootfs_tar()), IMAGE)
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"the anchors' Docker has no {IMAGE}")
    name = f"life-parity-{os.getpid()}"
    yield strata, docker, name
    docker("rm", "-f", name, check=False)
    strata("rm", "-f", name, check=False)


def _host(tool: Strata | Docker, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(tool("inspect", name).stdout)[0]
    return {key: doc["HostConfig"][key] for key in FIELDS}


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["-m", "32m", "--cpus", "1.5", "--cpu-shares", "512", "--cpuset-cpus", "0"],
        ["-m", "64m", "--memory-swap", "-1", "--memory-reservation", "16m", "--pids-limit", "50"],
        ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100", "--restart", "on-failure:2"],
        ["--pids-limit", "-1", "--restart", "unless-stopped", "-m", "48m", "--memory-swap", "96m"],
    ],
)
def test_host_config_limits_are_dockers(
    both: tuple[Strata, Docker, str], options: list[str]
) -> None:
    strata, docker, name = both
    for tool in (strata, docker):
        tool("create", "--network", "host", "--name", name, *options, IMAGE, "true")
    assert _host(strata, name) == _host(docker, name)


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def _status(tool: Strata | Docker, name: str) -> str:
    # By name from the whole list: strata's ps --filter is another part's (cmds).
    out = tool("ps", "-a", "--format", "{{.Names}}|{{.Status}}").stdout
    out = "".join(line.split("|", 1)[1] for line in out.splitlines() if line.split("|")[0] == name)
    return re.sub(r"Up .*? (\(|$)", r"Up <time> \1", out.strip())


def test_ps_shows_health_as_docker(both: tuple[Strata, Docker, str]) -> None:
    strata, docker, name = both
    health = ["--health-cmd", "test -f /tmp/ok", "--health-interval", "1s", "--health-retries", "1"]
    for tool in (strata, docker):
        tool("run", "-d", "--network", "host", "--name", name, *health, IMAGE, "sleep", "300")
    # Starting: until the first probe (a second away).
    for tool in (strata, docker):
        _wait(lambda tool=tool: "unhealthy" in _status(tool, name))  # type: ignore[misc]
    assert _status(strata, name) == _status(docker, name) == "Up <time> (unhealthy)"
    for tool in (strata, docker):
        tool("exec", name, "touch", "/tmp/ok")
    for tool in (strata, docker):
        _wait(lambda tool=tool: "(healthy)" in _status(tool, name))  # type: ignore[misc]
    assert _status(strata, name) == _status(docker, name) == "Up <time> (healthy)"
    strata_health = json.loads(strata("inspect", name).stdout)[0]["State"]["Health"]
    docker_health = json.loads(docker("inspect", name).stdout)[0]["State"]["Health"]
    assert list(strata_health) == list(docker_health)
    assert list(strata_health["Log"][-1]) == list(docker_health["Log"][-1])
    assert strata_health["Status"] == docker_health["Status"] == "healthy"


def test_an_attached_run_ends_with_the_first_exit_and_restarts_go_on(
    both: tuple[Strata, Docker, str],
) -> None:
    strata, docker, name = both
    script = "echo hi; exit 3"
    for tool in (strata, docker):
        run = ("run", "--network", "host", "--name", name, "--restart", "on-failure:2")
        proc = tool(*run, IMAGE, "sh", "-c", script, check=False)
        assert (proc.returncode, proc.stdout) == (3, "hi\n")
    for tool in (strata, docker):
        _wait(lambda tool=tool: _doc(tool, name)["State"]["Status"] == "exited")  # type: ignore[misc]
    ours, theirs = _doc(strata, name), _doc(docker, name)
    assert ours["RestartCount"] == theirs["RestartCount"] == 2
    assert ours["State"]["ExitCode"] == theirs["State"]["ExitCode"] == 3
    assert strata("logs", name).stdout == docker("logs", name).stdout == "hi\nhi\nhi\n"


def _doc(tool: Strata | Docker, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(tool("inspect", name).stdout)[0]
    return doc


def test_a_kill_by_the_user_with_any_signal_stops_the_restarts(
    both: tuple[Strata, Docker, str],
) -> None:
    strata, docker, name = both
    script = 'trap "exit 5" HUP; sleep 300 & wait'
    for tool in (strata, docker):
        run = ("run", "-d", "--network", "host", "--name", name, "--restart", "always")
        tool(*run, IMAGE, "sh", "-c", script)
        time.sleep(0.5)  # the shell sets its trap
        tool("kill", "-s", "HUP", name)
        _wait(lambda tool=tool: _doc(tool, name)["State"]["Status"] == "exited")  # type: ignore[misc]
    time.sleep(1.0)  # past the first back-offs: a restart would have come
    ours, theirs = _doc(strata, name), _doc(docker, name)
    assert (ours["State"]["Status"], ours["RestartCount"], ours["State"]["ExitCode"]) == (
        theirs["State"]["Status"],
        theirs["RestartCount"],
        theirs["State"]["ExitCode"],
    )
    assert ours["State"]["ExitCode"] == 5


def test_update_prints_names_and_records_as_docker(both: tuple[Strata, Docker, str]) -> None:
    strata, docker, name = both
    for tool in (strata, docker):
        tool("run", "-d", "--network", "host", "--name", name, "-m", "32m", IMAGE, "sleep", "300")
        changes = ("--cpus", "1", "--pids-limit", "20", "--restart", "always", "-m", "48m")
        assert tool("update", *changes, name, name).stdout == f"{name}\n{name}\n"
    assert _host(strata, name) == _host(docker, name)
    for tool in (strata, docker):
        tool("update", "--pids-limit", "0", name)  # no change
    assert _host(strata, name) == _host(docker, name)
    for tool in (strata, docker):
        tool("update", "--pids-limit", "-1", name)  # unlimited, recorded as 0
        assert tool("exec", name, "cat", "/sys/fs/cgroup/pids/pids.max").stdout == "max\n"
    assert _host(strata, name) == _host(docker, name)
    assert _host(strata, name)["PidsLimit"] == 0


def test_an_oom_kill_is_recorded_as_dockers(both: tuple[Strata, Docker, str]) -> None:
    strata, docker, name = both
    limits = ("-m", "32m", "--memory-swap", "32m")
    for tool in (strata, docker):
        run = ("run", "--network", "host", "--name", name, *limits)
        assert tool(*run, IMAGE, "tail", "/dev/zero", check=False).returncode == 137
    keys = ("Status", "Running", "Restarting", "OOMKilled", "ExitCode")
    ours, theirs = _doc(strata, name)["State"], _doc(docker, name)["State"]
    assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}
    assert ours["OOMKilled"] is True
