"""No race between two commands ever loses an image: writers against ``rmi -f`` and prunes.

Each writer that succeeds must leave an image whose every blob (manifest, config, layers) is in
``<root>/blobs`` and hashes to its digest, for as long as the image is recorded; a writer that
fails must fail with one clean line, of a kind the race explains (``No such image`` for an image
removed before it was held). Push and save are held mid-transfer while an ``rmi -f`` and a
prune of their image run to the end, and what they sent or wrote is read back into another store.

The images are a few MB of Debian (dash, true, cat and libc), so that many rounds of real
commands (runc, overlayfs, a real registry) fit in a minute or two. Delays and choices are seeded;
a failure names its seed and writes every command run (with times and errors) to a log;
``STRATA_RACE_SEED`` replays the choices and ``STRATA_RACE_SECONDS`` sets how long the stress runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.diff.chain import INIT_PREFIX, chain_ids, layer_key
from strata.digest import Digest
from strata.errors import ImageNotFound, NotFound
from strata.image.archive import ArchiveFormat, write_archive
from strata.image.root import StoreRoot
from strata.image.store import Image, ImageStore
from strata.layer.compression import Compression
from strata.oci.reference import parse_reference
from strata.snapshot.select import default_snapshotter
from strata.store.db import Database
from strata.store.leases import Lease, lease
from tests.conftest import Strata, debian_rootfs_tar
from tests.image.archive.builders import build_image
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)
from tests.system.conftest import assert_clean

pytestmark = [pytest.mark.root, pytest.mark.peers, pytest.mark.slow]

# What a shell, ``true`` and ``cat`` need from the Debian rootfs (merged /usr).
_KEEP = (
    "bin",
    "lib",
    "lib64",
    "sbin",
    "usr/bin/sh",
    "usr/bin/dash",
    "usr/bin/true",
    "usr/bin/cat",
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib64/ld-linux-x86-64.so.2",
    "etc/passwd",
    "etc/group",
)
_DIRS = ("usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "tmp")
_DIRS += ("proc", "sys", "dev", "root")


def _seed() -> int:
    return int(os.environ.get("STRATA_RACE_SEED") or random.SystemRandom().randrange(1 << 32))


def mini_rootfs(source: Path, dest: Path) -> Path:
    """A small runnable rootfs tar (a shell, ``true`` and ``cat``) from the Debian one."""
    with tarfile.open(source) as src, tarfile.open(dest, "w") as out:
        for member in src:
            name = member.name.removeprefix("./").rstrip("/")
            if name in _DIRS and member.isdir():
                out.addfile(member)
            elif name in _KEEP:
                data = src.extractfile(member) if member.isreg() else None
                out.addfile(member, data)
    return dest


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runnable rootfs of about 3 MB."""
    base = tmp_path_factory.mktemp("rootfs")
    return mini_rootfs(debian_rootfs_tar(), base / "small.tar")


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker-archive of ``race/layers:1``: six uncompressed layers of 4 MB random bytes, so
    that a push (which compresses each) or a save opens its blobs one after another over a
    while, and a removal can fall between two of them."""
    base = tmp_path_factory.mktemp("layered")
    content = LocalContentStore(base / "store")
    layers = [{f"layer{i}/data": random.Random(i).randbytes(4 << 20)} for i in range(6)]
    built = build_image(
        content, base, names=["race/layers:1"], layers=layers, compression=Compression.NONE
    )
    archive = base / "layers.tar"
    with open(archive, "wb") as out:
        write_archive(out, [built.save], content, format=ArchiveFormat.DOCKER)
    return archive


# -- checking an image blob by blob ---------------------------------------------------------


@contextlib.contextmanager
def held_image(root: Path, name: str, *, unpacked: bool = False) -> Iterator[Image | None]:
    """Check the image ``name`` names blob by blob (and with ``unpacked``, the snapshot of each
    of its layers), and yield its ID with its blobs and snapshots still leased; None if no image
    has that name (any more). Raises AssertionError naming what is lost.

    The check leases every blob and snapshot before it looks (as a command would), so an image
    removed meanwhile is told apart from one recorded without its parts.
    """
    with StoreRoot(root) as store_root:
        images = ImageStore(store_root)
        image = images.lookup(name)
        if image is None:
            yield None
            return
        blobs = root / "blobs" / "sha256"
        with lease(store_root.db, ttl=600) as held:
            held.add("blob", str(image.manifest_digest))
            try:
                manifest = json.loads((blobs / image.manifest_digest.hex).read_bytes())
            except FileNotFoundError:
                if images.by_manifest(image.manifest_digest) is None:
                    yield None
                    return
                raise AssertionError(f"{name}: manifest {image.manifest_digest} lost") from None
            wanted = [manifest["config"], *manifest["layers"]]
            held.add_all("blob", [d["digest"] for d in wanted])
            if images.by_manifest(image.manifest_digest) is None:
                yield None  # removed before the lease: whatever went, went with it
                return
            for desc in [{"digest": str(image.manifest_digest)}, *wanted]:
                digest = desc["digest"]
                path = blobs / digest.removeprefix("sha256:")
                assert path.is_file(), f"{name} ({image.id.short}): blob {digest} lost"
                actual = "sha256:" + _sha256(path)
                assert actual == digest, f"{name}: blob {digest} holds {actual}"
            if not _unpacked(store_root, held, image, wanted[0]["digest"], check=unpacked):
                yield None
                return
            yield image


def check_image(root: Path, name: str) -> str | None:
    """`held_image`'s check alone: the ID, or None if no image has that name."""
    with held_image(root, name) as image:
        return None if image is None else str(image.id)


