"""An image's history: its build steps paired with its layers, and what each layer did to files.

`history` is ``docker image history``: one row per config history entry, newest first; entries
that made a layer (``empty_layer`` false) take the image's layers bottom-up, the others are 0 B.
A layer's size is Docker's figure (`content_size`, see `strata.image.layersize`).

`layer_files` goes past Docker: it reads one layer tar and says which files it added, changed
(a lower layer had the path) and deleted (whiteouts and opaque directories), and how many bytes
of lower layers it hides, bytes an image still ships but no container can see. Layers are read
bottom-up, each once, against a `LowerIndex` (path -> size of the layers below).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from strata.digest import Digest
from strata.errors import FormatError, InvalidArgument
from strata.image.layersize import count_layer_size, entry_size
from strata.image.store import Image, ImageLayer, ImageStore
from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT, open_decompressed
from strata.layer.entry import DIRTYPE, display_name
from strata.layer.normalize import clean_name
from strata.layer.tarreader import TarReader
from strata.oci.config import parse_time

DEFAULT_TOP: Final = 5
"""How many of the largest files `layer_files` keeps per kind of change."""

_WHITEOUT: Final = b".wh."
_OPAQUE: Final = b".wh..wh..opq"
# AUFS bookkeeping (``.wh..wh.plnk``, ``.wh..wh.aufs``): not content, skipped as Docker does.
_AUFS_META: Final = b".wh..wh."
_DIR: Final = -1  # LowerIndex marker for a directory (which has no size of its own)


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of ``image history``.

    ``id`` is None where Docker prints ``<missing>``. ``size`` is the layer's size as Docker
    reports it (the bytes of its regular files), 0 for a step that made no layer.
    ``layer_index`` is the position of that layer in the image's layers (bottom first), None
    for an empty step.
    """

    id: Digest | None
    created: datetime | None
    created_by: str
    comment: str
    author: str
    size: int
    empty_layer: bool
    layer_index: int | None


def history(
    images: ImageStore,
    image: Image,
    *,
    sizes: Sequence[int] | None = None,
    ancestors: Mapping[int, Digest] | None = None,
) -> list[HistoryRow]:
    """The rows of ``docker image history IMAGE``, newest first.

    ``sizes`` are the layers' sizes, bottom first; without them each layer is read once for
    Docker's figure, `content_size` (a caller that reads the layers anyway, as ``--files``
    does, passes what it found). The top row carries the image's ID; a row below carries one
    only where ``ancestors`` has it: ``ancestors[k]`` is a local image made of this image's
    first ``k`` history entries (a parent in Docker's sense, which the build cache will know).
    Without it they are ``<missing>``, as Docker shows for images it did not build. More
    non-empty history entries than layers is an error, as in Docker; layers that no history
    entry accounts for are shown on top with blank metadata, where Docker would leave them out.
    """
    config = images.config(image)
    layers = images.layers(image)
    entries = config.history
    made = sum(1 for entry in entries if not entry.empty_layer)
    if made > len(layers):
        raise FormatError(
            f"image {image.id.short}: history has {made} entries that made a layer"
            f" but the image has {len(layers)} layers"
        )
    if sizes is None:
        sizes = []
        for layer in layers:
            if layer.content_size is None:
                # Counted once, then remembered: the next history is instant.
                counted = content_size(images, layer)
                images.record_content_size(layer.blob, counted)
                sizes.append(counted)
            else:
                sizes.append(layer.content_size)
    elif len(sizes) != len(layers):
        raise InvalidArgument(
            f"image {image.id.short}: {len(sizes)} sizes for {len(layers)} layers"
        )
    known = ancestors or {}
    rows: list[HistoryRow] = []
    next_layer = 0
    for position, entry in enumerate(entries, start=1):
        index: int | None = None
        if not entry.empty_layer:
            index = next_layer
            next_layer += 1
        rows.append(
            HistoryRow(
                id=known.get(position),
                created=parse_time(entry.created),
                created_by=entry.created_by or "",
                comment=entry.comment or "",
                author=entry.author or "",
                size=sizes[index] if index is not None else 0,
                empty_layer=entry.empty_layer,
                layer_index=index,
            )
        )
    for index in range(next_layer, len(layers)):
        rows.append(HistoryRow(None, None, "", "", "", sizes[index], False, index))
    rows.reverse()
    if rows:
        rows[0] = replace(rows[0], id=image.id)
    return rows


