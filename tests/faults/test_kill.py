"""SIGKILL at any point of every writing command: the store stays sound, and is clean again after
the next command of the same kind.

For each command the suite first measures how long it takes here, then starts it again and again
as a subprocess and kills it with SIGKILL after a seeded random delay, the delays spread over the
whole run (seed ``i`` of ``n`` falls in the ``i``-th ``n``-th of it). After each kill:

- ``system check`` may find what a crash leaves by design (an ingest or lease of the dead
  process, a mount or snapshot of its step), but never a torn blob, a half-made image or a
  damaged database;
- ``system check --repair`` (after every other kill) removes it all;
- the command run again succeeds, and ``system check`` then finds nothing at all: each command
  repairs what a crash left in its own path.

``STRATA_KILL_SEEDS`` sets the number of kills per command (3 by default, so the file runs in a
few minutes; raise it for a soak run).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)
from tests.system.conftest import check

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.peers]

SEEDS = int(os.environ.get("STRATA_KILL_SEEDS", "3"))
BASE = "debian:bookworm"
BIG = "kill/big:1"
SETTLE = 15.0  # seconds a killed command's helpers (a build's guard) may take to finish
# What a crash may leave for the next command (or ``check --repair``) to clean; anything else
# found right after a kill is damage.
DEBRIS = (
    "ingest ",
    "lease ",
    "mount ",
    "scratch ",
    "directory ",
    "active snapshot ",
    "view snapshot ",
    "volume volumes/",  # a killed volume create's directory, a killed removal's trash
)
# A container an rm was killed in the middle of removing has lost its snapshot: the next rm
# finishes it.
DEBRIS_CONTAINER = ("recorded as running, but no process runs it", "its container is", ") is gone")


@dataclass
class World:
    """One store with a Debian image, and the inputs every case needs."""

    st: Strata
    files: Path
    registry: str
    pushes: list[int] = field(default_factory=lambda: [0])

    @property
    def docker_archive(self) -> Path:
        return self.files / "big-docker.tar"

    @property
    def oci_archive(self) -> Path:
        return self.files / "big-oci.tar"

    @property
    def remote(self) -> str:
        return f"{self.registry}/kill/big:1"

    def names(self) -> list[str]:
        out = self.st("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        return [n for n in out if not n.endswith(":<none>")]

    def forget_big(self) -> None:
        """No name of the big image left, and its blobs collected."""
        names = [n for n in self.names() if n.split("/", 1)[-1].startswith("kill/big")]
        names += [n for n in self.names() if "/kill/push-" in n]
        if names:
            self.st("rmi", *names)
        self.st("image", "prune", "-f")

    def load_big(self) -> None:
        if BIG not in self.names():
            self.st("load", "-q", "-i", str(self.docker_archive))


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    registry: Registry,  # noqa: F811
) -> Iterator[World]:
    base = tmp_path_factory.mktemp("kill")
    st = Strata(base / "store")
    files = base / "files"
    files.mkdir()
    w = World(st, files, registry.address)
    st("import", str(debian_rootfs_tar()), BASE)
    # The big image: Debian and a layer of 60 MB nobody else has, in every form a case reads.
    st("run", "--name", "kill-big", BASE, "sh", "-c", "head -c 60000000 /dev/urandom > /big")
    st("commit", "kill-big", BIG)
    st("rm", "kill-big")
    st("save", "-o", str(w.docker_archive), BIG)
    st("save", "--format", "oci-archive", "-o", str(w.oci_archive), BIG)
    st("tag", BIG, w.remote)
    st("push", "-q", w.remote)
    # A container whose changes a commit turns into a layer.
    st("run", "--name", "kill-commit", BASE, "sh", "-c", "head -c 60000000 /dev/urandom > /c")
    # A build context: a RUN step that writes, and a COPY of a file.
    ctx = files / "ctx"
    ctx.mkdir()
    (ctx / "blob").write_bytes(random.Random(0).randbytes(30_000_000))
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN head -c 30000000 /dev/urandom > /r\nCOPY blob /blob\n"
    )
    # A small rootfs tar for dangling images.
    tar = files / "small.tar"
    subprocess.run(
        ["tar", "-C", str(ctx), "-cf", str(tar), "blob"], check=True, capture_output=True
    )
    yield w
    st("rm", "-f", *st("ps", "-aq").stdout.split(), check=False)


@dataclass(frozen=True)
class Case:
    """A writing command: ``prepare`` puts the store where the command has work to do."""

    name: str
    argv: Callable[[World], list[str]]
    prepare: Callable[[World], None] = lambda w: None
    # Whether running it again needs ``prepare`` first (it consumed its input: rm, rmi, prune).
    again_needs_prepare: bool = False


def _untag(*names: str) -> Callable[[World], None]:
    def prepare(w: World) -> None:
        present = [n for n in names if n in w.names()]
        if present:
            w.st("rmi", *present)

    return prepare


def _forget_big(w: World) -> None:
    w.forget_big()


def _fresh_big(w: World) -> None:
    w.forget_big()
    w.load_big()


def _push_ref(w: World) -> list[str]:
    return ["push", "-q", f"{w.registry}/kill/push-{w.pushes[0]}:1"]


def _prepare_push(w: World) -> None:
    # The compressed layer is made (and kept) by a push: start from the uncompressed load.
    _fresh_big(w)
    w.pushes[0] += 1
    w.st("tag", BIG, f"{w.registry}/kill/push-{w.pushes[0]}:1")


def _prepare_rm(w: World) -> None:
    w.st("rm", "-f", "kill-rm", check=False)
    w.st("create", "--name", "kill-rm", BASE, "true")


def _prepare_prune(w: World) -> None:
    w.st("import", str(w.files / "small.tar"))  # dangling: no name
    w.st("import", str(w.files / "small.tar"), "kill/prune:1")
    w.st("rmi", "kill/prune:1")


VOLUME_RUN = (
    *("-v", "kill-runvol:/v", "-v", "/anon", BASE, "sh", "-c"),
    "head -c 20000000 /dev/urandom > /v/f; cp /v/f /anon/f",
)


def _prepare_volume_rm(w: World) -> None:
    w.st("volume", "rm", "-f", "kill-vol")
    w.st("volume", "create", "kill-vol")
    data = w.st.root / "volumes" / "kill-vol" / "_data"
    for n in range(200):  # a removal with some work to do
        (data / f"f{n}").write_bytes(b"x" * 100_000)


CASES = [
    Case(
        "import",
        lambda w: ["import", str(debian_rootfs_tar()), "kill/import:1"],
        _untag("kill/import:1"),
    ),
    # Loads start with none of the big image's blobs: they write them all.
    Case("load-docker", lambda w: ["load", "-q", "-i", str(w.docker_archive)], _forget_big),
    Case("load-oci", lambda w: ["load", "-q", "-i", str(w.oci_archive)], _forget_big),
    Case(
        "save",
        lambda w: ["save", "--format", "oci-archive", "-o", str(w.files / "out.tar"), BIG],
        _fresh_big,
    ),
    Case("pull", lambda w: ["pull", "-q", w.remote], _forget_big),
    Case("push", _push_ref, _prepare_push),
    Case("commit", lambda w: ["commit", "kill-commit", "kill/commit:1"], _untag("kill/commit:1")),
    Case(
        "build",
        lambda w: ["build", "-q", "--no-cache", "-t", "kill/build:1", str(w.files / "ctx")],
        _untag("kill/build:1"),
    ),
    Case(
        "run",
        lambda w: ["run", "--rm", BASE, "sh", "-c", "head -c 20000000 /dev/urandom > /f"],
    ),
    Case(
        "create",
        lambda w: ["create", "--name", "kill-create", BASE, "true"],
        lambda w: w.st("rm", "-f", "kill-create", check=False) and None,
        again_needs_prepare=True,
    ),
    Case("rm", lambda w: ["rm", "kill-rm"], _prepare_rm, again_needs_prepare=True),
    Case("rmi", lambda w: ["rmi", BIG], _fresh_big, again_needs_prepare=True),
    Case("image-prune", lambda w: ["image", "prune", "-f"], _prepare_prune, True),
    Case("tag", lambda w: ["tag", BASE, "kill/tag:1"], _untag("kill/tag:1")),
    # vol: a run that makes a named and an anonymous volume and writes into them; a removal.
    Case("run-volume", lambda w: ["run", "--rm", *VOLUME_RUN]),
    Case("volume-rm", lambda w: ["volume", "rm", "kill-vol"], _prepare_volume_rm, True),
]


def _strata_processes(root: Path) -> list[int]:
    """strata's own processes on this store (a guard a build left, say), by environment."""
    mark = f"STRATA_ROOT={root}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        if mark in environ and int(pid) != os.getpid() and b") Z" not in stat:
            found.append(int(pid))
    return found


