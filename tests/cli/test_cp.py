"""``strata cp`` end to end: Docker's naming rules both ways, tar streams, stopped containers,
and symlinks in the container (or in a tar) that aim outside: they resolve inside its root."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.cli.test_containers import IMAGE, assert_nothing_left, mounts_under
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]

SETUP = (
    "mkdir -p /d/sub && echo hi > /d/f && echo x > /d/sub/g && ln -s /etc /d/etclink"
    " && ln -s f /d/flink && chown 1000:1000 /d/f && ln -s ../../../../../../etc /rel"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "cp", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)
    assert_nothing_left(store)


def listing(data: bytes) -> list[str]:
    """A tar's members as ``name type mode uid/gid size -> link``, times left out."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [
            f"{m.name} {m.type.decode()} {m.mode & 0o7777:o} {m.uid}/{m.gid} {m.size}"
            + (f" -> {m.linkname}" if m.linkname else "")
            for m in tar.getmembers()
        ]


def tree(path: Path) -> list[str]:
    """Every entry under ``path`` as ``relative kind uid/gid [-> link]``."""
    found = []
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
        link = f" -> {os.readlink(p)}" if p.is_symlink() else ""
        found.append(f"{p.relative_to(path)} {kind} {st.st_uid}/{st.st_gid}{link}")
    return found


def host_tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a\n")
    (src / "sub" / "b").write_text("b\n")
    for p in (src, src / "a", src / "sub", src / "sub" / "b"):
        os.chown(p, 1234, 5678)
    (src / "hostlink").symlink_to("/etc")
    return src


def test_cp_out_follows_dockers_rules(strata: Strata, tmp_path: Path) -> None:
    strata("run", "-d", "--name", "c1", IMAGE, "sh", "-c", SETUP + " && sleep 1000")
    strata("exec", "c1", "true")
    _wait_for(strata, "c1", "/d/sub/g")
    strata("cp", "c1:/d", str(tmp_path / "out1"))
    assert tree(tmp_path / "out1") == [
        "etclink l 0/0 -> /etc",
        "f f 0/0",  # owned by the caller, as Docker's client extracts it
        "flink l 0/0 -> f",
        "sub d 0/0",
        "sub/g f 0/0",
    ]
    (tmp_path / "ex").mkdir()
    strata("cp", "c1:/d", str(tmp_path / "ex"))  # into an existing directory: ex/d
    strata("cp", "c1:/d/.", str(tmp_path / "ex") + "/")  # its contents: ex/f, ...
    names = [line.split()[0] for line in tree(tmp_path / "ex")]
    assert "d/sub/g" in names and "sub/g" in names and "f" in names
    strata("cp", "c1:/d/flink", str(tmp_path / "l1"))
    assert (tmp_path / "l1").is_symlink()
    strata("cp", "-L", "c1:/d/flink", str(tmp_path / "l2"))
    assert (tmp_path / "l2").read_text() == "hi\n"
    # A trailing slash follows the link, inside the container: its /etc, not the host's.
    strata("cp", "c1:/d/etclink/", str(tmp_path / "e2"))
    assert (tmp_path / "e2" / "debian_version").read_text().startswith("12")
    strata("cp", "c1:/rel/hostname", str(tmp_path / "hn"))  # ../../.. stops at its root
    hostname = strata("exec", "c1", "cat", "/etc/hostname").stdout
    assert (tmp_path / "hn").read_text() == hostname

    out = subprocess.run(
        [*_argv(strata), "cp", "c1:/d", "-"], capture_output=True, env=_env(strata), check=True
    ).stdout
    assert listing(out) == [
        "d 5 755 0/0 0",
        "d/etclink 2 777 0/0 0 -> /etc",
        "d/f 0 644 1000/1000 3",  # the stream keeps the ids
        "d/flink 2 777 0/0 0 -> f",
        "d/sub 5 755 0/0 0",
        "d/sub/g 0 644 0/0 2",
    ]
    contents = subprocess.run(
        [*_argv(strata), "cp", "c1:/d/.", "-"], capture_output=True, env=_env(strata), check=True
    ).stdout
    assert [line.split()[0] for line in listing(contents)][:2] == [".", "./etclink"]

    (tmp_path / "afile").touch()
    assert strata.fail("cp", "c1:/nonexist", str(tmp_path / "x")) == (
        "Error: Could not find the file /nonexist in container c1"
    )
    assert strata.fail("cp", "nothere:/d", str(tmp_path / "x")) == (
        "Error: No such container: nothere"
    )
    assert strata.fail("cp", "c1:/d/f", str(tmp_path / "nodir") + "/") == (
        "Error: no such directory"
    )
    assert strata.fail("cp", "c1:/d", str(tmp_path / "afile")) == "Error: cannot copy directory"
    assert strata.fail("cp", "c1:/d/f", "/nope/x") == (
        'Error: invalid output path: directory "/nope" does not exist'
    )
    assert strata.fail("cp", "a", "b") == "Error: must specify at least one container source"
    assert strata.fail("cp", "c1:/a", "c1:/b") == (
        "Error: copying between containers is not supported"
    )
    strata("rm", "-f", "c1")


