"""``stats``: the figures come from the container's cgroups and /proc (a busy loop shows CPU,
a written file shows memory), in Docker's table and JSON shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.anchors import Docker
from tests.cli.test_containers import IMAGE, assert_nothing_left
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]

ROW = re.compile(
    r"(?P<id>[0-9a-f]{12}) +(?P<name>\S+) +(?P<cpu>\d+\.\d\d)% +(?P<mem>[\d.]+[KMG]?i?B) / "
    r"(?P<limit>[\d.]+[KMGT]?i?B) +\d+\.\d\d% +\S+ / \S+ +\S+ / \S+ +(?P<pids>\d+)"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "stats", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)
    assert_nothing_left(store)


def test_stats_reads_the_cgroups(strata: Strata) -> None:
    strata("run", "-d", "--name", "busy", IMAGE, "sh", "-c", "while :; do :; done")
    strata("run", "-d", "--name", "idle", IMAGE, "sh", "-c", "sleep 300 & sleep 300")
    out = strata("stats", "--no-stream", "busy", "idle").stdout.splitlines()
    # Column widths follow the values (tabwriter, as Docker's): NET I/O is wide on a bridge.
    assert re.split(r"\s{2,}", out[0]) == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
        "PIDS",
    ]  # fmt: skip
    assert out[0].startswith("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     ")
    rows = {m["name"]: m for m in map(ROW.match, out[1:]) if m is not None}
    assert set(rows) == {"busy", "idle"}, out
    assert float(rows["busy"]["cpu"]) > 5.0  # a busy loop, on a loaded machine too
    assert rows["busy"]["pids"] == "1" and rows["idle"]["pids"] == "3"
    doc = json.loads(
        strata("stats", "--no-stream", "--no-trunc", "--format", "json", "idle").stdout
    )
    assert sorted(doc) == [
        "BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs",
    ]  # fmt: skip
    assert len(doc["ID"]) == 64 and doc["Name"] == "idle"
    custom = strata("stats", "--no-stream", "--format", "table {{.Name}}\t{{.PIDs}}", "idle")
    assert custom.stdout == "NAME      PIDS\nidle      3\n"
    assert strata.fail("stats", "--no-stream", "nope") == "Error: No such container: nope"
    strata("rm", "-f", "busy", "idle")


def test_stats_shape_matches_docker(strata: Strata, docker: Docker) -> None:
    docker("rm", "-f", "strata-stats-peer", check=False)
    docker("run", "-d", "--name", "strata-stats-peer", "--network", "host", IMAGE, "sleep", "300")
    strata("run", "-d", "--name", "strata-stats-peer", "--network", "host", IMAGE, "sleep", "300")
    try:
        theirs = docker("stats", "--no-stream", "strata-stats-peer").stdout.splitlines()
        ours = strata("stats", "--no-stream", "strata-stats-peer").stdout.splitlines()
        assert ours[0] == theirs[0]
        assert ROW.match(theirs[1]) and ROW.match(ours[1])
        fmt = "{{json .}}"
        theirs_doc = json.loads(docker("stats", "--no-stream", "--format", fmt,
                                       "strata-stats-peer").stdout)  # fmt: skip
        ours_doc = json.loads(strata("stats", "--no-stream", "--format", fmt,
                                     "strata-stats-peer").stdout)  # fmt: skip
        assert list(ours_doc) == list(theirs_doc)
        assert (ours_doc["PIDs"], ours_doc["NetIO"]) == (theirs_doc["PIDs"], "0B / 0B")
    finally:
        docker("rm", "-f", "strata-stats-peer", check=False)
        strata("rm", "-f", "strata-stats-peer", check=False)