def _run(w: World, case: Case) -> float:
    """Run the command to its end; return how long it took."""
    start = time.monotonic()
    w.st(*case.argv(w))
    return time.monotonic() - start


def _kill_after(w: World, argv: list[str], delay: float) -> int | None:
    """Start the command, SIGKILL it after ``delay`` seconds; its exit status if it ended first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", *argv],
        env={**os.environ, "STRATA_ROOT": str(w.st.root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=delay)
        return proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None
    finally:
        # What the command left running on its own (a guard cleaning up) finishes first; two
        # looks, since a process in the middle of an exec may not show its environment.
        deadline = time.monotonic() + SETTLE
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            quiet = 0 if _strata_processes(w.st.root) else quiet + 1
            time.sleep(0.1)


def _leftovers(root: Path) -> list[str]:
    """Mounts under the store and entries of its ``tmp/``: none once every command has ended
    (the store's containers are all stopped), whatever ``system check`` says."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(f"{root}/"):
            found.append(f"mount {point}")
    tmp = root / "tmp"
    found += [f"tmp/{name}" for name in sorted(os.listdir(tmp))] if tmp.is_dir() else []
    return found


def _damage(lines: list[str]) -> list[str]:
    """Problems no crash may cause: anything but a dead command's debris."""
    return [
        line
        for line in lines[:-1]
        if not line.startswith("  ")
        and not line.startswith(DEBRIS)
        and not (line.startswith("container ") and line.endswith(DEBRIS_CONTAINER))
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_killed_command_leaves_a_sound_store_its_next_run_cleans(
    world: World, case: Case
) -> None:
    # Timed on a second run: the first may do once-only work (a build unpacks its base).
    case.prepare(world)
    _run(world, case)
    case.prepare(world)
    duration = _run(world, case)
    failures: list[str] = []
    for seed in range(SEEDS):
        rng = random.Random(f"{case.name}/{seed}")
        delay = duration * (seed + rng.random()) / SEEDS
        case.prepare(world)
        status = _kill_after(world, case.argv(world), delay)
        what = f"seed {seed}: killed after {delay:.3f} s of {duration:.3f} s"
        if status is not None:
            what = f"seed {seed}: ended ({status}) before its kill at {delay:.3f} s"
        code, lines = check(world.st)
        # What each kill left, for a soak run's report (pytest -s shows it).
        print(f"{case.name} {what}: {'; '.join(lines)}")
        if code not in (0, 1) or _damage(lines):
            failures.append(f"{what}: check found damage:\n  " + "\n  ".join(lines))
            continue
        if code == 1 and seed % 2 == 1:
            # Every other kill, --repair cleans first (the others leave it to the next run).
            code, repaired = check(world.st, "--repair")
            gone = repaired == ["no problems found"]  # its owner's guard was quicker
            if code != 0 or not (gone or repaired[-1].endswith(", 0 left")):
                failures.append(f"{what}: --repair left:\n  " + "\n  ".join(repaired))
                continue
            code, again = check(world.st)
            if (code, again) != (0, ["no problems found"]):
                failures.append(f"{what}: after --repair:\n  " + "\n  ".join(again))
                continue
        if case.again_needs_prepare:
            case.prepare(world)
        proc = world.st(*case.argv(world), check=False)
        if proc.returncode != 0:
            failures.append(f"{what}: the run after it failed: {proc.stderr.strip()}")
            continue
        code, after = check(world.st)
        after += _leftovers(world.st.root)
        if (code, after) != (0, ["no problems found"]):
            left = "\n  ".join(after)
            failures.append(f"{what}; right after: {lines}\n  the run after it left:\n  {left}")
    assert not failures, "\n".join(failures)
    # Still a working store: a container of the base image runs.
    assert world.st("run", "--rm", BASE, "true").returncode == 0
