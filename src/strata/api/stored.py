"""`images`, `history`, `save` and `load`: the images in the store, and archives of them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from strata.api.progress import Progress, ProgressCallback, emitter
from strata.api.values import HistoryEntry, Image, Root, image_store, image_value
from strata.errors import InvalidArgument, NotFound

__all__ = ["Opener", "history", "images", "load", "save"]

Opener = Callable[[], contextlib.AbstractContextManager[BinaryIO]]


def images(*, all: bool = False, root: Root = None) -> list[Image]:
    """The stored images, newest first; ``all`` includes build steps' untagged images."""
    with image_store(root) as store:
        found = store.all()
        if not all:
            found = [i for i in found if i.tags or i.repo_digests or not i.intermediate]
        return [image_value(i, store.root.path) for i in found]


def history(
    image: Image | str,
    *,
    sizes: bool = True,
    files: int | None = None,
    root: Root = None,
) -> list[HistoryEntry]:
    """The steps ``image`` was made by, newest first, as ``strata history``.

    ``sizes=False`` leaves every size 0 and reads no layer (a layer's size is counted once,
    then remembered); ``files=N`` reads every layer once and gives each layer's entry its
    ``files``, with the ``N`` largest changes of each kind.
    """
    from strata.image.history import files_by_layer
    from strata.image.history import history as history_rows

    if files is not None and files < 1:
        raise InvalidArgument(f"invalid files {files}: must be at least 1")
    with image_store(image.root if isinstance(image, Image) and root is None else root) as store:
        found = store.get(str(image))
        per_layer = []
        counted = None
        if files is not None:
            per_layer = list(files_by_layer(store, store.layers(found), top=files))
            counted = [layer.content_size for layer in per_layer]  # each layer is read only once
        elif not sizes:
            counted = [0] * len(store.layers(found))
        rows = history_rows(store, found, sizes=counted, ancestors=store.ancestors(found))
        entries = []
        for row in rows:
            named = store.lookup(str(row.id)) if row.id is not None else None
            index = row.layer_index
            entries.append(
                HistoryEntry(
                    id=str(row.id) if row.id is not None else None,
                    created=row.created,
                    created_by=row.created_by,
                    size=row.size,
                    comment=row.comment,
                    tags=tuple(t.familiar for t in named.tags) if named else (),
                    empty_layer=row.empty_layer,
                    author=row.author,
                    files=per_layer[index] if per_layer and index is not None else None,
                )
            )
        return entries


def save(
    images: Image | str | Sequence[Image | str],
    output: str | os.PathLike[str] | BinaryIO | Opener,
    *,
    format: Literal["docker-archive", "oci-archive"] = "docker-archive",
    root: Root = None,
) -> None:
    """Write ``images`` as one archive to ``output``: a path (written beside it and renamed
    into place once complete), a binary stream, or a callable that opens one (called once,
    when every image is held, so a missing image fails before anything is opened). A name
    adds its tag to the archive."""
    from strata.image.archive import ArchiveFormat
    from strata.image.archive.save import save_images

    chosen = [images] if isinstance(images, Image | str) else list(images)
    names = [str(i) for i in chosen]
    if not names:
        raise InvalidArgument("save: no image given")
    if isinstance(output, str | os.PathLike):
        target = Path(output)

        def opener() -> contextlib.AbstractContextManager[BinaryIO]:
            return replacing(target)

    elif callable(output):
        opener = output
    else:
        stream = output

        def opener() -> contextlib.AbstractContextManager[BinaryIO]:
            return contextlib.nullcontext(stream)

    with image_store(root) as store:
        save_images(store, names, opener, format=ArchiveFormat(format))


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[BinaryIO]:
    """A file beside ``target``, renamed over it when the block ends without an error (so a
    failed write never leaves a partial file); a full disk is `strata.errors.NoSpace`."""
    import tempfile

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
    name: str | None = None,
    root: Root = None,
    progress: ProgressCallback | None = None,
) -> list[Image]:
    """Load every image of an archive (docker-archive, oci-archive; a path may also be an OCI
    layout directory); the images, each reported as a ``loaded`` event with its name (one
    per name; an unnamed image once, with no text). ``name`` is how errors name the source
    (default: the path, or ``-`` for a stream)."""
    from strata.image.load import load_images

    with image_store(root) as store:
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.exists():
                raise NotFound(f"{os.fspath(source)}: no such file or directory")
            loaded = load_images(store, path, name=name or os.fspath(source))
        else:
            loaded = load_images(store, source, name=name or "-")
        emit = emitter(progress)
        result = []
        for found, refs in loaded:
            for text in [ref.familiar for ref in refs] or [""]:
                emit(Progress("loaded", str(found.id), text=text))
            # Read back: the names it has now (a name loaded later in the archive moves a tag).
            result.append(
                image_value(store.by_manifest(found.manifest_digest) or found, store.root.path)
            )
        return result
