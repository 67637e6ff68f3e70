"""``ps --filter``, ``-n``, ``-l`` and ``-s``: Docker's matching rules, run on both engines
with the same containers (named ``strata-psf-*``, so Docker's other containers stay out)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.anchors import Docker
from tests.cli.test_containers import IMAGE, assert_nothing_left, wait_until
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]

OURS = "name=^strata-psf-"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "psf", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)
    assert_nothing_left(store)


Tool = Callable[..., object]


def populate(tool: Callable[..., object], *network: str) -> None:
    """created (labelled), exited 0, exited 3, running: the same four on either engine."""
    tool("create", "--label", "a=b", "--label", "flag", "--name", "strata-psf-made", IMAGE, "true")
    tool("run", *network, "--name", "strata-psf-ok", IMAGE, "true")
    tool("run", *network, "--name", "strata-psf-three", IMAGE, "sh", "-c", "exit 3", check=False)
    tool("run", "-d", *network, "--name", "strata-psf-up", IMAGE, "sleep", "300")


QUERIES: list[tuple[str, ...]] = [
    (),
    ("-a",),
    ("--filter", "status=created"),
    ("--filter", "status=exited"),
    ("--filter", "status=running", "--filter", "status=created"),
    ("-a", "--filter", "exited=3"),
    ("-a", "--filter", "exited=0", "--filter", "exited=3"),
    ("-a", "--filter", "name=three"),
    ("-a", "--filter", "name=^/strata-psf-ok$"),
    ("--filter", "name=made"),  # created: not listed without -a
    ("-a", "--filter", "before=strata-psf-three"),
    ("-a", "--filter", "since=strata-psf-ok"),
    ("-a", "--filter", f"ancestor={IMAGE}"),
    ("-a", "--filter", "ancestor=nosuchimage"),
    ("-a", "--filter", "health=none"),
    ("-a", "--filter", "volume=/nowhere"),
    ("-a", "--filter", "label=a"),
    ("-a", "--filter", "label=a=b"),
    ("-a", "--filter", "label=flag"),
    ("-a", "--filter", "label=a=c"),
    ("-a", "--filter", "label=a", "--filter", "label=flag"),
    ("-n", "2"),
    ("-l",),
]


def names(tool: Callable[..., object], *args: str) -> list[str]:
    out = tool("ps", "--filter", OURS, *args, "--format", "{{.Names}}")
    return out.stdout.split()  # type: ignore[attr-defined, no-any-return]


def test_filters_match_docker(strata: Strata, docker: Docker) -> None:
    for name in ("made", "ok", "three", "up"):
        docker("rm", "-f", f"strata-psf-{name}", check=False)
    try:
        populate(docker, "--network", "host")
        populate(strata)
        wait_until(lambda: names(strata) == ["strata-psf-up"], timeout=120)
        for query in QUERIES:
            ours = names(strata, *query)
            theirs = names(docker, *query)
            if query in (("-n", "2"), ("-l",)):  # Docker's others may be newer: ours are last
                ours = names(strata, "-a")[: len(ours)]
            assert ours == theirs, query
        for bad in ("status=bogus", "exited=x", "health=bogus", "bogus=1", "since=nope"):
            theirs = docker("ps", "--filter", bad, check=False)
            mine = strata("ps", "--filter", bad, check=False)
            assert mine.returncode == theirs.returncode == 1, bad
            message = theirs.stderr.strip().removeprefix("Error response from daemon: ")
            assert mine.stderr.strip() == f"Error: {message}", bad
        size = strata("ps", "-a", "-s", "--filter", "name=made", "--format", "{{.Size}}")
        assert re.fullmatch(r"0B \(virtual \d+(\.\d+)?MB\)\n", size.stdout)
        table = strata("ps", "-s", "--filter", "name=up").stdout.splitlines()
        assert re.search(r"   NAMES +SIZE$", table[0])
        assert re.search(r" strata-psf-up   0B \(virtual \S+\)$", table[1])
        latest = strata("ps", "-l", "--format", "{{.Names}} {{.Size}}").stdout
        assert latest.startswith("strata-psf-up 0B (virtual ")
    finally:
        for name in ("made", "ok", "three", "up"):
            docker("rm", "-f", f"strata-psf-{name}", check=False)
        strata("rm", "-f", *(f"strata-psf-{n}" for n in ("made", "ok", "three", "up")),
               check=False)  # fmt: skip


def test_network_volume_and_health_filters(strata: Strata) -> None:
    """The filters that name what the other parts of issue 12 made: a user network (by name
    or ID), a named volume (by name or destination), a health status."""
    network_id = strata("network", "create", "strata-psf-net").stdout.strip()
    try:
        strata("run", "-d", "--name", "strata-psf-web", "--network", "strata-psf-net",
               "-v", "strata-psf-vol:/data", "--health-cmd", "true",
               "--health-interval", "1s", IMAGE, "sleep", "300")  # fmt: skip
        strata("run", "-d", "--name", "strata-psf-plain", IMAGE, "sleep", "300")
        wait_until(lambda: names(strata, "--filter", "health=healthy") == ["strata-psf-web"],
                   timeout=60)  # fmt: skip
        for query in (
            ("--filter", "network=strata-psf-net"),
            ("--filter", f"network={network_id}"),
            ("--filter", "volume=strata-psf-vol"),
            ("--filter", "volume=/data"),
        ):
            assert names(strata, *query) == ["strata-psf-web"], query
        assert names(strata, "--filter", "network=bridge") == ["strata-psf-plain"]
        assert names(strata, "--filter", "health=none") == ["strata-psf-plain"]
        assert names(strata, "--filter", "volume=nosuchvolume") == []
    finally:
        strata("rm", "-f", "-v", "strata-psf-web", "strata-psf-plain", check=False)
        strata("network", "rm", "strata-psf-net", check=False)
        strata("volume", "rm", "strata-psf-vol", check=False)


def test_system_prune_removes_unused_networks_and_with_volumes_unused_volumes(
    strata: Strata,
) -> None:
    strata("network", "create", "strata-psf-idle")
    strata("volume", "create", "strata-psf-idle")
    out = strata("system", "prune", "-f").stdout
    assert "Deleted Networks:\nstrata-psf-idle\n" in out
    assert "Deleted Volumes:" not in out
    assert strata("volume", "ls", "-q").stdout.split() == ["strata-psf-idle"]
    out = strata("system", "prune", "-f", "--volumes").stdout
    assert "Deleted Volumes:\nstrata-psf-idle\n" in out
    assert strata("volume", "ls", "-q").stdout == ""
    assert strata("network", "ls", "-q", "--filter", "name=strata-psf").stdout == ""
