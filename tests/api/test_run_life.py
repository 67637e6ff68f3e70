"""``strata.run`` with limits, a restart policy and a healthcheck: the API the CLI is thin over."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import strata
from strata.errors import InvalidArgument
from strata.runtime.resources import Resources
from tests.api.conftest import BASE

pytestmark = [pytest.mark.root, pytest.mark.peers]


def test_run_takes_limits_restart_and_healthcheck(debian_root: Path) -> None:
    limits = Resources(memory=32 << 20, pids_limit=50)
    out = strata.run(
        BASE,
        ["cat", "/sys/fs/cgroup/pids/pids.max"],
        resources=limits,
        remove=True,
        root=debian_root,
    )
    assert (out.exit_code, out.stdout) == (0, b"50\n")
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        strata.run(BASE, ["true"], resources=Resources(memory=1024), root=debian_root)
    assert strata.containers(all=True, root=debian_root) == []

    check = {"Test": ["CMD", "true"], "Interval": 10**9}
    started = strata.run(
        BASE,
        ["sh", "-c", "sleep 3; exit 1"],
        restart="on-failure:1",
        healthcheck=check,
        detach=True,
        root=debian_root,
    )
    deadline = time.monotonic() + 60
    while True:
        [found] = strata.containers(all=True, root=debian_root)
        if found.state == "exited":
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    assert (found.id, found.restart_count, found.exit_code) == (started.container.id, 1, 1)
    assert found.health == "healthy"
