"""``container commit``, ``diff`` and ``export`` on real containers."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar, store_state

pytestmark = [pytest.mark.root, pytest.mark.peers]

CHANGES = (
    "echo hi > /root/hello.txt; rm /etc/issue; rm -rf /usr/share/doc/apt;"
    " mkdir -p /opt/app && echo x > /opt/app/x"
)


@pytest.fixture
def base(strata: Strata) -> Strata:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    strata("run", "--name", "base", "debian:bookworm", "sh", "-c", CHANGES)
    return strata


def _layer_digests(strata: Strata, name: str) -> list[str]:
    return json.loads(strata("inspect", "-f", "{{json .RootFS.Layers}}", name).stdout)


def test_commit_adds_one_layer_with_the_containers_changes(base: Strata) -> None:
    out = base(
        "container",
        "commit",
        "-m",
        "Add stuff",
        "-a",
        "me",
        "-c",
        'CMD ["cat", "/root/hello.txt"]',
        "base",
        "app:1",
    )
    image_id = out.stdout.strip()
    assert image_id.startswith("sha256:")
    assert len(_layer_digests(base, "app:1")) == len(_layer_digests(base, "debian:bookworm")) + 1
    assert base("run", "--rm", "app:1").stdout == "hi\n"
    gone = base("run", "--rm", "app:1", "sh", "-c", "ls /etc/issue /usr/share/doc/apt 2>&1; true")
    assert gone.stdout.count("No such file or directory") == 2
    top = base("history", "app:1").stdout.splitlines()[1]
    assert top.startswith(image_id[7:19]) and top.rstrip().endswith("Add stuff")
    assert "sh -c echo hi > /root/hello.txt" in top
    doc = json.loads(base("inspect", "app:1").stdout)[0]
    assert doc["Author"] == "me" and doc["Comment"] == "Add stuff"
    # The same changes give the same layer: committing again reuses the diff ID.
    base("commit", "base", "app:2")
    assert _layer_digests(base, "app:2")[-1] == _layer_digests(base, "app:1")[-1]
    # Image layers are never modified by a container: the base image's layers are unchanged.
    base("run", "--rm", "debian:bookworm", "ls", "/etc/issue")


def test_diff_lists_added_changed_deleted(base: Strata) -> None:
    lines = base("container", "diff", "base").stdout.splitlines()
    for expected in (
        "A /root/hello.txt",
        "C /root",
        "D /etc/issue",
        "D /usr/share/doc/apt",
        "A /opt/app/x",
    ):
        assert expected in lines
    assert lines == sorted(lines, key=lambda line: line[2:])


def test_export_writes_the_whole_filesystem(base: Strata, tmp_path: Path) -> None:
    out = tmp_path / "fs.tar"
    base("export", "-o", str(out), "base")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert "root/hello.txt" in names and "usr/bin/apt-get" in names
    assert "etc/issue" not in names


def test_bad_commits_leave_nothing_behind(base: Strata) -> None:
    before = store_state(base.root)
    assert "No such container: ghost" in base.fail("commit", "ghost", "x:1")
    assert "RUN is not a valid change command" in base.fail("commit", "-c", "RUN x", "base", "x:1")
    assert "must be lowercase" in base.fail("commit", "base", "X/Y")
    assert store_state(base.root) == before


def test_commit_of_a_running_container_pauses_and_resumes_it(strata: Strata) -> None:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    script = "echo ready > /ready; while true; do date +%s%N >> /ticks; sleep 0.05; done"
    cid = strata(
        "run", "-d", "--name", "busy", "debian:bookworm", "sh", "-c", script
    ).stdout.strip()
    strata("commit", "busy", "busy:1")
    strata("commit", "--no-pause", "busy", "busy:2")
    state = strata("inspect", "-f", "{{.State.Status}}", cid).stdout.strip()
    assert state == "running"  # resumed after the paused commit
    out = strata("run", "--rm", "busy:1", "cat", "/ready").stdout
    assert out == "ready\n"
    # The runtime knows it as running, not paused.
    runc_state = subprocess.run(
        ["runc", "--root", str(strata.root / "runtime" / "runc"), "state", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(runc_state)["status"] == "running"
    strata("rm", "-f", "busy")
