"""Volumes in containers, end to end with real runc (and the chroot backend) on overlayfs: named
volumes persist across containers, an empty volume takes the image's content, anonymous volumes
come from ``-v /path`` and the image's VOLUME, ``--mount``, ``--tmpfs``, ``--volumes-from``,
read-only mounts, ``rm -v`` and ``run --rm``; and a refused run leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar, store_state

pytestmark = [pytest.mark.root, pytest.mark.peers]

IMAGE = "debian:bookworm"
RUNTIMES = ["runc", "chroot"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    """One store with the Debian image and one with a VOLUME, for the whole module."""
    strata = Strata(tmp_path_factory.mktemp("volumes") / "store")
    strata("import", str(debian_rootfs_tar()), IMAGE)
    strata("import", "-c", "VOLUME /etc/apt", str(debian_rootfs_tar()), "withvolume:1")
    return strata


@pytest.fixture(autouse=True)
def clean(store: Strata) -> None:
    yield
    store("rm", "-fv", *store("ps", "-aq").stdout.split(), check=False)
    store("volume", "prune", "-f")


def volumes(strata: Strata) -> list[str]:
    return strata("volume", "ls", "-q").stdout.split()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_named_volume_persists_and_is_copied_up(store: Strata, runtime: str) -> None:
    run = ("run", "--rm", "--runtime", runtime)
    # First use of an empty volume: the image's /etc/apt is copied in, owner and modes kept.
    out = store(*run, "-v", "apt:/etc/apt", IMAGE, "stat", "-c", "%a %U", "/etc/apt/sources.list")
    assert out.stdout == "644 root\n"
    data = store.root / "volumes" / "apt" / "_data"
    assert (data / "sources.list").is_file()
    store(*run, "-v", "apt:/etc/apt", IMAGE, "sh", "-c", "echo kept > /etc/apt/mine")
    assert store(*run, "-v", "apt:/x", IMAGE, "cat", "/x/mine").stdout == "kept\n"
    # A volume that is not empty is not copied into again; nocopy skips even an empty one.
    store("volume", "create", "empty")
    spec = "type=volume,source=empty,target=/etc/apt,volume-nocopy"
    assert store(*run, "--mount", spec, IMAGE, "ls", "-A", "/etc/apt").stdout == ""
    assert sorted(volumes(store)) == ["apt", "empty"]  # named volumes stay after --rm


def test_copy_up_keeps_owner_mode_and_xattrs(store: Strata) -> None:
    script = (
        "mkdir -p /srv/d && chown 1:2 /srv/d && chmod 0710 /srv/d && echo x > /srv/d/f"
        " && setfattr -n user.k -v v /srv/d/f 2>/dev/null; ln -s /etc/passwd /srv/link; true"
    )
    store("run", "--name", "src", IMAGE, "sh", "-c", script)
    store("commit", "src", "copyup:1")
    store("run", "--rm", "-v", "cu:/srv", "copyup:1", "true")
    data = store.root / "volumes" / "cu" / "_data"
    info = os.stat(data / "d")
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (1, 2, 0o710)
    assert os.readlink(data / "link") == "/etc/passwd"  # a symlink is copied, never followed
    with contextlib.suppress(OSError):  # the layer could not keep user xattrs on this filesystem
        assert os.getxattr(data / "d" / "f", "user.k") == b"v"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tmpfs_readonly_and_anonymous(store: Strata, runtime: str) -> None:
    script = (
        "grep -E ' /(t1|t2) ' /proc/mounts | cut -d' ' -f1-3 | sort; stat -c %a /t2;"
        " touch /ro/x 2>/dev/null && echo writable || echo read-only"
    )
    out = store(
        "run", "--rm", "--runtime", runtime, "--tmpfs", "/t1", "--mount",
        "type=tmpfs,target=/t2,tmpfs-mode=0700", "-v", "rov:/ro:ro", "-v", "/anon",
        IMAGE, "sh", "-c", script,
    ).stdout.splitlines()  # fmt: skip
    assert out == ["tmpfs /t1 tmpfs", "tmpfs /t2 tmpfs", "700", "read-only"]
    assert volumes(store) == ["rov"]  # the anonymous one went with --rm


def test_image_volume_rm_v_and_volumes_from(store: Strata) -> None:
    cid = store("run", "-d", "--name", "holder", "withvolume:1", "sleep", "300").stdout.strip()
    [doc] = json.loads(store("inspect", "holder").stdout)
    [mount] = doc["Mounts"]
    assert doc["Config"]["Volumes"] == {"/etc/apt": {}}
    assert mount["Type"] == "volume" and mount["Destination"] == "/etc/apt"
    assert (mount["Mode"], mount["RW"], mount["Driver"]) == ("", True, "local")
    anonymous = mount["Name"]
    assert Path(mount["Source"]) == store.root / "volumes" / anonymous / "_data"
    assert (Path(mount["Source"]) / "sources.list").is_file()  # copied up from the image
    message = store.fail("volume", "rm", anonymous)
    assert message == f"Error: remove {anonymous}: volume is in use - [{cid}]"
    store("exec", "holder", "sh", "-c", "echo shared > /etc/apt/s")
    out = store("run", "--name", "reader", "--volumes-from", "holder:ro", IMAGE, "sh", "-c",
                "cat /etc/apt/s; touch /etc/apt/t 2>/dev/null || echo read-only")  # fmt: skip
    assert out.stdout == "shared\nread-only\n"
    [reader] = json.loads(store("inspect", "reader").stdout)
    assert reader["HostConfig"]["VolumesFrom"] == ["holder:ro"]
    assert [(m["Name"], m["RW"], m["Mode"]) for m in reader["Mounts"]] == [(anonymous, False, "")]
    # rm -v of the holder: its anonymous volume stays while the reader uses it.
    store("rm", "-fv", "holder")
    assert volumes(store) == [anonymous]
    store("rm", "-v", "reader")
    assert volumes(store) == []


def test_refused_runs_leave_nothing(store: Strata) -> None:
    store("volume", "ls")
    before = store_state(store.root)
    cases = {
        ("-v", "fresh:/x", "--volumes-from", "nope"): "Error: No such container: nope",
        ("-v", "fresh:/x", "--mount", "type=foo,target=/y"):
            'Error: invalid mount config for type "foo": mount type unknown',
        ("--mount", "type=volume"):
            'Error: invalid argument "type=volume" for "--mount" flag: target is required',
        ("--mount", "type=bind,source=/nonexistent-vol,target=/x"):
            'Error: invalid mount config for type "bind": bind source path does not exist:'
            " /nonexistent-vol",
        ("--mount", "target=/x,foo=1"):
            """Error: invalid argument "target=/x,foo=1" for "--mount" flag: unexpected key"""
            " 'foo' in 'foo=1'",
        ("-v", "v1:/x:zz"): "Error: invalid mode: zz",
        ("--tmpfs", "rel"): "Error: invalid mount path: 'rel' mount path must be absolute",
        ("-v", "/tmp:/x", "-v", "v9:/x"): "Error: Duplicate mount point: /x",
    }  # fmt: skip
    for args, message in cases.items():
        assert store.fail("run", "--rm", *args, IMAGE, "true") == message
    assert store_state(store.root) == before
    store("run", "--name", "dup", IMAGE, "true")
    before = store_state(store.root)
    assert "is already in use" in store.fail("run", "--name", "dup", "-v", "n2:/x", IMAGE, "true")
    assert store_state(store.root) == before
    assert not (store.root / "volumes" / "n2").exists()


def test_volume_rm_racing_runs_never_takes_a_volume_in_use(store: Strata) -> None:
    """``volume rm -f`` against runs that make and use the same volume: each run either made
    it (and finds its mark) or failed cleanly; the store checks clean after."""
    import subprocess
    import sys

    env = {**os.environ, "STRATA_ROOT": str(store.root)}
    for round_ in range(4):
        run = subprocess.Popen(
            [sys.executable, "-m", "strata", "run", "--rm", "-v", "race:/x", IMAGE, "sh", "-c",
             f"echo {round_} > /x/mark; cat /x/mark"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        removals = [store("volume", "rm", "-f", "race", check=False) for _ in range(3)]
        out, err = run.communicate(timeout=120)
        assert "Traceback" not in err
        assert run.returncode == 0, err
        assert out == f"{round_}\n"
        for removal in removals:
            assert removal.returncode == 0 or "volume is in use" in removal.stderr
    store("volume", "rm", "-f", "race")
    check = store("system", "check", check=False)
    assert check.stdout == "no problems found\n", check.stdout


def test_cp_with_a_stopped_container_goes_through_its_volumes_and_binds(
    store: Strata, tmp_path: Path
) -> None:
    """As Docker: a copy into or out of a stopped container's volume path reaches the volume
    (and a bind's host directory), not the container's own layer under it."""
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    store("run", "--name", "cpvol", "-v", "cpdata:/data", "-v", f"{host_dir}:/bound",
          "-v", "cpro:/ro:ro", IMAGE, "true")  # fmt: skip
    src = tmp_path / "note.txt"
    src.write_text("through the volume\n")
    store("cp", str(src), "cpvol:/data/note.txt")
    store("cp", str(src), "cpvol:/bound/note.txt")
    mountpoint = json.loads(store("volume", "inspect", "cpdata").stdout)[0]["Mountpoint"]
    assert (Path(mountpoint) / "note.txt").read_text() == "through the volume\n"
    assert (host_dir / "note.txt").read_text() == "through the volume\n"
    out = store("run", "--rm", "-v", "cpdata:/d", IMAGE, "cat", "/d/note.txt").stdout
    assert out == "through the volume\n"
    store("cp", "cpvol:/data/note.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "through the volume\n"
    refused = store("cp", str(src), "cpvol:/ro/note.txt", check=False)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1
    # Nothing stays mounted once the copies are done, and the layer has no copy of its own.
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    assert [line for line in mountinfo if str(store.root / "tmp") in line] == []
    diff = store("diff", "cpvol").stdout
    assert "/data/note.txt" not in diff and "/bound/note.txt" not in diff
    store("rm", "cpvol")
    store("volume", "rm", "cpdata", "cpro")


def test_the_next_run_clears_a_killed_creates_volume_directory(store: Strata) -> None:
    volumes_dir = store.root / "volumes"
    (volumes_dir / "0123abcd" / "_data").mkdir(parents=True)  # made, never recorded
    (volumes_dir / ".removing-00").mkdir()  # a removal killed after its commit
    store("run", "--rm", IMAGE, "true")
    assert not (volumes_dir / "0123abcd").exists()
    assert not (volumes_dir / ".removing-00").exists()
    assert store("system", "check").stdout == "no problems found\n"