def test_cp_in_follows_dockers_rules(strata: Strata, tmp_path: Path) -> None:
    src = host_tree(tmp_path)
    strata("run", "-d", "--name", "c2", IMAGE, "sh", "-c", SETUP + " && sleep 1000")
    _wait_for(strata, "c2", "/d/sub/g")
    strata("cp", str(src), "c2:/in1")
    strata("cp", str(src), "c2:/in1")  # exists now: /in1/src
    strata("cp", f"{src}/.", "c2:/d/sub")
    strata("cp", f"{src}/a", "c2:/newfile")
    strata("cp", f"{src}/a", "c2:relative")  # relative to the container's root
    listed = strata("exec", "c2", "sh", "-c", "cd / && find in1 d/sub -printf '%p %U/%G\\n'")
    assert sorted(listed.stdout.splitlines()) == [
        "d/sub 0/0",  # the destination itself stays as it was, as Docker leaves it
        "d/sub/a 1234/5678",
        "d/sub/g 0/0",
        "d/sub/hostlink 0/0",
        "d/sub/sub 1234/5678",
        "d/sub/sub/b 1234/5678",
        "in1 1234/5678",  # Docker 20.10 keeps the ids as root, -a or not
        "in1/a 1234/5678",
        "in1/hostlink 0/0",
        "in1/src 1234/5678",
        "in1/src/a 1234/5678",
        "in1/src/hostlink 0/0",
        "in1/src/sub 1234/5678",
        "in1/src/sub/b 1234/5678",
        "in1/sub 1234/5678",
        "in1/sub/b 1234/5678",
    ]
    assert strata("exec", "c2", "cat", "/newfile", "/relative").stdout == "a\na\n"
    tar = subprocess.run(
        ["tar", "cf", "-", "-C", str(src), "."], capture_output=True, check=False
    ).stdout
    assert strata("cp", "-", "c2:/tarin", input=tar, check=False).stderr == (
        'Error: destination "c2:/tarin" must be a directory\n'
    )
    strata("exec", "c2", "mkdir", "/tarin")
    strata("cp", "-", "c2:/tarin", input=tar)
    assert strata("exec", "c2", "cat", "/tarin/sub/b").stdout == "b\n"
    assert strata.fail("cp", f"{src}/a", "c2:/nodir/x") == (
        "Error: Could not find the file /nodir in container c2"
    )
    assert strata.fail("cp", f"{src}/a", "c2:/nodir/") == "Error: no such directory"
    assert strata.fail("cp", str(src), "c2:/d/f") == "Error: cannot copy directory"
    assert strata.fail("cp", str(tmp_path / "nothere"), "c2:/x") == (
        f"Error: lstat {tmp_path}/nothere: no such file or directory"
    )
    bad = strata("cp", "-", "c2:/tarin", input=b"notatar\n", check=False)
    assert bad.returncode == 1 and "not a tar archive" in bad.stderr
    strata("rm", "-f", "c2")