def content_size(images: ImageStore, layer: ImageLayer) -> int:
    """The size Docker shows for a layer (its ``DiffSize``, see `strata.image.layersize`),
    smaller than the tar by the headers and padding. Reads the layer once."""
    return count_layer_size(images.content, layer.blob)


# -- files per layer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileChange:
    """One path a layer touched.

    ``path`` is absolute; a deleted directory ends in ``/`` and the lower contents an opaque
    directory hides are shown as ``/dir/*``. ``size`` is the layer's own bytes for the path (0
    for a deletion); ``lower_size`` the bytes of lower layers it hides (the file it replaced, or
    everything it deleted); ``files`` how many lower files a deletion removed.
    """

    path: str
    size: int
    lower_size: int = 0
    files: int = 1


@dataclass(frozen=True, slots=True)
class FileGroup:
    """All changes of one kind in a layer: how many, their bytes, and the largest of them."""

    count: int = 0
    size: int = 0
    lower_size: int = 0
    largest: tuple[FileChange, ...] = ()


@dataclass(frozen=True, slots=True)
class LayerFiles:
    """What one layer did to the files of the layers below it.

    ``content_size`` is the sum of the layer's regular-file bytes (what Docker's classic store
    reports as a layer's size); ``hides`` the bytes of lower files that this layer overwrites or
    deletes, each counted once.
    """

    diff_id: Digest
    content_size: int
    added: FileGroup
    changed: FileGroup
    deleted: FileGroup
    hides: int


@dataclass(slots=True)
class LowerIndex:
    """The merged view of the layers read so far: path -> size of each file (-1: directory).

    Start with an empty index and pass it to `layer_files` for each layer, bottom first; each
    call applies its layer on top, as an overlay mount would see it.
    """

    entries: dict[bytes, int] = field(default_factory=dict)


def layer_files(
    images: ImageStore, layer: ImageLayer, lower: LowerIndex, *, top: int = DEFAULT_TOP
) -> LayerFiles:
    """Read ``layer`` once and classify its changes against ``lower``, then apply it to ``lower``.

    Memory holds the path -> size maps of the lower layers and of this one, never file data.
    Whiteouts and opaque directories act on lower layers only, so a path this layer writes
    survives its own whiteouts (OCI image-spec, "Whiteouts"). Names are read as a chroot would
    (``..`` stops at the root); a corrupt tar or stream raises `FormatError` naming the layer.
    """
    source = f"layer {layer.blob}"
    own, whiteouts, opaques, content_size = _read_layer(images, layer, source)
    entries = lower.entries
    sorted_keys: list[bytes] | None = None

    def under(directory: bytes) -> list[bytes]:
        nonlocal sorted_keys
        if sorted_keys is None:
            sorted_keys = sorted(entries)
        return _below(sorted_keys, directory)

    hidden: set[bytes] = set()
    deleted: list[FileChange] = []
    for target in whiteouts:
        below = under(target)
        found = entries.get(target)
        removed = [p for p in below if entries[p] >= 0]
        if found is not None:
            hidden.add(target)
            if found >= 0:
                removed.append(target)
        hidden.update(below)
        shown = _show(target) + ("/" if below or found == _DIR else "")
        deleted.append(FileChange(shown, 0, sum(entries[p] for p in removed), len(removed)))
    for directory in opaques:
        below = under(directory)
        if not below:
            continue  # an opaque directory over nothing hides nothing
        hidden.update(below)
        removed = [p for p in below if entries[p] >= 0]
        shown = (_show(directory) + "/*") if directory else "/*"
        deleted.append(FileChange(shown, 0, sum(entries[p] for p in removed), len(removed)))

    added_count = added_size = 0
    changed: list[FileChange] = []
    for name, size in own.items():
        found = entries.get(name)
        if found is None:
            if size >= 0:
                added_count += 1
                added_size += size
        elif size == _DIR:
            if found >= 0:  # a directory where a lower layer had a file
                hidden.add(name)
                changed.append(FileChange(_show(name) + "/", 0, found))
        elif found == _DIR:  # a file where a lower layer had a directory: its contents go
            below = under(name)
            hidden.add(name)
            hidden.update(below)
            lost = sum(entries[p] for p in below if entries[p] >= 0)
            changed.append(FileChange(_show(name), size, lost))
        else:
            hidden.add(name)
            changed.append(FileChange(_show(name), size, found))

    hides = sum(size for size in (entries[p] for p in hidden) if size >= 0)
    largest_added = heapq.nsmallest(
        top, ((n, s) for n, s in own.items() if s >= 0 and n not in entries), key=_biggest
    )
    result = LayerFiles(
        diff_id=layer.diff_id,
        content_size=content_size,
        added=FileGroup(
            added_count,
            added_size,
            0,
            tuple(FileChange(_show(n), s) for n, s in largest_added),
        ),
        changed=_group(changed, top, by_lower=False),
        deleted=_group(deleted, top, by_lower=True),
        hides=hides,
    )
    for path in hidden:
        del entries[path]
    entries.update(own)
    return result