def _unpacked(
    store_root: StoreRoot, held: Lease, image: Image, config: str, *, check: bool
) -> bool:
    """Lease the snapshots of ``image``'s layers and its init layer (made or not); with
    ``check``, AssertionError if a layer's is lost. False if the image was removed before
    they were leased."""
    path = store_root.path / "blobs" / "sha256" / Digest.parse(config).hex
    diff_ids = [Digest.parse(d) for d in json.loads(path.read_bytes())["rootfs"]["diff_ids"]]
    keys = [layer_key(c) for c in chain_ids(diff_ids)]
    held.add_all("snapshot", [*keys, *(f"{INIT_PREFIX}{key}" for key in keys[-1:])])
    if ImageStore(store_root).by_manifest(image.manifest_digest) is None:
        return False
    if not check:
        return True
    snapshotter = default_snapshotter(store_root.path, store_root.db)
    for key in keys:
        try:
            snapshotter.stat(key)
        except NotFound:
            raise AssertionError(f"image {image.id.short}: snapshot {key} lost") from None
    return True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The failed command's error, which must be one ``Error: `` line and no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:], proc.stderr
    return lines[-1]


def _start(strata: Strata, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    return subprocess.Popen(
        [sys.executable, "-m", "strata", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str], args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(list(args), proc.returncode, out, err)


def _race(
    strata: Strata, args: tuple[str, ...], remove: Callable[[], None], offset: float
) -> subprocess.CompletedProcess[str]:
    """Run ``strata ARGS`` and ``remove()`` at once, the removal ``offset`` seconds later
    (earlier if negative); the command's result."""
    remover = threading.Thread(target=remove)
    if offset < 0:
        remover.start()
        time.sleep(-offset)
        proc = _start(strata, *args)
    else:
        proc = _start(strata, *args)
        time.sleep(offset)
        remover.start()
    try:
        return _finish(proc, args)
    finally:
        remover.join()


def _remove_all(strata: Strata, image_id: str, *, prune: str = "-af") -> None:
    """``rmi -f`` of the image and ``image prune PRUNE``, as a user cleaning up would."""
    strata("rmi", "-f", image_id, check=False)
    strata("image", "prune", prune)


# -- push, save and commit, each against rmi -f + prune -------------------------------------

ROUNDS = 6


class _GatedProxy:
    """A TCP proxy to a registry that stops passing the client's bytes once ``after`` of them
    have gone through (``reached`` is set), until ``go`` is set: a push held mid-upload."""

    def __init__(self, upstream: str, after: int) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._after = after
        self._sent = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.reached = threading.Event()
        self.go = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gated: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                if gated:
                    with self._lock:
                        self._sent += len(data)
                        over = self._sent > self._after
                    if over:
                        self.reached.set()
                        self.go.wait()
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.go.set()
        self._server.close()
        for sock in self._sockets:
            sock.close()


def test_push_keeps_what_it_sends_while_rmi_and_prune_run(
    strata: Strata,
    registry: Registry,  # noqa: F811
    layered: Path,
    tmp_path: Path,
) -> None:
    """Held mid-upload (3 of 6 layers under way) while ``rmi -f`` and ``image prune -af`` of
    its image run to the end, a push still sends the whole image: pulled back into another
    store, every blob checks."""
    strata("load", "-q", "-i", str(layered))
    image_id = strata("image", "inspect", "--format", "{{.Id}}", "race/layers:1").stdout.strip()
    proxy = _GatedProxy(registry.address, after=2 << 20)
    try:
        ref = f"{proxy.address}/race/push:held"
        strata("tag", "race/layers:1", ref)
        args = ("push", "-q", ref)
        push = _start(strata, *args)
        assert proxy.reached.wait(60), "the push never sent 2 MB"
        strata("rmi", "-f", image_id)
        strata("image", "prune", "-af")
        assert strata("image", "ls", "-aq").stdout == ""
        proxy.go.set()
        proc = _finish(push, args)
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr
    other = Strata(tmp_path / "other")
    other("pull", "-q", f"{registry.address}/race/push:held")
    assert check_image(other.root, f"{registry.address}/race/push:held") == image_id
    assert_clean(strata)  # the push's lease went with it, and its blobs at the next prune
    strata("image", "prune", "-af")
    assert list((strata.root / "blobs" / "sha256").iterdir()) == []


def test_save_keeps_what_it_writes_while_rmi_and_prune_run(
    strata: Strata, layered: Path, tmp_path: Path
) -> None:
    """A save to a pipe its reader has stopped reading, while ``rmi -f`` and ``image prune
    -af`` of its image run to the end, still writes the whole image: it loads into another
    store, every blob checks."""
    strata("load", "-q", "-i", str(layered))
    image_id = strata("image", "inspect", "--format", "{{.Id}}", "race/layers:1").stdout.strip()
    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    save = subprocess.Popen(
        [sys.executable, "-m", "strata", "save", "race/layers:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert save.stdout is not None and save.stderr is not None
    archive = tmp_path / "saved.tar"
    with open(archive, "wb") as out:
        out.write(save.stdout.read(1 << 20))  # the first layer is under way; the save waits
        strata("rmi", "-f", image_id)
        strata("image", "prune", "-af")
        assert strata("image", "ls", "-aq").stdout == ""
        while chunk := save.stdout.read(1 << 20):
            out.write(chunk)
    errors = save.stderr.read().decode()
    assert save.wait() == 0, errors
    other = Strata(tmp_path / "other")
    other("load", "-q", "-i", str(archive))
    assert check_image(other.root, "race/layers:1") == image_id
    assert_clean(strata)


def test_a_reader_refuses_an_image_removed_before_its_lease(
    strata: Strata, layered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image found, then removed and collected before its reader's lease was taken: the
    reader stops with ``No such image`` (a push or save has then written nothing)."""
    from strata.image.hold import hold_image

    strata("load", "-q", "-i", str(layered))
    with StoreRoot(strata.root) as root:
        images = ImageStore(root)
        found = images.get

        def found_then_removed(text: str) -> Image:
            image = found(text)
            strata("rmi", "-f", str(image.id))  # between the lookup and the lease
            return image

        monkeypatch.setattr(images, "get", found_then_removed)
        with root.lease() as held, pytest.raises(ImageNotFound, match="No such image: race/"):
            hold_image(images, held, "race/layers:1")
    assert list((strata.root / "blobs" / "sha256").iterdir()) == []
    assert_clean(strata)


def test_commit_racing_rmi_and_prune(strata: Strata, small: Path) -> None:
    """A container keeps its image: a commit racing ``rmi -f`` of that image and a prune
    (of dangling images: ``-a`` would take the new image too, unused as it is) always makes a
    whole image, which runs."""
    seed = _seed()
    rng = random.Random(seed)
    for n in range(ROUNDS):
        image_id = strata("import", str(small), "race/commit:base").stdout.strip()
        strata("run", "--name", f"c{n}", "race/commit:base", "sh", "-c", f"echo {n} > /made")
        args = ("commit", f"c{n}", f"race/commit:{n}")
        offset = rng.uniform(-0.3, 0.4)
        proc = _race(strata, args, partial(_remove_all, strata, image_id, prune="-f"), offset)
        context = f"seed {seed}, round {n}"
        assert proc.returncode == 0, f"{context}: {proc.stderr}"
        assert check_image(strata.root, f"race/commit:{n}") is not None, context
        strata("rm", f"c{n}")
        _remove_all(strata, image_id, prune="-f")
        made = strata("run", "--rm", f"race/commit:{n}", "cat", "/made").stdout
        assert made == f"{n}\n", context
        strata("rmi", f"race/commit:{n}")
    assert_clean(strata)


def test_run_of_an_image_removed_since_its_lookup(strata: Strata, small: Path) -> None:
    """``run`` racing ``rmi -f``: the image found and unpacked, then removed (and pruned)
    before the container is recorded, gives ``No such image``, and no container stands on an
    image that is gone (its commit would fail, its layers would be collected)."""
    from strata.image.unpack import unpack
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions

    strata("import", str(small), "race/run:1")
    with StoreRoot(strata.root) as root:
        images = ImageStore(root)
        image = images.get("race/run:1")
        service = Containers(root)
        config = images.config(image).config
        top = unpack(images, service.snapshotter, image)
        strata("rmi", "-f", "race/run:1")
        options = RunOptions(command=("true",))
        with pytest.raises(ImageNotFound, match="No such image: race/run:1"):
            service.create_on(str(image.manifest_digest), top, config, "race/run:1", options)
        strata("image", "prune", "-af")  # the snapshots too: nothing stands on them
        with pytest.raises(ImageNotFound, match="No such image: race/run:1"):
            service.create_on(str(image.manifest_digest), top, config, "race/run:1", options)
    assert strata("ps", "-aq").stdout == ""
    assert_clean(strata)


def test_tag_of_an_image_removed_since_its_lookup(strata: Strata, layered: Path) -> None:
    """``tag`` racing ``rmi``: the image found, then removed before the tag is written, gives
    ``No such image``, not a foreign key's internal error, and no tag naming nothing."""
    strata("load", "-q", "-i", str(layered))
    with StoreRoot(strata.root) as root:
        images = ImageStore(root)
        image = images.get("race/layers:1")
        strata("rmi", "-f", str(image.id))
        with pytest.raises(ImageNotFound, match="No such image"):
            images.tag(image, parse_reference("race/tagged:1"))
    assert strata("image", "ls", "-aq").stdout == ""
    assert_clean(strata)


def test_snapshot_gc_keeps_the_layers_of_an_image_recorded_since_it_looked(
    strata: Strata, small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune lists the images, then removes the snapshots none of them stacks; an image
    recorded in between (a pull whose lease on its snapshots ended with it) keeps its
    snapshots all the same (found by the stress: a pulled image's layer snapshot lost)."""
    from strata.image.unpack import collect_snapshots, unpack

    strata("import", str(small), "race/unpacked:1")
    with StoreRoot(strata.root) as root:
        images = ImageStore(root)
        snapshotter = default_snapshotter(root.path, root.db)
        unpack(images, snapshotter, images.get("race/unpacked:1"))
        before = sorted(info.key for info in snapshotter.walk())
        assert before, "nothing unpacked"
        monkeypatch.setattr(images, "all", lambda: [])  # listed before the image was recorded
        assert collect_snapshots(images, snapshotter) == 0
        assert sorted(info.key for info in snapshotter.walk()) == before
    strata("run", "--rm", "--pull", "never", "race/unpacked:1", "true")
    assert_clean(strata)


def test_a_second_connection_in_a_process_keeps_the_first_ones_wal(tmp_path: Path) -> None:
    """Opening the database again in a process (another thread's connection, as this test's
    checks do) must not drop the POSIX locks of the connection already open: else another
    process's last close deletes the WAL and shm files from under it, and its writes are lost
    or corrupt the database (found by the stress: "row missing from index")."""
    path = tmp_path / "strata.db"
    first = Database(path)
    with first.transaction() as conn:
        conn.execute("INSERT INTO leases (id, created, expires) VALUES ('first', 0, 1)")
    second = Database(path)  # what used to open and close a descriptor of the file
    probe = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
        " c.execute('SELECT count(*) FROM leases').fetchall(); c.close()"
    )
    subprocess.run([sys.executable, "-c", probe, str(path)], check=True)
    assert (tmp_path / "strata.db-wal").exists(), "another process's close took our WAL"
    with first.transaction() as conn:
        conn.execute("INSERT INTO leases (id, created, expires) VALUES ('second', 0, 1)")
    first.close()
    second.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("SELECT id FROM leases ORDER BY id").fetchall() == [
            ("first",),
            ("second",),
        ]
    finally:
        check.close()


# -- the stress: writers of every kind against every kind of removal, in parallel -----------

STRESS_SECONDS = float(os.environ.get("STRATA_RACE_SECONDS", "75"))
WRITERS = 2
_DOCKERFILE = "FROM {base}\nARG N=0\nCOPY file /file\nRUN cat /file > /out && echo $N > /n\n"
# How a command may fail when the image it starts from was removed under it (a build's base
# after its pull, the image of a run after its pull); writers of their own image (pull, commit,
# load, import) may not fail at all.
_GONE = ("No such image",)
# What an rmi may answer when its target went meanwhile, or a running container uses it
# (prunes skip both).
_RMI_ERRORS = ("No such image", "conflict: unable to")


@dataclass
class _Stress:
    strata: Strata
    seed: int
    base: str  # the small image in the registry, under two names
    alias: str
    context: Path
    archive: Path  # a saved image, loaded again and again as ``race/loaded:1``
    rootfs: Path
    deadline: float
    failures: list[str] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    log: list[str] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = self.strata(*args, check=False)
        end = time.monotonic()
        with self.lock:
            # Who ran what when, for the story of a failure.
            line = f"{start:.3f}-{end:.3f} [{proc.returncode}] {' '.join(args)}"
            self.log.append(line + "".join(f"\n    {e}" for e in proc.stderr.splitlines()))
        return proc

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(f"seed {self.seed}: {text}")

    def count(self, what: str) -> None:
        with self.lock:
            self.done[what] = self.done.get(what, 0) + 1

    def failed(self, proc: subprocess.CompletedProcess[str], allowed: tuple[str, ...]) -> None:
        """Record ``proc``'s failure unless it is one clean line of an ``allowed`` kind."""
        command = " ".join(str(a) for a in proc.args)
        try:
            error = one_line_error(proc)
        except AssertionError:
            self.fail(f"{command}: not one clean line: {proc.stderr!r}")
            return
        kind = next((text for text in allowed if text in error), None)
        if kind is None:
            self.fail(f"{command}: {error}")
        else:
            self.count(f"{proc.args[3]}: {kind}")  # what a race refused, for the summary

    # -- writers ---------------------------------------------------------------------------

    def writer(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        steps: list[Callable[[random.Random, str], str | None]] = [
            self.pull,
            self.build,
            self.commit,
            self.load,
            self.imported,
            self.tag,
        ]
        n = 0
        while time.monotonic() < self.deadline:
            n += 1
            step = rng.choice(steps)
            try:
                name = step(rng, f"{number}-{n}")
            except AssertionError as err:
                self.fail(str(err))
                continue
            if name is not None:
                self.count(step.__name__)
                self.verify(name, unpacked=step == self.pull)

    def pull(self, rng: random.Random, tag: str) -> str | None:
        name = rng.choice((self.base, self.alias))
        proc = self.run("pull", "-q", name)
        return name if proc.returncode == 0 else self.failed(proc, ())

    def build(self, rng: random.Random, tag: str) -> str | None:
        name = f"race/built:{tag}"
        # strata builds only from local images (README): the base is pulled first, and may be
        # removed again before the build reads it.
        proc = self.run("pull", "-q", self.base)
        if proc.returncode != 0:
            return self.failed(proc, ())
        flags = ["--no-cache"] if rng.random() < 0.5 else []
        arg = f"N={rng.randrange(3)}"
        proc = self.run("build", "-q", *flags, "--build-arg", arg, "-t", name, str(self.context))
        return name if proc.returncode == 0 else self.failed(proc, _GONE)

    def commit(self, rng: random.Random, tag: str) -> str | None:
        container = f"w{tag}"
        proc = self.run("run", "--name", container, self.base, "sh", "-c", f"echo {tag} > /x")
        if proc.returncode != 0:
            self.run("rm", "-f", container)
            # ``run`` records its container only if its image is still recorded, in the same
            # transaction; an rmi -f before that (and a prune taking a blob or snapshot the run
            # was about to use) makes it say No such image.
            return self.failed(proc, _GONE)
        name = f"race/made:{tag}"
        proc = self.run("commit", container, name)
        self.run("rm", container)
        # The container holds its image from the moment it is recorded (rmi -f only untags it,
        # prune leaves it): its commit cannot find it gone.
        return name if proc.returncode == 0 else self.failed(proc, ())

    def load(self, rng: random.Random, tag: str) -> str | None:
        proc = self.run("load", "-q", "-i", str(self.archive))
        return "race/loaded:1" if proc.returncode == 0 else self.failed(proc, ())

    def imported(self, rng: random.Random, tag: str) -> str | None:
        name = f"race/imported:{tag}"
        proc = self.run("import", str(self.rootfs), name)
        return name if proc.returncode == 0 else self.failed(proc, ())

    def tag(self, rng: random.Random, tag: str) -> str | None:
        # Of a name the removers may be taking away at the same moment.
        name = f"race/tagged:{tag}"
        proc = self.run("tag", rng.choice((self.base, self.alias, "race/loaded:1")), name)
        return name if proc.returncode == 0 else self.failed(proc, _GONE)

    def verify(self, name: str, *, unpacked: bool) -> None:
        """Every blob of what ``name`` names now is there (and every layer's snapshot, if it
        was ``unpacked``); and it runs, unless removed.

        The run is made while the check's lease holds the image's blobs and snapshots: ``run``
        itself takes no lease (`strata.runtime.lifecycle`), so an ``rmi -f`` and a prune
        meanwhile could take them from under it, which says nothing about the image's writer.
        """
        try:
            with held_image(self.strata.root, name, unpacked=unpacked) as image:
                if image is None:
                    return  # removed already
                # By manifest digest: two images may share an ID (a config), the one imported
                # (layers as tars) and the one pulled back (compressed), and only this one's
                # blobs are held.
                digest = str(image.manifest_digest)
                proc = self.run("run", "--rm", "--pull", "never", digest, "true")
        except AssertionError as err:
            self.fail(str(err))
            return
        if proc.returncode == 0:
            self.count("ran")
        else:
            self.failed(proc, _GONE)

    # -- removers --------------------------------------------------------------------------

    def remover(self) -> None:
        rng = random.Random(self.seed * 1000 + 999)
        while time.monotonic() < self.deadline:
            kind = rng.random()
            if kind < 0.5:
                listed = self.run(
                    "image", "ls", "-a", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
                )
                words = [w for w in listed.stdout.split() if "<none>" not in w]
                if not words:
                    continue
                proc = self.run("rmi", "-f", rng.choice(words))
            elif kind < 0.7:
                proc = self.run("image", "prune", "-af")
            elif kind < 0.85:
                proc = self.run("builder", "prune", "-af")
            else:
                proc = self.run("system", "check", "--repair")
                if "Traceback" in proc.stderr:
                    self.fail(f"system check --repair: {proc.stderr}")
                continue  # findings while commands run are not failures here (tests/system)
            if proc.returncode != 0:
                self.failed(proc, _RMI_ERRORS if proc.args[3] == "rmi" else ())
            self.count("removal")


def test_stress_writers_against_removals(
    strata: Strata,
    registry: Registry,  # noqa: F811
    small: Path,
    tmp_path: Path,
) -> None:
    """Pulls, builds, commits, loads, imports and tags against ``rmi -f``, ``image prune -af``,
    ``builder prune -af`` and ``system check --repair``: no image made is ever left without a
    blob, every failure is a clean line of an allowed kind, and the store checks clean."""
    seed = _seed()
    base, alias = f"{registry.address}/race/base:1", f"{registry.address}/race/alias:1"
    strata("import", str(small), base)
    strata("tag", base, alias)
    strata("tag", base, "race/loaded:1")
    strata("push", "-q", base)
    strata("push", "-q", alias)
    archive = tmp_path / "loaded.tar"
    strata("save", "-o", str(archive), "race/loaded:1")
    strata("rmi", "-f", base)
    strata("image", "prune", "-af")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(_DOCKERFILE.format(base=base))
    (context / "file").write_text("copied\n")
    stress = _Stress(
        strata, seed, base, alias, context, archive, small, time.monotonic() + STRESS_SECONDS
    )
    threads = [threading.Thread(target=stress.writer, args=(i,)) for i in range(WRITERS)]
    threads.append(threading.Thread(target=stress.remover))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"seed {seed}: {stress.done}")
    if stress.failures:
        story = tmp_path / "commands.log"
        story.write_text("\n".join(sorted(stress.log)) + "\n")
        raise AssertionError("\n".join([*stress.failures, f"(commands in {story})"]))
    leftover = strata("ps", "-aq").stdout.split()
    assert leftover == [], f"seed {seed}: containers left: {leftover}"
    assert_clean(strata)
