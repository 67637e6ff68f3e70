"""``pull``: an image from a registry into the store, verified, unpacked and named.

The manifest (through an index for this platform when the name points at one) and the config
come first; then the layers download in parallel, each streamed into the content store through
a resumable ingest and checked against its digest and size as it arrives. While later layers
download, earlier ones are extracted into snapshots (keyed by chain ID, as `strata.image.unpack`
keys them) and their diff IDs checked against the config. Only when every part is verified does
the image appear, in one transaction, with its tag and repo digest.

A failed or interrupted pull leaves what it verified (blobs, snapshots) and what it was still
downloading (ingests, resumed with a Range request next time); it leaves no image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from strata.diff.apply import has_snapshot
from strata.diff.chain import chain_ids, layer_key
from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    InvalidArgument,
    NotFound,
    SizeMismatch,
    StrataError,
    TooLarge,
)
from strata.image.model import ContentImage, LayerInfo
from strata.image.store import Image, ImageLayer, ImageStore
from strata.oci.config import ImageConfig, parse_config
from strata.oci.descriptor import Descriptor, Platform, matches
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MAX_CONFIG_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    layer_compression,
)
from strata.oci.reference import Reference
from strata.registry.extract import LayerFacts, check_diff_id, extract_layer
from strata.registry.platforms import select_manifest
from strata.registry.progress import (
    ALREADY_EXISTS,
    DOWNLOAD_COMPLETE,
    DOWNLOADING,
    PULL_COMPLETE,
    PULLING_FS_LAYER,
    VERIFYING,
    WAITING,
    NullEvents,
    TransferEvents,
)
from strata.registry.sources import record_sources
from strata.registry.tee import Tee

if TYPE_CHECKING:
    from strata.registry.client import RegistryClient
    from strata.snapshot import Snapshotter

__all__ = [
    "DEFAULT_JOBS",
    "MANIFEST_ACCEPT",
    "PullResult",
    "client_names",
    "pull",
    "reraise_named",
]

DEFAULT_JOBS: Final = 3
MANIFEST_ACCEPT: Final = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
_IMAGE_ACCEPT: Final = (OCI_MANIFEST, DOCKER_MANIFEST)
_CHUNK: Final = 1 << 20
# A download of a blob another process (or layer) is downloading waits for it, and gives up only
# when that writer has added nothing for this long.
WRITER_STALL: Final = 120.0


@dataclass(frozen=True, slots=True)
class PullResult:
    """What a pull did: the image, the digest the name resolved to, and whether it was new."""

    reference: Reference  # as pulled: with its tag (``latest`` by default) or digest
    digest: Digest  # the repo digest: of what the name points at (an index, or the manifest)
    image: Image
    up_to_date: bool


class _Cancelled(Exception):
    """A download stopped because another part of the pull failed (never leaves this module)."""


def reraise_named(err: StrataError, prefix: str, names: Sequence[str] = ()) -> StrataError:
    """``err`` with its one-line message prefixed by ``prefix`` (its class kept), to raise.

    A message starting with one of ``names`` (how the client names the repository and the
    reference, which ``prefix`` already says) loses that start, so nothing is said twice.
    """
    text = str(err)
    if text.startswith(prefix):
        return err
    for name in sorted(names, key=len, reverse=True):
        if text.startswith(name + ": "):
            text = text[len(name) + 2 :]
            break
    err.args = (f"{prefix}: {text}",)
    return err


def client_names(client: RegistryClient, ref: Reference) -> list[str]:
    """How ``client`` names ``ref`` in its messages: ``host/repo``, with ``:tag`` or ``@digest``."""
    repo = f"{client.registry}/{ref.path}"
    names = [repo]
    if ref.tag is not None:
        names.append(f"{repo}:{ref.tag}")
    if ref.digest is not None:
        names.append(f"{repo}@{ref.digest}")
    return names


def _media_type(said: str, parsed: Manifest | Index) -> str:
    bare = said.split(";", 1)[0].strip().lower()
    if bare in MANIFEST_MEDIA_TYPES or bare in INDEX_MEDIA_TYPES:
        return bare
    return parsed.effective_media_type


@dataclass(frozen=True, slots=True)
class _Resolved:
    top: Digest  # what the reference names (index or manifest)
    digest: Digest  # the image manifest
    media_type: str
    data: bytes
    manifest: Manifest


def pull(
    images: ImageStore,
    client: RegistryClient,
    ref: Reference,
    *,
    platform: Platform | None = None,
    jobs: int = DEFAULT_JOBS,
    unpack: bool = True,
    snapshotter: Snapshotter | None = None,
    events: TransferEvents | None = None,
) -> PullResult:
    """Pull ``ref`` from ``client``'s registry into ``images`` (see the module docstring).

    ``platform`` (default: this machine's) picks the image out of an index; ``jobs`` layers
    download at once; ``unpack`` extracts the layers (into ``snapshotter``, by default the
    store's) so the image can run at once. Every error is one line starting ``pull REF:``.
    """
    if jobs < 1:
        raise InvalidArgument(f"invalid --jobs {jobs}: must be at least 1")
    ref = ref.with_default_tag()
    try:
        return _Pull(images, client, ref, platform, jobs, unpack, snapshotter, events).run()
    except StrataError as err:
        raise reraise_named(err, f"pull {ref.familiar}", client_names(client, ref)) from None


class _Pull:
    def __init__(
        self,
        images: ImageStore,
        client: RegistryClient,
        ref: Reference,
        platform: Platform | None,
        jobs: int,
        unpack: bool,
        snapshotter: Snapshotter | None,
        events: TransferEvents | None,
    ) -> None:
        self.images = images
        self.content = images.content
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.platform = platform or Platform.current()
        self.chosen = platform is not None
        self.jobs = jobs
        self.unpack = unpack
        self._snapshotter = snapshotter
        self.events: TransferEvents = events or NullEvents()
        self.cancel = threading.Event()

    # -- the steps -------------------------------------------------------------------------

    def run(self) -> PullResult:
        resolved = self._resolve()
        self.events.header(f"{self.ref.tag or self.ref.digest}: Pulling from {self.repo}")
        existing = self.images.lookup(str(resolved.digest))
        if existing is not None and existing.manifest_digest == resolved.digest:
            tagged = self.ref.digest is not None or self.ref in existing.tags
            recorded = {f"{self.ref.name}@{resolved.top}", f"{self.ref.name}@{resolved.digest}"}
            if tagged and recorded & set(existing.repo_digests):
                return PullResult(self.ref, resolved.top, existing, True)
        manifest = resolved.manifest
        with self.images.root.lease() as lease:
            # Lease before you look: every blob is held before its presence is checked, so a
            # concurrent rmi/prune cannot collect a blob this pull has found and relies on.
            lease.add_all(
                "blob",
                [
                    str(resolved.digest),
                    str(manifest.config.digest),
                    *(str(d.digest) for d in manifest.layers),
                ],
            )
            config = self._config(manifest.config)
            if self.chosen and not matches(config.platform, self.platform):
                # As Docker: a single-platform image must be the one asked for by --platform.
                raise NotFound(
                    f"image with reference {self.ref.familiar} was found but does not match the"
                    f" specified platform: wanted {self.platform}, actual: {config.platform}"
                )
            diff_ids = config.rootfs.diff_ids
            if len(diff_ids) != len(manifest.layers):
                raise FormatError(
                    f"manifest {resolved.digest}: {len(manifest.layers)} layers but"
                    f" {len(diff_ids)} diff IDs in config {manifest.config.digest}"
                )
            for i, desc in enumerate(manifest.layers):
                try:
                    layer_compression(desc.media_type)
                except StrataError as err:
                    raise reraise_named(err, f"layer {i} ({desc.digest})") from None
            if self.unpack:
                # The layers' snapshots too, before they are looked for: one found (another
                # image's) or made here is no image's until this one is recorded, and a prune
                # meanwhile would take it.
                lease.add_all("snapshot", [layer_key(c) for c in chain_ids(diff_ids)])
            layers = self._layers(manifest.layers, diff_ids)
            self.content.put_bytes(resolved.data, expected=resolved.digest)
            record_sources(
                self.images.db,
                [manifest.config.digest, *(d.digest for d in manifest.layers)],
                self.ref.domain,
                self.repo,
            )
            # Every blob is present now: the write records the image and copies nothing.
            facts = {la.blob: LayerInfo(la.diff_id, la.size, la.content_size) for la in layers}
            stored = ContentImage(
                self.content,
                resolved.digest,
                resolved.media_type,
                config_digest=manifest.config.digest,
                config=config,
                manifest=manifest,
                facts=lambda _: facts,
            )
            image = self.images.write(
                stored,
                names=[self.ref] if self.ref.digest is None else [],
                repo_digests=[self.ref.without_tag_or_digest().with_digest(resolved.top)],
                lease=lease,
            )
        return PullResult(self.ref, resolved.top, image, False)

    def _resolve(self) -> _Resolved:
        """The image manifest the reference names, through an index for our platform."""
        wanted = str(self.ref.digest) if self.ref.digest is not None else (self.ref.tag or "")
        top = self.client.get_manifest(self.repo, wanted, MANIFEST_ACCEPT)
        parsed = parse_manifest(
            top.data, top.media_type, source=f"manifest {top.digest}", allow_empty_layers=True
        )
        if isinstance(parsed, Manifest):
            return _Resolved(
                top.digest, top.digest, _media_type(top.media_type, parsed), top.data, parsed
            )
        entry = select_manifest(parsed, self.platform, source=f"index {top.digest}")
        sub = self.client.get_manifest(self.repo, str(entry.digest), _IMAGE_ACCEPT)
        source = f"manifest {entry.digest}"
        if sub.digest != entry.digest:
            raise DigestMismatch(f"{source}: digest mismatch (got {sub.digest})")
        if len(sub.data) != entry.size:
            raise SizeMismatch(f"{source}: {len(sub.data)} bytes, the index says {entry.size}")
        image = parse_manifest(sub.data, sub.media_type, source=source, allow_empty_layers=True)
        if not isinstance(image, Manifest):
            raise FormatError(f"{source}: an index inside an index is not an image")
        return _Resolved(
            top.digest, sub.digest, _media_type(sub.media_type, image), sub.data, image
        )

    def _config(self, desc: Descriptor) -> ImageConfig:
        source = f"config {desc.digest}"
        if desc.size > MAX_CONFIG_SIZE:
            raise TooLarge(f"{source}: {desc.size} bytes, over the limit of {MAX_CONFIG_SIZE}")
        if not self.content.exists(desc.digest):
            self._download(desc, None)
        data = self.content.read_bytes(desc.digest, limit=MAX_CONFIG_SIZE)
        return parse_config(data, source=source)

    def _known(self, digests: Sequence[Digest]) -> dict[Digest, LayerFacts]:
        """What the store already recorded about these blobs (verified diff IDs and sizes)."""
        marks = ",".join("?" * len(digests))
        with self.images.db.read() as conn:
            rows = conn.execute(
                f"SELECT digest, diff_id, size, content_size FROM layers WHERE digest IN ({marks})",
                [str(d) for d in digests],
            ).fetchall()
        return {
            Digest.parse(r["digest"]): LayerFacts(
                Digest.parse(r["diff_id"]),
                int(r["size"]),
                None if r["content_size"] is None else int(r["content_size"]),
            )
            for r in rows
        }

    def _layers(self, descs: Sequence[Descriptor], diff_ids: Sequence[Digest]) -> list[ImageLayer]:
        """Every layer present, verified and (with ``unpack``) extracted, bottom first."""
        known = self._known([d.digest for d in descs]) if descs else {}
        keys = [layer_key(c) for c in chain_ids(diff_ids)]
        snapshotter = self._snapshots() if self.unpack else None
        jobs: dict[int, Future[None] | None] = {}
        tees: dict[int, Tee] = {}
        partial = {i.ref for i in self.content.ingests() if i.offset}
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="strata-pull")
        try:
            plan: list[tuple[bool, bool]] = []
            for i, desc in enumerate(descs):
                verified = (k := known.get(desc.digest)) is not None and k.diff_id == diff_ids[i]
                extracted = snapshotter is None or has_snapshot(snapshotter, keys[i])
                have = self.content.exists(desc.digest)
                plan.append((verified, extracted))
                if have and verified and extracted:
                    self.events.status(desc.digest.short, ALREADY_EXISTS, final=True)
                    jobs[i] = None
                    continue
                self.events.status(desc.digest.short, PULLING_FS_LAYER)
                if have:
                    jobs[i] = None
                    continue
                # The lowest layer to extract is extracted as it downloads (a resumed download
                # is not: its first bytes are in an ingest, not in the stream).
                tee = None
                lowest = not extracted and not tees and all(p[1] for p in plan[:-1])
                if lowest and _ingest_ref(desc.digest) not in partial:
                    tee = tees[i] = Tee(f"layer {desc.digest}")
                jobs[i] = pool.submit(self._download, desc, desc.digest.short, tee)
            out = []
            parent: str | None = None
            for i, desc in enumerate(descs):
                job = jobs[i]
                if job is not None and i not in tees:
                    job.result()
                verified, extracted = plan[i]
                entry = known.get(desc.digest) if verified else None
                if not extracted:
                    assert snapshotter is not None
                    entry = extract_layer(
                        self.content,
                        snapshotter,
                        desc,
                        diff_ids[i],
                        keys[i],
                        parent,
                        self.events,
                        tee=tees.get(i),
                        download=job,
                    )
                elif entry is None:
                    entry = check_diff_id(self.content, desc, diff_ids[i])
                if job is not None or not (verified and extracted):
                    self.events.status(desc.digest.short, PULL_COMPLETE, final=True)
                out.append(
                    ImageLayer(
                        desc.digest, desc.media_type, diff_ids[i], entry.size, entry.content_size
                    )
                )
                parent = keys[i]
            return out
        except BaseException:
            self.cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _snapshots(self) -> Snapshotter:
        if self._snapshotter is None:
            from strata.snapshot.select import default_snapshotter

            self._snapshotter = default_snapshotter(self.images.root.path, self.images.db)
        return self._snapshotter

    # -- one blob --------------------------------------------------------------------------

    def _download(self, desc: Descriptor, layer: str | None, tee: Tee | None = None) -> None:
        """Stream ``desc`` into the content store, resuming a previous attempt's bytes.

        Runs on a worker thread: content store and registry only, no database. With a ``tee``
        every chunk is also handed to the extraction, and the end once the blob is verified.
        """
        try:
            self._fetch(desc, layer, tee)
        except BaseException:
            if tee is not None:
                tee.fail()
            raise
        if tee is not None:
            tee.finish()

    def _fetch(self, desc: Descriptor, layer: str | None, tee: Tee | None) -> None:
        digest = desc.digest
        ingest = _ingest_ref(digest)
        for _ in range(2):
            with self.content.writer(
                ingest,
                expected=digest,
                total=desc.size,
                stall=WRITER_STALL,
                on_wait=self._waiting(layer or digest.short),
            ) as writer:
                if writer.present:
                    # The writer we waited for made it (a parallel pull, or this layer listed
                    # twice): use its result.
                    writer.abort()
                    if tee is not None:
                        self._feed_present(digest, tee)
                    break
                if tee is not None and writer.offset:
                    writer.abort()  # bytes the stream would not carry: fetch them again
                    continue
                offset = writer.offset
                if offset < desc.size:
                    with self.client.get_blob(self.repo, digest, offset=offset) as stream:
                        if stream.offset != offset:
                            # The registry ignored the Range: start again from its first byte.
                            writer.abort()
                            continue
                        if stream.total is not None and stream.total != desc.size:
                            raise SizeMismatch(
                                f"blob {digest}: the registry sends {stream.total} bytes,"
                                f" the manifest says {desc.size}"
                            )
                        if layer is not None:
                            self.events.start(layer, DOWNLOADING, desc.size)
                            if offset:
                                self.events.advance(layer, offset)
                        for chunk in stream.iter_chunks(_CHUNK):
                            if self.cancel.is_set():
                                raise _Cancelled
                            writer.write(chunk)
                            if tee is not None:
                                tee.feed(chunk)
                            if layer is not None:
                                self.events.advance(layer, len(chunk))
                if writer.offset != desc.size:
                    # Kept: the next attempt asks for the rest.
                    raise SizeMismatch(
                        f"blob {digest}: truncated: got {writer.offset} of {desc.size} bytes"
                    )
                if layer is not None:
                    self.events.status(layer, VERIFYING)
                got = writer.digest()
                if got != digest:
                    writer.abort()
                    raise DigestMismatch(f"blob {digest}: digest mismatch (got {got})")
                writer.commit()
                break
        else:
            raise SizeMismatch(f"blob {digest}: the registry does not honour Range requests")
        if layer is not None:
            self.events.status(layer, DOWNLOAD_COMPLETE)

    def _waiting(self, layer: str) -> Callable[[int], None]:
        """An ``on_wait`` that says ``Waiting`` once (the plain output prints every status)."""
        said = False

        def on_wait(_: int) -> None:
            nonlocal said
            if not said:
                said = True
                self.events.status(layer, WAITING)

        return on_wait

    def _feed_present(self, digest: Digest, tee: Tee) -> None:
        """Hand a blob already in the store to the extraction waiting on ``tee``."""
        with self.content.open(digest) as f:
            while chunk := f.read(_CHUNK):
                if self.cancel.is_set():
                    raise _Cancelled
                tee.feed(chunk)


def _ingest_ref(digest: Digest) -> str:
    return f"pull-{digest}"