def files_by_layer(
    images: ImageStore, layers: Sequence[ImageLayer], *, top: int = DEFAULT_TOP
) -> Iterator[LayerFiles]:
    """`layer_files` for each of ``layers`` (bottom first), reading every layer once."""
    lower = LowerIndex()
    for layer in layers:
        yield layer_files(images, layer, lower, top=top)


def _read_layer(
    images: ImageStore, layer: ImageLayer, source: str
) -> tuple[dict[bytes, int], list[bytes], list[bytes], int]:
    """One pass over the tar: its entries (path -> size, -1 for directories), the whiteout
    targets, the opaque directories and the sum of its regular-file bytes."""
    own: dict[bytes, int] = {}
    whiteouts: list[bytes] = []
    opaques: list[bytes] = []
    content_size = 0
    with (
        images.content.open(layer.blob) as blob,
        open_decompressed(blob, limit=DEFAULT_DECOMPRESS_LIMIT, source=source) as stream,
    ):
        for entry in TarReader(stream, source=source):
            content_size += entry_size(entry)  # as `content_size`
            name = clean_name(entry.name)
            if not name or (name.startswith(_AUFS_META) and name != _OPAQUE):
                continue
            parent, _, base = name.rpartition(b"/")
            if base.startswith(_WHITEOUT):
                if base == _OPAQUE:
                    opaques.append(parent)
                elif not base.startswith(_AUFS_META):
                    target = base[len(_WHITEOUT) :]
                    if not target:
                        raise FormatError(f"{source}: whiteout {display_name(name)} names nothing")
                    whiteouts.append(parent + b"/" + target if parent else target)
                continue
            own[name] = _DIR if entry.type == DIRTYPE else entry.size
    return own, whiteouts, opaques, content_size


def _below(keys: list[bytes], directory: bytes) -> list[bytes]:
    """The paths strictly below ``directory`` (``b""``: the root) among the sorted ``keys``."""
    if not directory:
        return keys
    # Every path starting with "dir/" sorts between "dir/" and "dir0" ("0" follows "/").
    low = bisect.bisect_left(keys, directory + b"/")
    high = bisect.bisect_left(keys, directory + b"0")
    return keys[low:high]


def _group(changes: Iterable[FileChange], top: int, *, by_lower: bool) -> FileGroup:
    items = list(changes)
    if by_lower:
        largest = heapq.nsmallest(top, items, key=lambda c: (-c.lower_size, c.path))
    else:
        largest = heapq.nsmallest(top, items, key=lambda c: (-c.size, c.path))
    return FileGroup(
        count=len(items),
        size=sum(c.size for c in items),
        lower_size=sum(c.lower_size for c in items),
        largest=tuple(largest),
    )


def _biggest(item: tuple[bytes, int]) -> tuple[int, bytes]:
    return -item[1], item[0]


def _show(name: bytes) -> str:
    return "/" + display_name(name)
