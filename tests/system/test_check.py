"""``strata system check [--repair]`` on real debris: each kind made as a crash or a bit flip
makes it, found (exit 1, one line naming it), repaired, and checked clean again."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)
from tests.system.conftest import assert_clean, check, found, repair, sql

pytestmark = [pytest.mark.root, pytest.mark.peers]

IMAGE = "debian:bookworm"
TAG = "docker.io/library/debian:bookworm"


def _blob(strata: Strata, digest: object) -> Path:
    return Path(strata.root) / "blobs" / "sha256" / str(digest).removeprefix("sha256:")


def _layer_digest(strata: Strata) -> str:
    rows = sql(strata, "SELECT digest FROM layers")
    return str(rows[0][0])


def test_a_store_after_normal_use_checks_clean(
    debian: Strata,
    registry: Registry,  # noqa: F811
    tmp_path: Path,
) -> None:
    assert_clean(debian)
    assert debian("run", "--rm", IMAGE, "true").returncode == 0
    debian("run", "--name", "worked", IMAGE, "sh", "-c", "echo hi > /made")
    debian("commit", "worked", "made:1")
    debian("run", "-d", "--name", "sleeper", IMAGE, "sleep", "100")
    (tmp_path / "Dockerfile").write_text("FROM made:1\nRUN echo built > /built\nCOPY . /ctx\n")
    debian("build", "-q", "-t", "built:1", str(tmp_path))
    assert_clean(debian)  # a running container and its mount are no debris
    ref = f"{registry.address}/system/built:1"
    debian("tag", "built:1", ref)
    debian("push", "-q", ref)
    debian("rmi", ref)
    debian("pull", "-q", ref)
    assert debian("run", "--rm", ref, "cat", "/built").stdout == "built\n"
    assert_clean(debian)
    debian("rm", "-f", "worked", "sleeper")
    debian("rmi", "built:1", "made:1", ref)
    debian("image", "prune", "-f")
    debian("builder", "prune", "-f")
    assert_clean(debian)


def _monitor_of(strata: Strata, name: str) -> int:
    """The process holding the container's owner lock (its monitor)."""
    cid = strata("inspect", "-f", "{{.Id}}", name).stdout.strip()
    lock = str(Path(strata.root) / "containers" / cid / "owner.lock")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                    return int(pid)
            except OSError:
                continue
    raise AssertionError(f"no monitor holds {lock}")


