"""A full disk is survivable (issue 10), on a real small tmpfs holding the store.

Each writing command is run out of space: ``import`` and ``load`` of an input bigger than the
space left, ``pull`` of a big image from a real registry, ``commit`` of a container that wrote a
big file, and a ``build`` whose ``RUN`` fills the disk (or whose layer does not fit). Each must
fail with one ``Error:`` line naming what it was writing (and how much more space it needed, where
that is known), never blaming ``strata.db``; then ``system check`` finds nothing left behind;
``system df``, ``images``, ``image prune`` work while the disk is still full; and once the space
is freed the same command succeeds. A disk full before a command starts still lets the read
commands run and ``rmi``/``prune`` free space (see `strata.store.space` for how).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.errors import NoSpace
from strata.store.db import Database
from strata.store.space import RESERVE_SIZE
from tests.conftest import Strata
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)
from tests.system.conftest import check

# Everything but the CLI's error mapping needs root, to mount the tmpfs.
root = pytest.mark.root

MB = 1_000_000
DISK = "64m"
BIG = 24 * MB  # the big input: more than the space a test leaves, less than the whole disk
NO_SPACE = "no space left on device"


# -- inputs, made once on the real disk -------------------------------------------------------


def _tiny_rootfs(where: Path) -> Path:
    """A rootfs of a few MB with sh, dd, rm and cat (the host's, with the C library)."""
    root = where / "tiny"
    for name in ("bin", "tmp", "etc", "proc", "sys", "dev"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for tool, dest in (("dash", "sh"), ("dd", "dd"), ("rm", "rm"), ("cat", "cat")):
        found = shutil.which(tool) or pytest.skip(f"needs {tool}")
        shutil.copy2(found, root / "bin" / dest)
    for lib in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        if not os.path.exists(lib):
            pytest.skip("needs an x86_64 glibc host for the tiny rootfs")
        (root / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, root / lib.lstrip("/"))
    tar = where / "tiny.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    return tar


@dataclass(frozen=True)
class Inputs:
    tiny: Path  # a rootfs tar of a few MB
    big: Path  # a rootfs tar holding one BIG-byte file of random bytes
    archive: Path  # the big image as a docker-archive (``strata save``)
    store: Strata  # a store on the real disk holding the big image as ``big:1``


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    where = tmp_path_factory.mktemp("diskfull-inputs")
    tiny = _tiny_rootfs(where)
    content = where / "content"
    content.mkdir()
    (content / "big.bin").write_bytes(os.urandom(BIG))  # random: compression cannot shrink it
    big = where / "big.tar"
    subprocess.run(["tar", "-C", str(content), "-cf", str(big), "big.bin"], check=True)
    store = Strata(where / "store")
    store("import", str(big), "big:1")
    archive = where / "big-archive.tar"
    store("save", "-o", str(archive), "big:1")
    return Inputs(tiny, big, archive, store)


# -- the small disk ---------------------------------------------------------------------------


@dataclass
class Disk:
    """A tmpfs of `DISK` with the store in it, and filler files to take its space away."""

    path: Path
    st: Strata

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def leave(self, free: int) -> None:
        """Take space away with a filler file until only ``free`` bytes are left."""
        take = self.free() - free
        assert take > 0, f"only {self.free()} bytes free, cannot leave {free}"
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.posix_fallocate(fd, os.fstat(fd).st_size, take)
        finally:
            os.close(fd)

    def fill(self) -> None:
        """Take every last byte: a second filler written until the disk refuses."""
        fd = os.open(self.path / "filler-rest", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 4096):
                block = b"\0" * chunk
                try:
                    while True:
                        os.write(fd, block)
                except OSError as err:
                    assert err.errno == 28, err
        finally:
            os.close(fd)
        assert self.free() == 0

    def unfill(self) -> None:
        for name in ("filler", "filler-rest"):
            (self.path / name).unlink(missing_ok=True)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(path)], check=True)
    d = Disk(path, Strata(path / "store"))
    try:
        yield d
    finally:
        d.unfill()
        ids = d.st("ps", "-aq", check=False).stdout.split()
        if ids:
            d.st("rm", "-f", *ids, check=False)
        for point in sorted(_mounts_under(path), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


# -- what every case checks -------------------------------------------------------------------


def out_of_space(st: Strata, *args: str, naming: str, needs: bool = True) -> str:
    """Run a command that must fail for want of space: one line naming what it was writing
    (and the space it needed, with ``needs``), not blaming the database."""
    line = st.fail(*args)
    assert NO_SPACE in line, line
    assert naming in line, (naming, line)
    assert "strata.db" not in line, line
    if needs:
        assert "MB more)" in line, line
    return line


def nothing_left(d: Disk) -> None:
    """``system check`` finds no debris: no ingest, lease, active snapshot, mount, container."""
    code, lines = check(d.st)
    assert (code, lines) == (0, ["no problems found"]), lines
    assert not list((d.st.root / "ingest").iterdir())
    assert _mounts_under(d.path) == [str(d.path)]


def works_while_full(d: Disk) -> None:
    """With not one byte free: the read commands, ``system df`` and ``image prune`` work."""
    d.fill()
    for args in (("images",), ("ps", "-a"), ("system", "df"), ("image", "prune", "-f")):
        proc = d.st(*args, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
    assert check(d.st) == (0, ["no problems found"])
    d.unfill()


# -- the commands, each run out of space ------------------------------------------------------


@root
def test_import_bigger_than_the_space_left(disk: Disk, inputs: Inputs) -> None:
    disk.leave(BIG // 2)
    out_of_space(
        disk.st, "import", str(inputs.big), "big:1", naming=f"writing the layer of {inputs.big}"
    )
    nothing_left(disk)
    works_while_full(disk)
    disk.unfill()
    disk.st("import", str(inputs.big), "big:1")
    nothing_left(disk)


@root
def test_load_bigger_than_the_space_left(disk: Disk, inputs: Inputs) -> None:
    disk.leave(BIG // 2)
    out_of_space(
        disk.st, "load", "-i", str(inputs.archive), naming=f"loading {inputs.archive}: writing"
    )
    nothing_left(disk)
    works_while_full(disk)
    disk.unfill()
    assert "Loaded image: big:1" in disk.st("load", "-i", str(inputs.archive)).stdout
    nothing_left(disk)


@root
@pytest.mark.peers
def test_pull_bigger_than_the_space_left(
    disk: Disk,
    inputs: Inputs,
    registry: Registry,  # noqa: F811 (the fixture)
) -> None:
    name = f"{registry.address}/diskfull/big:1"
    inputs.store("tag", "big:1", name)
    inputs.store("push", name)
    disk.leave(BIG // 2)
    line = out_of_space(disk.st, "pull", name, naming="writing blob sha256:")
    assert name in line
    nothing_left(disk)
    works_while_full(disk)
    disk.unfill()
    disk.st("pull", name)
    nothing_left(disk)


@root
@pytest.mark.peers
def test_commit_of_a_big_change(disk: Disk, inputs: Inputs) -> None:
    disk.st("import", str(inputs.tiny), "tiny:1")
    disk.st("run", "--name", "writer", "tiny:1", "dd", "if=/dev/zero", "of=/big", "bs=1M",
            "count=20")  # fmt: skip
    disk.leave(8 * MB)
    out_of_space(
        disk.st, "commit", "writer", "big:1", naming="writing the layer of container writer"
    )
    nothing_left(disk)
    works_while_full(disk)
    disk.unfill()
    disk.st("commit", "writer", "big:1")
    nothing_left(disk)


@root
@pytest.mark.peers
def test_build_run_step_fills_the_disk(disk: Disk, inputs: Inputs, tmp_path: Path) -> None:
    """dd in the RUN step meets the full disk: the step fails, its container and its 16 MB of
    snapshot go; with the space back the same build succeeds."""
    disk.st("import", str(inputs.tiny), "tiny:1")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM tiny:1\nRUN dd if=/dev/zero of=/big bs=1M count=24\n")
    disk.leave(16 * MB)
    line = disk.st.fail("build", "-t", "big:1", str(context))
    assert "returned a non-zero code: 1" in line, line
    assert disk.st("ps", "-aq").stdout == ""
    nothing_left(disk)
    works_while_full(disk)
    disk.unfill()
    disk.st("build", "-t", "big:1", str(context))
    nothing_left(disk)


@root
@pytest.mark.peers
def test_build_layer_does_not_fit(disk: Disk, inputs: Inputs, tmp_path: Path) -> None:
    """The RUN step fits, its layer does not: the build fails naming the write, not the
    database; the step's container and snapshot go."""
    disk.st("import", str(inputs.tiny), "tiny:1")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM tiny:1\nRUN dd if=/dev/zero of=/big bs=1M count=16\n")
    disk.leave(24 * MB)
    out_of_space(
        disk.st, "build", "-t", "big:1", str(context), naming="writing the layer of the step"
    )
    assert disk.st("ps", "-aq").stdout == ""
    nothing_left(disk)
    disk.unfill()
    disk.st("build", "-t", "big:1", str(context))
    nothing_left(disk)


# -- a disk full before the command starts ----------------------------------------------------


@root
def test_disk_full_before_the_command(disk: Disk, inputs: Inputs) -> None:
    """Not one byte free, not even for SQLite's shared-memory file: reads work, an import fails
    cleanly, and rmi and prune free space (the database write they need comes from the reserve)."""
    disk.st("import", str(inputs.tiny), "tiny:1")
    disk.st("import", str(inputs.big), "big:1")
    disk.fill()
    for args in (("images",), ("ps", "-a"), ("system", "df"), ("system", "check")):
        proc = disk.st(*args, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "big " in disk.st("images").stdout
    # Its first write may be the database's (then it says so) or the layer's.
    assert NO_SPACE in disk.st.fail("import", str(inputs.tiny), "more:1")
    assert check(disk.st) == (0, ["no problems found"])
    assert disk.st("rmi", "big:1").stdout.count("Deleted") == 1
    assert disk.free() > BIG  # the blob went, after its row
    disk.fill()
    assert "Total reclaimed space" in disk.st("image", "prune", "-af").stdout
    assert disk.free() > 2 * MB
    assert disk.st("images", "-q").stdout == ""
    disk.unfill()
    disk.st("import", str(inputs.tiny), "tiny:1")
    nothing_left(disk)


@root
def test_repair_on_a_full_disk(disk: Disk, inputs: Inputs) -> None:
    """``system check --repair`` drops a dead lease with not one byte free (its transactions
    only delete, and may spend the reserve)."""
    disk.st("import", str(inputs.tiny), "tiny:1")
    conn = sqlite3.connect(disk.st.root / "strata.db")
    with conn:
        conn.execute("INSERT INTO leases (id, created, expires) VALUES ('old', 1, 2)")
        conn.execute("INSERT INTO lease_resources VALUES ('old', 'blob', 'sha256:x')")
    conn.close()
    disk.fill()
    code, lines = check(disk.st, "--repair")
    assert code == 0, lines
    assert any("dropped 1 dead lease" in line for line in lines), lines
    assert check(disk.st) == (0, ["no problems found"])
    disk.unfill()
    nothing_left(disk)


@root
def test_save_to_a_full_disk_names_the_file(disk: Disk, inputs: Inputs) -> None:
    """An archive written to a full disk: one line naming the file; no partial file left."""
    disk.fill()
    target = disk.path / "out.tar"
    line = inputs.store.fail("save", "-o", str(target), "big:1")
    assert line == f"Error: writing {target}: {NO_SPACE}", line
    assert sorted(p.name for p in disk.path.iterdir()) == ["filler-rest"]


@root
def test_only_reclaiming_transactions_spend_the_reserve(disk: Disk) -> None:
    """On a full disk a transaction that adds rows fails at once, naming the database and what
    it was writing, and leaves the reserve whole; one that deletes (``reclaim``) commits."""
    disk.st.root.mkdir()
    db = Database(disk.st.root / "strata.db")
    try:
        assert db.reserve.size() == RESERVE_SIZE
        with db.transaction() as conn:
            conn.executemany(
                "INSERT INTO leases (id, created, expires) VALUES (?, 0, 1)",
                [(f"lease-{i}",) for i in range(2000)],
            )
        disk.fill()
        with pytest.raises(NoSpace) as err, db.transaction(what="adding a tag") as conn:
            conn.execute("INSERT INTO leases (id, created, expires) VALUES ('more', 0, 1)")
            conn.executemany(
                "UPDATE leases SET expires = 2 WHERE id = ?", [(f"lease-{i}",) for i in range(2000)]
            )
        assert str(err.value) == f"writing {db.path} (adding a tag): {NO_SPACE}"
        assert db.reserve.size() == RESERVE_SIZE
        with db.transaction(reclaim=True) as conn:
            conn.execute("DELETE FROM leases")
        assert 0 < db.reserve.size() < RESERVE_SIZE
        with db.read() as conn:
            assert conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    finally:
        db.close()
    disk.unfill()
    Database(disk.st.root / "strata.db").close()  # the next open grows the reserve back
    assert os.path.getsize(disk.st.root / "strata.db-reserve") == RESERVE_SIZE


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/srv/out.tar"),
            "Error: writing /srv/out.tar: no space left on device",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/home/u/.local/share/strata/x"),
            "Error: writing /home/u/.local/share/strata/x: disk quota exceeded",
        ),
        (
            sqlite3.OperationalError("database or disk is full"),
            "Error: writing the store's database: database or disk is full",
        ),
    ],
)
def test_a_full_disk_reaching_the_cli_is_one_line(
    error: Exception, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from strata.cli import main as cli_main

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(cli_main.cli, "main", fail)
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["images"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == line + "\n"
