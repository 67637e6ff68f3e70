"""strata as a library: one call for each thing the command line does, returning values.

``import strata`` re-exports these: `pull`, `push`, `build`, `run`, `commit`, `save`, `load`,
`images`, `containers` and `history`. None of them prints or exits; each raises the typed errors
of `strata.errors` and takes ``root=`` (the store, by default as the command line's: STRATA_ROOT,
else /var/lib/strata as root, else $XDG_DATA_HOME/strata). The long ones (pull, push, build,
load) report as they go through ``progress``, a callable given one `Progress` event at a time
(from worker threads too: it must be thread-safe and must not raise).

Images come back as `Image` handles and containers as `Container` handles: small frozen values
that name what they stand for, and that every function takes where a name is taken (a handle
stands for its ID, so a tag moved meanwhile does not change what it means).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Literal

from strata.errors import ImageNotFound, InvalidArgument, NotFound

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.image.store import Image as StoredImage
    from strata.image.store import ImageStore
    from strata.oci.config import ImageConfig
    from strata.registry.client import RegistryClient
    from strata.runtime.containers import Container as Record

__all__ = [
    "Container",
    "HistoryEntry",
    "Image",
    "Progress",
    "ProgressCallback",
    "ProgressKind",
    "Pushed",
    "RunResult",
    "build",
    "commit",
    "containers",
    "history",
    "images",
    "load",
    "pull",
    "push",
    "run",
    "save",
]

ProgressKind = Literal[
    # pull, push: a message; a layer's status; a transfer starts; bytes moved; a layer is done
    "header",
    "status",
    "start",
    "advance",
    "done",
    # build: the context's size; a step; ONBUILD triggers; the cache's verdict; a RUN step's
    # container and its output; the step's image; an explained step (``explain=True``)
    "context",
    "step",
    "triggers",
    "cache-hit",
    "cache-miss",
    "running",
    "output",
    "removed",
    "image",
    "plan-hit",
    "plan-miss",
    # load: an image entered the store
    "loaded",
]


@dataclass(frozen=True, slots=True)
class Progress:
    """One thing a long call reports as it goes.

    ``id`` names what the event is about (a layer as Docker names it, a container, an image);
    ``current`` and ``total`` count bytes for a transfer (``advance``: bytes so far), a step's
    number and the step count for ``step``, the size for ``context``; ``text`` is the words
    (Docker's status, a step's instruction, a cache miss's reason, a loaded name); ``data`` is
    the raw bytes of an ``output`` event (``text`` is them decoded).
    """

    kind: ProgressKind
    id: str = ""
    current: int = 0
    total: int | None = None
    text: str = ""
    data: bytes = b""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of an image's history, newest first as ``docker history``.

    ``id`` is the ID of the local image made of the steps up to this one (the image's own on
    the top entry), None where Docker shows ``<missing>``; ``size`` is the bytes of the files
    the step's layer holds, 0 for a step that made none.
    """

    id: str | None
    created: datetime | None
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...] = ()
    empty_layer: bool = False


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image: its ID (the config digest), manifest digest, names and size.

    ``str(image)`` is its ID, so a handle goes wherever an image name goes.
    """

    id: str
    digest: str  # the manifest's
    tags: tuple[str, ...]  # familiar names: ``app:2``, ``localhost:5000/app:1``
    repo_digests: tuple[str, ...]
    created: datetime | None
    size: int  # of the uncompressed layers
    root: Path = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.id

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker shows."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def config(self) -> ImageConfig:
        """The image's configuration (read from the store on each access)."""
        store = _images(self.root)
        return store.config(store.get(self.id))

    def history(self) -> list[HistoryEntry]:
        """`history` of this image."""
        return history(self, root=self.root)


@dataclass(frozen=True, slots=True)
class Container:
    """A container as last seen: ``state`` is ``created``, ``running`` or ``exited``."""

    id: str
    name: str
    image: str  # the image's manifest digest
    image_ref: str  # the image as it was named
    command: tuple[str, ...]
    state: str
    exit_code: int | None
    created: str
    started: str | None
    finished: str | None

    def __str__(self) -> str:
        return self.id

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `run` did: the exit code and output (None and empty when detached)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    container: Container


@dataclass(frozen=True, slots=True)
class Pushed:
    """A pushed manifest: where it went (with its tag), its digest and size."""

    reference: str
    digest: str
    size: int


# -- helpers ----------------------------------------------------------------------------------


def _store_root(root: str | os.PathLike[str] | None) -> StoreRoot:
    from strata.image.root import StoreRoot, default_root

    return StoreRoot(Path(root) if root else default_root())


def _images(root: str | os.PathLike[str] | None) -> ImageStore:
    from strata.image.store import ImageStore

    return ImageStore(_store_root(root))