def test_a_killed_monitor_leaves_a_running_record_and_a_mount(debian: Strata) -> None:
    debian("run", "-d", "--name", "orphan", IMAGE, "sleep", "1000")
    pid = int(debian("inspect", "-f", "{{.State.Pid}}", "orphan").stdout)
    monitor = _monitor_of(debian, "orphan")
    os.kill(monitor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    found(debian, "container orphan: recorded as running, but no process runs it", "mount ")
    lines = repair(debian)
    assert "  repaired: orphan: container orphan recorded as exited (255)" in lines
    assert str(debian.root) not in Path("/proc/self/mountinfo").read_text()
    assert debian("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith(
        "orphan Exited (255)"
    )
    debian("rm", "orphan")
    assert_clean(debian)


def test_a_killed_import_leaves_an_ingest(debian: Strata) -> None:
    env = {**os.environ, "STRATA_ROOT": str(debian.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", "import", "-", "half:1"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None
    with open(debian_rootfs_tar(), "rb") as tar:
        proc.stdin.write(tar.read(32 << 20))
        proc.stdin.flush()
    ingest = Path(debian.root) / "ingest"
    deadline = time.monotonic() + 30
    while not any((d / "data").is_file() for d in ingest.iterdir()):
        assert time.monotonic() < deadline, "the import never started writing"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    proc.stdin.close()
    lines = found(debian, "ingest ingest/", f"lease {proc.pid}.")
    assert "and no live writer" in lines[0], lines
    assert f"its owner (process {proc.pid}) has ended, still listing " in lines[1], lines
    repair(debian)
    assert not list(ingest.iterdir())


def test_an_ingest_being_written_is_no_debris(debian: Strata) -> None:
    env = {**os.environ, "STRATA_ROOT": str(debian.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", "import", "-", "slow:1"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None
    try:
        with open(debian_rootfs_tar(), "rb") as tar:
            proc.stdin.write(tar.read(1 << 20))  # not zeros: those end a tar
        proc.stdin.flush()
        ingest = Path(debian.root) / "ingest"
        deadline = time.monotonic() + 30
        while not any((d / "data").is_file() for d in ingest.iterdir()):
            assert time.monotonic() < deadline, "the import never started writing"
            time.sleep(0.05)
        assert_clean(debian)
        assert check(debian, "--repair") == (0, ["no problems found"])
        assert any(ingest.iterdir()), "a live writer's ingest was removed"
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
    repair(debian)


def test_a_deleted_blob_names_the_image_that_needs_it(debian: Strata) -> None:
    layer = _layer_digest(debian)
    saved = _blob(debian, layer).read_bytes()
    _blob(debian, layer).unlink()
    lines = found(debian, f"image {TAG}: layer {layer} missing")
    code, repaired = check(debian, "--repair")
    assert code == 1
    assert f"  not repaired: {TAG}: remove it (strata rmi {TAG}) and pull or load it again" in (
        repaired
    )
    assert lines[-1] == "1 problem found (strata system check --repair fixes what it can)"
    debian("rmi", IMAGE)
    debian("import", str(debian_rootfs_tar()), IMAGE)
    assert _blob(debian, layer).read_bytes() == saved
    assert_clean(debian)


def test_garbage_in_a_blob(debian: Strata) -> None:
    (config,) = sql(debian, "SELECT config_digest FROM images")
    path = _blob(debian, config[0])
    saved = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage" + saved[7:])
    assert check(debian, "--quick") == (0, ["no problems found"])  # sizes only
    found(debian, f"blob blobs/sha256/{str(config[0])[7:]}: corrupt: content hashes to sha256:")
    code, lines = check(debian, "--repair")
    assert code == 1 and f"needed by image {TAG}" in lines[0], lines
    # An unneeded corrupt blob is simply removed.
    stray = _blob(debian, "sha256:" + "ab" * 32)
    stray.write_bytes(b"not what its name says")
    path.write_bytes(saved)
    found(debian, f"blob blobs/sha256/{'ab' * 32}: corrupt")
    repair(debian)
    assert not stray.exists()


def test_stray_directories_under_snapshots(debian: Strata) -> None:
    snapshots = Path(debian.root) / "snapshots"
    (snapshots / "9999" / "fs").mkdir(parents=True)
    (snapshots / "junk").mkdir()
    (snapshots / "new-dead1234").mkdir()  # a half-made snapshot whose maker died (no lock)
    found(
        debian,
        "directory snapshots/9999: no snapshot row names it",
        "directory snapshots/junk: not a snapshot directory",
        "directory snapshots/new-dead1234: left by a command that died",
    )
    repair(debian)
    assert not {"9999", "junk", "new-dead1234"} & set(os.listdir(snapshots))


def test_a_snapshot_row_that_lost_its_directory(debian: Strata) -> None:
    debian("run", "--rm", IMAGE, "true")  # the image's layer is extracted
    ((key, snap_id),) = sql(
        debian, "SELECT key, id FROM snapshots WHERE kind = 'committed' AND key LIKE 'layer%'"
    )
    sql(debian, "UPDATE snapshots SET id = 7777 WHERE key = ?", key)
    found(
        debian,
        f"committed snapshot {key}: its directory snapshots/7777 is gone",
        f"directory snapshots/{snap_id}: no snapshot row names it",
    )
    repair(debian)
    assert debian("run", "--rm", IMAGE, "cat", "/etc/debian_version").stdout.startswith("12")
    assert_clean(debian)


def test_corrupt_rows(debian: Strata) -> None:
    sql(
        debian,
        "INSERT INTO tags (name, manifest_digest, updated) VALUES (?, ?, ?)",
        "docker.io/library/ghost:1",
        "sha256:" + "cd" * 32,
        "2026-12-07T00:00:00Z",
    )
    sql(debian, "INSERT INTO leases (id, created, expires) VALUES ('old', 1, 2)")
    sql(debian, "INSERT INTO lease_resources VALUES ('old', 'blob', 'sha256:x')")
    found(
        debian,
        "database strata.db: row ",
        "of tags points at a row of images that is gone",
        "lease old: expired, still listing 1 resource",
    )
    repair(debian)
    assert sql(debian, "SELECT count(*) FROM tags WHERE name LIKE '%ghost%'") == [(0,)]


def _df(strata: Strata) -> dict[str, list[str]]:
    rows = strata("system", "df").stdout.splitlines()
    assert rows[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    names = [re.split(r"\s{2,}", r)[0] for r in rows[1:]]
    return {name: r[len(name) :].split() for name, r in zip(names, rows[1:], strict=True)}


def test_an_active_snapshot_of_a_dead_command(debian: Strata) -> None:
    from strata.image.root import StoreRoot
    from strata.snapshot.select import default_snapshotter

    # What a `run` killed while it extracted a layer leaves: an active snapshot, half filled.
    with StoreRoot(Path(debian.root)) as root:
        snapshotter = default_snapshotter(root.path, root.db)
        snapshotter.prepare("extract-dead", None)
        (snapshotter.upper("extract-dead") / "half").write_bytes(b"x" * 300_000)
    row = _df(debian)["Unused Snapshots"]
    assert row[:2] == ["1", "1"] and row[2].endswith("kB"), row
    assert_clean(debian)  # a day's grace: it may be a command at work
    sql(debian, "UPDATE snapshots SET created = '2026-01-01T00:00:00.000000Z'"
                " WHERE key = 'extract-dead'")  # fmt: skip
    found(debian, "active snapshot extract-dead: no container uses it and it is ")
    lines = repair(debian)
    assert "  repaired: extract-dead: removed active snapshot extract-dead" in lines
    # Nothing left: the row goes, and the table is Docker's four rows again.
    assert list(_df(debian)) == ["Images", "Containers", "Local Volumes", "Build Cache"]


def test_df_counts_ingests(debian: Strata) -> None:
    ingest = Path(debian.root) / "ingest" / ("ef" * 32)
    ingest.mkdir(parents=True)
    (ingest / "ref").write_text("import-dead")
    (ingest / "lock").write_bytes(b"")
    (ingest / "data").write_bytes(b"y" * 2_000_000)
    row = _df(debian)["Ingests"]
    assert row[:2] == ["1", "0"] and row[2] == row[3] == "2MB" and row[4] == "(100%)", row
    found(debian, f"ingest ingest/{'ef' * 32}: 2MB of import-dead, and no live writer")
    repair(debian)
    assert "Ingests" not in _df(debian)


def _processes_with(text: bytes) -> list[int]:
    """Processes whose command line holds ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if text in Path(f"/proc/{pid}/cmdline").read_bytes() and int(pid) > 1:
                found.append(int(pid))
    return found


def _strata_processes(strata: Strata) -> list[int]:
    """strata's own processes on this store (a build and the guard it forked), by environment."""
    mark = f"STRATA_ROOT={strata.root}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if mark in environ and b"strata" in cmdline and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def test_a_build_killed_with_its_guard_leaves_its_run_container(
    debian: Strata, tmp_path: Path
) -> None:
    token = f"step-{os.getpid()}-{time.monotonic_ns()}"
    (tmp_path / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN sleep 300 # {token}\n")
    env = {**os.environ, "STRATA_ROOT": str(debian.root)}
    build = subprocess.Popen(
        [sys.executable, "-m", "strata", "build", "-q", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not (step := _processes_with(token.encode())):
            assert time.monotonic() < deadline, "the RUN step never started"
            time.sleep(0.1)
        # SIGKILL for the build, its guard and the step's process at once: nobody cleans up.
        for pid in [*_strata_processes(debian), *step]:
            os.kill(pid, signal.SIGKILL)
    finally:
        build.kill()
        build.wait()
    time.sleep(0.3)
    found(debian, "recorded as running, but no process runs it", "mount containers/")
    lines = repair(debian)
    assert any(line.startswith("  repaired: ") and "removed container" in line for line in lines)
    assert sql(debian, "SELECT count(*) FROM containers") == [(0,)]
    assert str(debian.root) not in Path("/proc/self/mountinfo").read_text()


def test_a_truncated_blob_shows_even_with_quick(debian: Strata) -> None:
    (config,) = sql(debian, "SELECT config_digest FROM images")
    path = _blob(debian, config[0])
    saved = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(saved[:-10])
    code, lines = check(debian, "--quick")
    assert code == 1
    assert lines[0] == (
        f"image {TAG}: blob {config[0]} holds {len(saved) - 10} bytes,"
        f" its manifest says {len(saved)}"
    )
    path.write_bytes(saved)
    assert_clean(debian)


def test_a_container_directory_without_a_record(debian: Strata) -> None:
    stray = Path(debian.root) / "containers" / ("0f" * 32)
    (stray / "rootfs").mkdir(parents=True)
    (stray / "config.json").write_text("{}")
    found(debian, f"directory containers/{'0f' * 32}: no container record names it")
    repair(debian)
    assert not stray.exists()


def test_a_killed_pull(
    debian: Strata,
    registry: Registry,  # noqa: F811
) -> None:
    ref = f"{registry.address}/system/killed:1"
    debian("tag", IMAGE, ref)
    debian("push", "-q", ref)
    debian("rmi", ref)
    debian("rmi", IMAGE)  # nothing of the image left here: the pull must fetch its layer
    env = {**os.environ, "STRATA_ROOT": str(debian.root)}
    pull = subprocess.Popen(
        [sys.executable, "-m", "strata", "pull", "-q", ref],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    ingest = Path(debian.root) / "ingest"
    deadline = time.monotonic() + 60
    while not any(
        (d / "data").is_file() and (d / "data").stat().st_size > 1 << 20 for d in ingest.iterdir()
    ):
        assert pull.poll() is None, "the pull ended before it could be killed"
        assert time.monotonic() < deadline, "the pull never started writing"
        time.sleep(0.01)
    pull.kill()
    pull.wait()
    found(debian, "ingest ingest/", f"lease {pull.pid}.")
    repair(debian)
    debian("pull", "-q", ref)
    debian("tag", ref, IMAGE)
    assert debian("run", "--rm", ref, "cat", "/etc/debian_version").stdout.startswith("12")
    debian("rmi", ref)
    assert_clean(debian)


def _mounts_under(root: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(f"{root}/")]


def _killed_diff(debian: Strata, name: str) -> tuple[int, Path]:
    """Run ``diff`` of a container that changed 300 MB and kill it once its view is mounted:
    its pid and the store's real root."""
    debian("run", "--name", name, IMAGE, "sh", "-c", "head -c 300000000 /dev/zero > /big")
    env = {**os.environ, "STRATA_ROOT": str(debian.root)}
    diff = subprocess.Popen(
        [sys.executable, "-m", "strata", "diff", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    root = Path(os.path.realpath(debian.root))
    deadline = time.monotonic() + 60
    while not any("/tmp/view-" in p for p in _mounts_under(root)):
        assert diff.poll() is None, "the diff ended before it could be killed"
        assert time.monotonic() < deadline, "the diff never mounted its view"
        time.sleep(0.005)
    diff.kill()
    diff.wait()
    return diff.pid, root


def test_a_killed_diff_leaves_a_scratch_mount_and_view(debian: Strata) -> None:
    # `diff` mounts the image's filesystem on tmp/view-<its pid>...: killed there, it leaves the
    # mount, the directory and the view snapshot, each named by the process that died.
    pid, root = _killed_diff(debian, "diffed")
    lines = found(
        debian,
        f"mount tmp/view-{pid}.",
        f"scratch tmp/view-{pid}.",
        f"view snapshot view-{pid}.",
        f"(process {pid}) has ended",
    )
    assert not [line for line in lines[:-1] if not line.startswith(("mount ", "scratch ", "view "))]
    repair(debian)
    assert _mounts_under(root) == []
    assert list((root / "tmp").iterdir()) == []
    debian("rm", "diffed")
    assert_clean(debian)


def test_the_next_writer_removes_a_dead_commands_scratch(debian: Strata) -> None:
    _, root = _killed_diff(debian, "diffed2")
    debian("rm", "diffed2")  # a command on the same path: it cleans up first
    assert _mounts_under(root) == []
    assert list((root / "tmp").iterdir()) == []
    assert_clean(debian)


def test_old_scratch_that_names_no_owner(debian: Strata) -> None:
    # What an older strata left in tmp/ (its names carried no owner): debris once a day old.
    tmp = Path(debian.root) / "tmp"
    old, fresh = tmp / "tmpq1w2e3r4", tmp / "tmpfresh01"
    for path in (old, fresh):
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "file").write_bytes(b"x" * 1000)
    assert_clean(debian)  # a day's grace: it may be an older command at work
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    found(debian, "scratch tmp/tmpq1w2e3r4: scratch that names no owner, 48 hours old")
    repair(debian)
    assert not old.exists() and fresh.exists()
    shutil.rmtree(fresh)


def _half_removed(debian: Strata, name: str) -> None:
    """What an rm, or a run --rm's autoremove, killed inside its removal leaves: the record,
    its snapshot gone."""
    from strata.image.root import StoreRoot
    from strata.runtime.lifecycle import Containers

    debian("create", "--name", name, IMAGE, "true")
    with StoreRoot(Path(debian.root)) as root:
        service = Containers(root)
        record = service.records.lookup(name)
        assert record is not None
        service.snapshotter.remove(record.snapshot)


def test_the_next_rm_finishes_a_removal_killed_halfway(debian: Strata) -> None:
    _half_removed(debian, "half")
    found(debian, "container half: its filesystem (snapshot container-")
    debian("create", "--name", "other", IMAGE, "true")
    debian("rm", "other")  # an rm of another container finishes it first
    assert debian("ps", "-a", "-q").stdout == ""
    assert_clean(debian)


def test_the_next_run_finishes_a_removal_killed_halfway(debian: Strata) -> None:
    # Found by the kill suite: a run --rm killed inside its autoremove.
    _half_removed(debian, "half2")
    debian("run", "--rm", IMAGE, "true")  # the next run finishes it first
    assert debian("ps", "-a", "-q").stdout == ""
    assert_clean(debian)


def test_the_next_rm_finishes_a_removal_killed_inside_the_snapshots_rename(
    debian: Strata,
) -> None:
    # Found by the kill suite: an rm killed after its snapshot's directory went to the trash
    # (``rm-<id>-*``) but before the snapshot's row went. The next rm must leave nothing.
    from strata.image.root import StoreRoot
    from strata.runtime.lifecycle import Containers

    debian("create", "--name", "torn", IMAGE, "true")
    with StoreRoot(Path(debian.root)) as root:
        record = Containers(root).records.lookup("torn")
        assert record is not None
        home = Containers(root).snapshotter.upper(record.snapshot).parent
    home.rename(home.with_name(f"rm-{home.name}-dead0001"))
    found(debian, f"its directory snapshots/{home.name} is gone")
    debian("rm", "torn")
    assert debian("ps", "-a", "-q").stdout == ""
    assert_clean(debian)


def test_the_next_create_clears_a_snapshot_a_killed_create_half_made(debian: Strata) -> None:
    # Found by the kill suite: a create killed while its snapshot was being made leaves an
    # unlocked ``new-*`` directory; the next create (no container exists) must clear it.
    debian("create", "--name", "before", IMAGE, "true")  # the snapshots directory exists
    debian("rm", "before")
    snapshots = Path(debian.root) / "snapshots"
    (snapshots / "new-dead0002").mkdir()
    found(debian, "directory snapshots/new-dead0002: left by a command that died")
    debian("create", "--name", "after", IMAGE, "true")
    assert_clean(debian)
    debian("rm", "after")