def test_cp_in_through_hostile_links_stays_inside(strata: Strata, tmp_path: Path) -> None:
    """Links in the container aimed at the host's directories, and a tar that plants a link
    and then writes through it, or climbs with ``..``: all of it lands inside the container."""
    marker = tmp_path / "host"
    marker.mkdir()
    script = f"ln -s {marker} /abs && ln -s ../../../../..{marker} /rel && sleep 1000"
    strata("run", "-d", "--name", "c3", IMAGE, "sh", "-c", script)
    _wait_for(strata, "c3", "/rel", "-L")
    (tmp_path / "evil").write_text("evil\n")
    # The links name directories the container lacks: the copy fails, the host's is untouched.
    strata.fail("cp", str(tmp_path / "evil"), "c3:/abs/")
    assert strata.fail("cp", str(tmp_path / "evil"), "c3:/rel/x").startswith(
        "Error: Could not find the file"
    )
    strata("exec", "c3", "mkdir", "-p", str(marker), "/in")
    strata("cp", str(tmp_path / "evil"), "c3:/abs/")  # now the container's own directory
    assert strata("exec", "c3", "cat", f"{marker}/evil").stdout == "evil\n"

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("x")
        link.type, link.linkname = tarfile.SYMTYPE, str(marker)
        tar.addfile(link)
        for name in ("x/through", "../../../../climb", f"/{marker.relative_to('/')}/abs"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"evil\n"))
    strata("cp", "-", "c3:/in", input=buf.getvalue())
    assert sorted(os.listdir(marker)) == []  # the host's directory saw nothing
    assert not Path("/climb").exists()
    found = strata("exec", "c3", "sh", "-c", "cd /in && find . | sort").stdout.split()
    assert "./climb" in found and "./x" in found
    strata("rm", "-f", "c3")


def test_cp_stopped_container(strata: Strata, tmp_path: Path) -> None:
    src = host_tree(tmp_path)
    strata("create", "--name", "c4", IMAGE, "cat", "/in/a")
    strata("cp", str(src), "c4:/in")  # into a container never started: its snapshot
    assert not mounts_under(strata.root)
    start = strata("start", "-a", "c4")
    assert start.stdout == "a\n"
    strata("cp", "c4:/in/sub/b", str(tmp_path / "b"))  # exited
    assert (tmp_path / "b").read_text() == "b\n"
    assert not mounts_under(strata.root)
    strata("rm", "c4")


def _argv(strata: Strata) -> list[str]:
    import sys

    return [sys.executable, "-m", "strata"]


def _env(strata: Strata) -> dict[str, str]:
    return {**os.environ, "STRATA_ROOT": str(strata.root)}


def _wait_for(strata: Strata, name: str, path: str, test: str = "-e") -> None:
    from tests.cli.test_containers import wait_until

    wait_until(
        lambda: strata("exec", name, "test", test, path, check=False).returncode == 0, timeout=300
    )


def _docker_listing(docker: Docker, *args: str) -> list[str]:
    out = subprocess.run(["docker", *args], capture_output=True, env=docker.env, check=True).stdout
    return listing(out)


def test_cp_streams_and_errors_match_docker(strata: Strata, docker: Docker, tmp_path: Path) -> None:
    """The same copies on Docker and strata: tar listings (times aside), errors, statuses."""
    docker("rm", "-f", "strata-cp-peer", check=False)
    docker("run", "-d", "--name", "strata-cp-peer", "--network", "host", IMAGE, "sh", "-c",
           SETUP + " && sleep 1000")  # fmt: skip
    strata("run", "-d", "--name", "strata-cp-peer", IMAGE, "sh", "-c", SETUP + " && sleep 1000")
    try:
        _wait_for(strata, "strata-cp-peer", "/rel", "-L")
        docker("exec", "strata-cp-peer", "true")
        for source in ("/d", "/d/.", "/d/f", "/d/flink", "/d/sub/"):
            ours = subprocess.run(
                [*_argv(strata), "cp", f"strata-cp-peer:{source}", "-"],
                capture_output=True, env=_env(strata), check=True,
            ).stdout  # fmt: skip
            assert listing(ours) == _docker_listing(
                docker, "cp", f"strata-cp-peer:{source}", "-"
            ), source
        (tmp_path / "afile").touch()
        for args in (
            ("strata-cp-peer:/nonexist", str(tmp_path / "x")),
            ("strata-cp-peer:/d", str(tmp_path / "afile")),
            ("strata-cp-peer:/d/f", str(tmp_path / "nodir") + "/"),
            ("strata-cp-peer:/d/f", "/nope/x"),
            (str(tmp_path / "afile"), "strata-cp-peer:/nodir/x"),
            ("a", "b"),
        ):
            theirs = docker("cp", *args, check=False)
            mine = strata("cp", *args, check=False)
            assert mine.returncode == theirs.returncode, args
            message = theirs.stderr.strip().removeprefix("Error response from daemon: ")
            assert mine.stderr.strip() == f"Error: {message.removeprefix('Error: ')}", args
    finally:
        docker("rm", "-f", "strata-cp-peer", check=False)
        strata("rm", "-f", "strata-cp-peer", check=False)