def _image(found: StoredImage, root: Path) -> Image:
    from strata.oci.config import parse_time

    return Image(
        id=str(found.id),
        digest=str(found.manifest_digest),
        tags=tuple(tag.familiar for tag in found.tags),
        repo_digests=tuple(found.repo_digests),
        created=parse_time(found.created) if found.created else None,
        size=found.size,
        root=root,
    )


def _container(record: Record) -> Container:
    config: object = record.config
    # Typed config or mapping: the command either way.
    args = config.get("args", ()) if isinstance(config, Mapping) else getattr(config, "args", ())
    return Container(
        id=record.id,
        name=record.name,
        image=record.image,
        image_ref=record.image_ref,
        command=tuple(args),
        state=str(record.state.value),
        exit_code=record.exit_code,
        created=record.created,
        started=record.started,
        finished=record.finished,
    )


def _emit(progress: ProgressCallback | None) -> ProgressCallback:
    return progress if progress is not None else (lambda event: None)


class _TransferProgress:
    """A pull's or push's `TransferEvents` as `Progress` events; ``advance`` counts so far."""

    def __init__(self, emit: ProgressCallback) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._moved: dict[str, int] = {}
        self._totals: dict[str, int | None] = {}

    def header(self, text: str) -> None:
        self._emit(Progress("header", text=text))

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        self._emit(Progress("done" if final else "status", layer, text=text))

    def start(self, layer: str, text: str, total: int | None) -> None:
        with self._lock:
            self._moved[layer] = 0
            self._totals[layer] = total
        self._emit(Progress("start", layer, 0, total, text))

    def advance(self, layer: str, count: int) -> None:
        with self._lock:
            moved = self._moved[layer] = self._moved.get(layer, 0) + count
            total = self._totals.get(layer)
        self._emit(Progress("advance", layer, moved, total))


class _BuildProgress:
    """A build's `BuildEvents` as `Progress` events."""

    def __init__(self, emit: ProgressCallback) -> None:
        self._emit = emit

    def context(self, size: int) -> None:
        self._emit(Progress("context", current=size, total=size))

    def step(self, number: int, total: int, text: str) -> None:
        self._emit(Progress("step", current=number, total=total, text=text))

    def triggers(self, count: int) -> None:
        self._emit(Progress("triggers", current=count))

    def cache_hit(self) -> None:
        self._emit(Progress("cache-hit"))

    def cache_miss(self, reason: str) -> None:
        self._emit(Progress("cache-miss", text=reason))

    def running(self, container_id: str) -> None:
        self._emit(Progress("running", container_id))

    def output(self, data: bytes) -> None:
        self._emit(Progress("output", text=data.decode(errors="replace"), data=data))

    def removed(self, container_id: str) -> None:
        self._emit(Progress("removed", container_id))

    def image(self, image_id: str) -> None:
        self._emit(Progress("image", image_id))

    def plan(self, number: int, text: str, hit: bool, reason: str) -> None:
        del text  # the step event said it
        self._emit(Progress("plan-hit" if hit else "plan-miss", current=number, text=reason))


def _client(domain: str, insecure: bool | None) -> RegistryClient:
    from strata.registry.client import RegistryClient
    from strata.registry.credentials import CredentialStore

    return RegistryClient(domain, insecure=insecure, credentials=CredentialStore.load())


# -- registry ---------------------------------------------------------------------------------


