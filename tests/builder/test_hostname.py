"""The host name a container sees: the host's on an explicit ``--network host`` (Docker's rule, so
a build that writes it into a file is reproducible), else the container's short ID (Docker's
default network gives that; strata's default network is the host's, with the same name)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]

DOCKERFILE = "FROM debian:bookworm\nRUN hostname > /name && cat /etc/hostname >> /name\n"


def _built_name(st: Strata, tmp_path: Path, *network: str) -> list[str]:
    ctx = tmp_path / f"ctx{len(network)}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    st("build", "--no-cache", "-q", *network, "-t", "hostname-test", str(ctx))
    out = st("run", "--rm", "--network", "none", "hostname-test", "cat", "/name").stdout
    return out.split()


def test_build_run_steps_on_the_host_network_see_the_host_name(st: Strata, tmp_path: Path) -> None:
    host = socket.gethostname()
    assert _built_name(st, tmp_path, "--network", "host") == [host, host]
    default = _built_name(st, tmp_path)
    assert len(set(default)) == 1 and re.fullmatch(r"[0-9a-f]{12}", default[0])


def test_run_on_the_host_network_sees_the_host_name(st: Strata) -> None:
    script = "hostname; cat /etc/hostname"
    host = socket.gethostname()
    out = st("run", "--rm", "--network", "host", "debian:bookworm", "sh", "-c", script).stdout
    assert out.split() == [host, host]
    out = st("run", "--rm", "debian:bookworm", "sh", "-c", script).stdout
    names = out.split()
    assert len(names) == 2 and names[0] == names[1] and re.fullmatch(r"[0-9a-f]{12}", names[0])
    assert st("run", "--rm", "--hostname", "box", "--network", "host", "debian:bookworm",
              "hostname").stdout == "box\n"  # fmt: skip
