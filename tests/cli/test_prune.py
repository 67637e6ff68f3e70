"""``container prune`` and ``system prune``: what goes, what the filters keep, and Docker's
prompts and summaries (compared by answering "n" to Docker's own prompt: nothing is pruned
there)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.anchors import Docker
from tests.cli.test_containers import IMAGE, assert_nothing_left
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "prune", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)
    assert_nothing_left(store)


def names(strata: Strata) -> list[str]:
    return sorted(strata("ps", "-a", "--format", "{{.Names}}").stdout.split())


def test_container_prune(strata: Strata) -> None:
    assert strata("container", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    created = strata("create", "--name", "made", IMAGE, "true").stdout.strip()
    exited = strata("run", "--name", "ran", IMAGE, "sh", "-c", "echo x > /f").stdout
    assert exited == ""
    strata("run", "-d", "--name", "up", IMAGE, "sleep", "100")
    refused = strata("container", "prune", input=b"n\n")
    assert refused.stdout == (
        "WARNING! This will remove all stopped containers.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert names(strata) == ["made", "ran", "up"]
    assert strata("container", "prune", "-f", "--filter", "until=1h").stdout == (
        "Total reclaimed space: 0B\n"  # every one is younger than an hour
    )
    assert strata("container", "prune", "-f", "--filter", "label=keep").stdout == (
        "Total reclaimed space: 0B\n"  # nobody has that label
    )
    assert strata.fail("container", "prune", "-f", "--filter", "bogus=1") == (
        "Error: Invalid filter 'bogus'"
    )
    ran = strata("inspect", "-f", "{{.Id}}", "ran").stdout.strip()
    out = strata("container", "prune", input=b"y\n").stdout
    match = re.fullmatch(
        r"WARNING! This will remove all stopped containers.\n"
        r"Are you sure you want to continue\? \[y/N\] Deleted Containers:\n"
        r"([0-9a-f]{64})\n([0-9a-f]{64})\n\nTotal reclaimed space: (\S+)\n",
        out,
    )
    assert match is not None, out
    assert {match[1], match[2]} == {created, ran}
    assert match[3] != "0B"  # the file /f the run wrote
    assert names(strata) == ["up"]
    strata("rm", "-f", "up")


def test_system_prune(strata: Strata) -> None:
    strata("create", "--name", "made", IMAGE, "true")
    out = strata("system", "prune", "-f").stdout
    assert re.fullmatch(
        r"Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: \S+\n", out
    ), out
    assert strata("images", "-q").stdout != ""  # used or tagged: kept without -a


def test_prune_prompts_match_docker(strata: Strata, docker: Docker) -> None:
    for args in (
        ("container", "prune"),
        ("system", "prune"),
        ("system", "prune", "-a"),
        ("system", "prune", "--volumes"),
        ("system", "prune", "-a", "--volumes"),
    ):
        theirs = docker(*args, input="n\n")
        ours = strata(*args, input=b"n\n")
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), args
    theirs = docker("container", "prune", "-f", "--filter", "bogus=1", check=False)
    ours = strata("container", "prune", "-f", "--filter", "bogus=1", check=False)
    assert ours.returncode == theirs.returncode
    assert ours.stderr == theirs.stderr.replace("Error response from daemon: ", "Error: ")
