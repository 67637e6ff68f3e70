"""The peers that ``../shared/tools/anchors.sh up`` starts: Docker (legacy builder), a registry.

Tests that compare strata with Docker take the ``docker`` fixture. In CI (``.ci/run`` starts the
anchors first) a missing Docker is a failure; on a developer machine without them it is a skip.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO

ANCHORS = (REPO / ".." / "shared" / "tools" / "anchors.sh").resolve()
DOCKER_SOCK = Path(os.environ.get("ANCHORS_DIR", "/var/tmp/anchors")) / "docker.sock"


@dataclass(frozen=True)
class Docker:
    """The anchors' Docker Engine, driven through its real CLI with the legacy builder."""

    env: dict[str, str]

    def __call__(
        self, *args: str, check: bool = True, cwd: Path | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=cwd,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


def docker_or_skip() -> Docker:
    """The running anchors' Docker, or a skip (a failure in CI) when it is not there."""
    env = {
        **os.environ,
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", f"unix://{DOCKER_SOCK}"),
        "DOCKER_BUILDKIT": "0",
    }
    ok = (
        subprocess.run(["docker", "version"], capture_output=True, env=env, check=False).returncode
        == 0
        if os.path.exists("/usr/bin/docker")
        else False
    )
    if not ok:
        msg = "needs Docker from ../shared/tools/anchors.sh up"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return Docker(env)