def pull(
    name: str,
    *,
    platform: str | None = None,
    jobs: int = 3,
    insecure: bool | None = None,
    unpack: bool = True,
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Image:
    """Pull ``name`` (``latest`` when it has no tag or digest) into the store; the image.

    ``platform`` (``os/arch``, default this machine's) picks the image out of an index; ``jobs``
    layers download at once; ``insecure`` True uses plain HTTP (None: for loopback registries
    and those ~/.docker/config.json lists); ``unpack`` extracts the layers now.
    """
    from strata.oci.descriptor import Platform
    from strata.oci.reference import parse_reference
    from strata.registry.pull import pull as pull_image

    ref = parse_reference(name)
    wanted = Platform.parse(platform) if platform else None
    store = _images(root)
    with _client(ref.domain, insecure) as client:
        result = pull_image(
            store,
            client,
            ref,
            platform=wanted,
            jobs=jobs,
            unpack=unpack,
            events=_TransferProgress(_emit(progress)),
        )
    return _image(result.image, store.root.path)


_pull = pull  # for `run`, whose ``pull`` argument hides the function


def push(
    image: Image | str,
    reference: str | None = None,
    *,
    format: Literal["oci", "docker"] | None = None,
    compression: Literal["gzip", "zstd"] = "gzip",
    jobs: int = 3,
    insecure: bool | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Pushed:
    """Push the local ``image`` to ``reference`` (default: the name ``image`` is).

    ``format`` is the manifest's (default OCI, or the image's own when it needs no change);
    ``compression`` applies to layers stored uncompressed.
    """
    from strata.oci.reference import parse_reference
    from strata.registry.push import push as push_image

    source = str(image)
    if reference is None:
        if isinstance(image, Image):
            raise InvalidArgument("push: an image handle needs a reference to push to")
        reference = source
    ref = parse_reference(reference)
    store = _images(root)
    if source != reference:
        store.get(source)  # No such image: SOURCE
    elif ref.digest is None and store.lookup(str(ref.with_default_tag())) is None:
        # Docker's check, before any registry is contacted (and no login is asked for).
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    with _client(ref.domain, insecure) as client:
        result = push_image(
            store,
            client,
            ref,
            source=source,
            manifest_format=format,
            compression=compression,
            jobs=jobs,
            events=_TransferProgress(_emit(progress)),
        )
    return Pushed(str(result.reference), str(result.digest), result.size)


# -- build ------------------------------------------------------------------------------------


def build(
    context: str | os.PathLike[str] = ".",
    *,
    tags: Sequence[str] = (),
    dockerfile: str | os.PathLike[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    network: str = "default",
    timestamp: int | None = None,
    runtime: str | None = None,
    labels: Mapping[str, str] | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Image:
    """Build the Dockerfile of ``context`` (or ``dockerfile``); the final image, tagged ``tags``.

    ``timestamp`` (seconds since 1970) sets every time in the image, as SOURCE_DATE_EPOCH does;
    each step, cache verdict and RUN output line comes through ``progress``. A failed step
    raises `strata.errors.StepFailed`, its output having come through ``progress``.
    """
    from strata.build.events import BuildOptions
    from strata.build.executor import Builder

    if timestamp is not None and timestamp < 0:
        raise InvalidArgument(f"invalid timestamp {timestamp}: before 1970")
    options = BuildOptions(
        context=Path(context),
        dockerfile=Path(dockerfile) if dockerfile is not None else None,
        tags=tuple(tags),
        build_args=dict(build_args or {}),
        target=target,
        no_cache=no_cache,
        network=network,
        epoch=timestamp,
        runtime=runtime,
        labels=dict(labels or {}),
    )
    store_root = _store_root(root)
    result = Builder(store_root, _BuildProgress(_emit(progress))).build(options)
    assert result is not None  # None only when explaining
    from strata.image.store import ImageStore

    found = ImageStore(store_root).by_manifest(result.manifest_digest)
    if found is None:
        raise ImageNotFound(f"No such image: {result.image_id}")
    return _image(found, store_root.path)


# -- containers -------------------------------------------------------------------------------


def run(
    image: Image | str,
    command: Sequence[str] | None = None,
    *,
    name: str | None = None,
    entrypoint: str | None = None,
    env: Mapping[str, str] | Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    network: str = "default",
    volumes: Sequence[str] = (),
    runtime: str | None = None,
    remove: bool = False,
    detach: bool = False,
    pull: Literal["missing", "always", "never"] = "missing",
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Create a container of ``image`` and run ``command`` (default: the image's) in it.

    In the foreground (the default) the call returns when the command ends, with its exit code
    and its stdout and stderr as bytes (stdin is empty); ``remove`` then removes the container.
    ``detach`` returns once it runs (its output goes to its log, as ``strata logs`` shows).
    ``env`` is a mapping or ``NAME=VALUE`` strings; ``volumes`` are ``HOST:CONTAINER[:ro]``;
    ``pull`` (for a name, not a handle) fetches a missing image first, reporting through
    ``progress``.
    """
    from strata.runtime.backend import ProcessIO
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions

    if detach and remove:
        raise InvalidArgument("run: remove and detach together are not supported")
    store_root = _store_root(root)
    target = str(image)
    if isinstance(image, str) and pull != "never":
        from strata.image.store import ImageStore

        if pull == "always" or ImageStore(store_root).lookup(image) is None:
            _pull(image, root=store_root.path, progress=progress)
    pairs = env.items() if isinstance(env, Mapping) else ()
    options = RunOptions(
        name=name,
        command=tuple(command or ()),
        entrypoint=entrypoint,
        env=(*(f"{k}={v}" for k, v in pairs), *(() if isinstance(env, Mapping) else env)),
        workdir=workdir,
        user=user,
        hostname=hostname,
        network=network,
        volumes=tuple(volumes),
        runtime=runtime,
        autoremove=remove,
    )
    service = Containers(store_root)
    record = service.create(target, options)
    if detach:
        service.start(record)
        return RunResult(None, b"", b"", _container(service.refresh(record) or record))
    with (
        open(os.devnull, "rb") as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        code = service.run(record, stdio=ProcessIO(stdin.fileno(), out.fileno(), err.fileno()))
        stdout, stderr = _read_all(out), _read_all(err)
    after = None if remove else service.refresh(record)
    handle = _container(after or record)
    if after is None:
        handle = replace(handle, state="exited", exit_code=code)
    return RunResult(code, stdout, stderr, handle)


def _read_all(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read()


def commit(
    container: Container | str,
    reference: str | None = None,
    *,
    message: str = "",
    author: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
    root: str | os.PathLike[str] | None = None,
) -> Image:
    """``docker commit``: the container's changes as one new layer on its image; the image,
    tagged ``reference`` if given. ``changes`` are Dockerfile instructions (``CMD ["sh"]``)."""
    from strata.oci.reference import parse_reference
    from strata.runtime.commit import commit_container
    from strata.runtime.lifecycle import Containers

    ref = parse_reference(reference) if reference else None
    store_root = _store_root(root)
    service = Containers(store_root)
    record = service.records.get(str(container))
    made = commit_container(
        service, record, ref=ref, message=message, author=author, changes=changes, pause=pause
    )
    return _image(made, store_root.path)


def containers(*, all: bool = False, root: str | os.PathLike[str] | None = None) -> list[Container]:
    """The running containers (every one with ``all``), newest first as ``strata ps``."""
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers

    service = Containers(_store_root(root))
    found = []
    for record in service.records.all():
        current = service.refresh(record) if record.state is State.RUNNING else record
        if current is None or (not all and current.state is not State.RUNNING):
            continue
        found.append(_container(current))
    return found


# -- images -----------------------------------------------------------------------------------


def images(*, all: bool = False, root: str | os.PathLike[str] | None = None) -> list[Image]:
    """The stored images, newest first; ``all`` includes build steps' untagged images."""
    store = _images(root)
    found = store.all()
    if not all:
        found = [i for i in found if i.tags or i.repo_digests or not i.intermediate]
    return [_image(i, store.root.path) for i in found]


def history(
    image: Image | str, *, root: str | os.PathLike[str] | None = None
) -> list[HistoryEntry]:
    """The steps ``image`` was made by, newest first, as ``strata history``."""
    from strata.image.history import history as history_rows

    store = _images(image.root if isinstance(image, Image) and root is None else root)
    found = store.get(str(image))
    rows = history_rows(store, found, ancestors=store.ancestors(found))
    entries = []
    for row in rows:
        named = store.lookup(str(row.id)) if row.id is not None else None
        entries.append(
            HistoryEntry(
                id=str(row.id) if row.id is not None else None,
                created=row.created,
                created_by=row.created_by,
                size=row.size,
                comment=row.comment,
                tags=tuple(t.familiar for t in named.tags) if named else (),
                empty_layer=row.empty_layer,
            )
        )
    return entries


def save(
    images: Image | str | Sequence[Image | str],
    output: str | os.PathLike[str] | BinaryIO,
    *,
    format: Literal["docker-archive", "oci-archive"] = "docker-archive",
    root: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``images`` as one archive to ``output``: a path (written beside it and renamed
    into place once complete) or a binary stream. A name adds its tag to the archive."""
    from strata.image.archive import ArchiveFormat
    from strata.image.archive.save import save_images

    chosen = [images] if isinstance(images, Image | str) else list(images)
    names = [str(i) for i in chosen]
    if not names:
        raise InvalidArgument("save: no image given")
    if isinstance(output, str | os.PathLike):
        target = Path(output)

        def opener() -> contextlib.AbstractContextManager[BinaryIO]:
            return _replacing(target)

    else:
        stream = output

        def opener() -> contextlib.AbstractContextManager[BinaryIO]:
            return contextlib.nullcontext(stream)

    save_images(_images(root), names, opener, format=ArchiveFormat(format))


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[BinaryIO]:
    """A file beside ``target``, renamed over it when the block ends without an error."""
    from strata.store.space import is_no_space, no_space

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise no_space(f"writing {target}", exc) from None
        raise


def load(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    root: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> list[Image]:
    """Load every image of an archive (docker-archive, oci-archive; a path may also be an OCI
    layout directory); the images, each reported as a ``loaded`` event with its name (one
    per name; an unnamed image once, with no text)."""
    from strata.image.load import load_images

    store = _images(root)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise NotFound(f"{os.fspath(source)}: no such file or directory")
        loaded = load_images(store, path, name=os.fspath(source))
    else:
        loaded = load_images(store, source, name=getattr(source, "name", "-"))
    emit = _emit(progress)
    result = []
    for found, refs in loaded:
        for text in [ref.familiar for ref in refs] or [""]:
            emit(Progress("loaded", str(found.id), text=text))
        # Read back: the names it has now (a name loaded later in the archive moves a tag).
        result.append(_image(store.by_manifest(found.manifest_digest) or found, store.root.path))
    return result
