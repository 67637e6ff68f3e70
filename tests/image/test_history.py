"""Image history: Docker's pairing of history entries with layers; what each layer did to files."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
import zstandard

from strata.digest import Digest
from strata.errors import FormatError, InvalidArgument
from strata.image.create import put_blob, store_image
from strata.image.history import (
    FileChange,
    LowerIndex,
    content_size,
    files_by_layer,
    history,
    layer_files,
)
from strata.image.imports import base_config, write_rootfs_layer
from strata.image.root import StoreRoot
from strata.image.store import Image, ImageLayer, ImageStore
from strata.oci.config import History, RootFS, format_time
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import parse_reference

# A tar member: (name, data); data None makes a directory.
Member = tuple[str, bytes | None]

BASE: list[Member] = [
    ("bin", None),
    ("bin/hello", b"h" * 22),
    ("etc", None),
    ("etc/passwd", b"p" * 100),
    ("var", None),
    ("var/cache", None),
    ("var/cache/apt", None),
    ("var/cache/apt/a.bin", b"a" * 3000),
    ("var/cache/apt/b.bin", b"b" * 2000),
    ("tmp", None),
    ("tmp/x", b"x" * 500),
    ("tmp/sub", None),
    ("tmp/sub/y", b"y" * 700),
    ("app", None),
    ("app/old", b"o" * 50),
]
# Adds two files, overwrites /etc/passwd, whites out a file and a directory, and makes /tmp
# opaque while adding a file of its own there.
APP: list[Member] = [
    ("app", None),
    ("app/app.js", b'console.log("Hello from an app")\n'),
    ("app/.wh.old", b""),
    ("etc", None),
    ("etc/passwd", b"q" * 150),
    ("var/cache/.wh.apt", b""),
    ("tmp", None),
    ("tmp/.wh..wh..opq", b""),
    ("tmp/new", b"n" * 10),
]
BASE_BYTES = 22 + 100 + 3000 + 2000 + 500 + 700 + 50
APP_BYTES = 33 + 150 + 10
APP_HIDES = 100 + 5000 + 1200 + 50
ADD_BY = "/bin/sh -c #(nop) ADD file:07cdbabf782942af0fa2e9c5ef6b6e8ad1d2de8a4b2c in / "
CMD_BY = '/bin/sh -c #(nop)  CMD ["node", "app.js"]'
RUN_BY = "/bin/sh -c apt-get update &&\tapt-get install -y nodejs && rm -rf /var/cache/apt"


def tar_bytes(members: Sequence[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def store_layers(images: ImageStore, *layers: Sequence[Member]) -> list[ImageLayer]:
    with images.operation() as lease:
        return [
            write_rootfs_layer(images, lease, io.BytesIO(tar_bytes(m)), name=f"layer{i}")
            for i, m in enumerate(layers)
        ]


def raw_layer(images: ImageStore, blob: bytes, diff_id: Digest | None = None) -> ImageLayer:
    """A layer blob stored as given (compressed, or hostile), not normalised."""
    with images.operation() as lease:
        digest = put_blob(images, lease, blob)
    return ImageLayer(digest, OCI_LAYER, diff_id or digest, len(blob))


def make_image(
    images: ImageStore,
    layers: Sequence[ImageLayer],
    entries: Sequence[History],
    name: str = "sample-app",
) -> Image:
    config = replace(
        base_config(datetime.now(UTC)),
        rootfs=RootFS("layers", tuple(layer.diff_id for layer in layers)),
        history=tuple(entries),
    )
    with images.operation() as lease:
        return store_image(
            images, lease, config=config, layers=layers, names=[parse_reference(name)]
        )


def sample_entries(now: datetime) -> list[History]:
    """Docker's shape: an ADD and metadata-only steps, then a RUN and a CMD (oldest first)."""
    old = format_time(now - timedelta(days=40))
    new = format_time(now - timedelta(hours=2))
    return [
        History(created=old, created_by=ADD_BY),
        History(created=old, created_by="/bin/sh -c #(nop)  LABEL maintainer=x", empty_layer=True),
        History(created=old, created_by='/bin/sh -c #(nop)  CMD ["/bin/bash"]', empty_layer=True),
        History(created=new, created_by=RUN_BY, comment="Add app", author="dev"),
        History(created=new, created_by=CMD_BY, empty_layer=True),
    ]


def build_sample(root: Path, now: datetime | None = None) -> Image:
    """The two-layer image with metadata-only steps that the CLI tests use too."""
    with StoreRoot(root) as store:
        images = ImageStore(store)
        layers = store_layers(images, BASE, APP)
        return make_image(images, layers, sample_entries(now or datetime.now(UTC)))


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageStore]:
    with StoreRoot(tmp_path / "store") as root:
        yield ImageStore(root)


# -- history --------------------------------------------------------------------------------


def test_rows_pair_history_with_layers_as_docker(images: ImageStore) -> None:
    layers = store_layers(images, BASE, APP)
    now = datetime.now(UTC)
    image = make_image(images, layers, sample_entries(now))
    rows = history(images, image)
    assert [r.created_by for r in rows] == [
        CMD_BY,
        RUN_BY,
        '/bin/sh -c #(nop)  CMD ["/bin/bash"]',
        "/bin/sh -c #(nop)  LABEL maintainer=x",
        ADD_BY,
    ]
    # Non-empty entries take the layers bottom-up; metadata steps are 0 B.
    assert [r.layer_index for r in rows] == [None, 1, None, None, 0]
    assert [r.size for r in rows] == [0, APP_BYTES, 0, 0, BASE_BYTES]
    assert [r.empty_layer for r in rows] == [True, False, True, True, False]
    # Only the top row has an ID; the rest are Docker's <missing>.
    assert [r.id for r in rows] == [image.id, None, None, None, None]
    assert rows[1].comment == "Add app" and rows[1].author == "dev"
    assert rows[1].created is not None
    assert abs(rows[1].created - (now - timedelta(hours=2))) < timedelta(seconds=1)


def test_size_is_dockers_figure_the_bytes_of_regular_files(images: ImageStore) -> None:
    base, app = store_layers(images, BASE, APP)
    assert content_size(images, base) == BASE_BYTES  # Docker shows 6.37kB for this layer
    assert content_size(images, app) == APP_BYTES  # and 193B for this one
    assert base.size > BASE_BYTES  # the tar adds headers and padding


def test_given_sizes_are_used_instead_of_reading_layers(images: ImageStore) -> None:
    layers = store_layers(images, BASE, APP)
    image = make_image(images, layers, sample_entries(datetime.now(UTC)))
    rows = history(images, image, sizes=[7, 8])
    assert [r.size for r in rows] == [0, 8, 0, 0, 7]
    with pytest.raises(InvalidArgument, match="1 sizes for 2 layers"):
        history(images, image, sizes=[7])


def test_ancestors_put_ids_on_their_rows(images: ImageStore) -> None:
    layers = store_layers(images, BASE, APP)
    image = make_image(images, layers, sample_entries(datetime.now(UTC)))
    parent = Digest.of(b"a parent image made of the first three steps")
    rows = history(images, image, ancestors={3: parent})
    assert [r.id for r in rows] == [image.id, None, parent, None, None]


def test_more_layer_entries_than_layers_is_refused(images: ImageStore) -> None:
    layers = store_layers(images, BASE)
    image = make_image(images, layers, [History(created_by="one"), History(created_by="two")])
    with pytest.raises(FormatError, match="history has 2 entries that made a layer but the image"):
        history(images, image)


def test_layers_without_entries_are_shown_on_top(images: ImageStore) -> None:
    layers = store_layers(images, BASE, APP)
    image = make_image(
        images, layers, [History(created_by="one"), History(created_by="x", empty_layer=True)]
    )
    rows = history(images, image)
    assert [(r.created_by, r.layer_index, r.size) for r in rows] == [
        ("", 1, APP_BYTES),
        ("x", None, 0),
        ("one", 0, BASE_BYTES),
    ]
    assert rows[0].id == image.id and rows[0].created is None
    no_history = make_image(images, layers, [], name="bare")
    assert [r.layer_index for r in history(images, no_history)] == [1, 0]


# -- files per layer ------------------------------------------------------------------------


def test_base_layer_adds_everything(images: ImageStore) -> None:
    (base,) = store_layers(images, BASE)
    lower = LowerIndex()
    files = layer_files(images, base, lower, top=3)
    assert files.diff_id == base.diff_id
    assert files.content_size == BASE_BYTES
    assert (files.added.count, files.added.size) == (7, BASE_BYTES)
    assert files.added.largest == (
        FileChange("/var/cache/apt/a.bin", 3000),
        FileChange("/var/cache/apt/b.bin", 2000),
        FileChange("/tmp/sub/y", 700),
    )
    assert files.changed.count == files.deleted.count == files.hides == 0
    assert lower.entries[b"etc/passwd"] == 100
    assert lower.entries[b"var/cache/apt"] == -1  # a directory


def test_upper_layer_adds_changes_deletes_and_hides(images: ImageStore) -> None:
    base, app = store_layers(images, BASE, APP)
    lower = LowerIndex()
    layer_files(images, base, lower)
    files = layer_files(images, app, lower)
    assert files.content_size == APP_BYTES
    assert (files.added.count, files.added.size) == (2, 43)
    assert files.added.largest == (FileChange("/app/app.js", 33), FileChange("/tmp/new", 10))
    assert (files.changed.count, files.changed.size, files.changed.lower_size) == (1, 150, 100)
    assert files.changed.largest == (FileChange("/etc/passwd", 150, 100),)
    # A whiteout of a directory, an opaque directory (its lower contents) and a file.
    assert files.deleted.count == 3
    assert files.deleted.lower_size == 6250
    assert files.deleted.largest == (
        FileChange("/var/cache/apt/", 0, 5000, 2),
        FileChange("/tmp/*", 0, 1200, 2),
        FileChange("/app/old", 0, 50, 1),
    )
    assert files.hides == APP_HIDES
    # The index is now the merged view: overlay's result of the two layers.
    assert {p: s for p, s in lower.entries.items() if s >= 0} == {
        b"bin/hello": 22,
        b"etc/passwd": 150,
        b"tmp/new": 10,
        b"app/app.js": 33,
    }
    assert b"var/cache/apt" not in lower.entries
    assert b"tmp/sub" not in lower.entries and b"tmp" in lower.entries


def test_top_limits_each_kind(images: ImageStore) -> None:
    base, app = store_layers(images, BASE, APP)
    lower = LowerIndex()
    layer_files(images, base, lower, top=1)
    files = layer_files(images, app, lower, top=1)
    assert [len(g.largest) for g in (files.added, files.changed, files.deleted)] == [1, 1, 1]
    assert files.deleted.count == 3  # counts and bytes still cover everything
    assert files.hides == APP_HIDES


def test_whiteouts_act_on_lower_layers_only(images: ImageStore) -> None:
    """A path the layer writes survives the layer's own whiteout and opaque marker."""
    base, upper = store_layers(
        images,
        BASE,
        [
            ("etc/.wh.passwd", b""),
            ("etc/passwd", b"new" * 10),
            ("var/cache/apt/.wh..wh..opq", b""),
            ("var/cache/apt/c.bin", b"c" * 5),
        ],
    )
    lower = LowerIndex()
    layer_files(images, base, lower)
    files = layer_files(images, upper, lower)
    assert lower.entries[b"etc/passwd"] == 30
    assert lower.entries[b"var/cache/apt/c.bin"] == 5
    assert b"var/cache/apt/a.bin" not in lower.entries
    # passwd is hidden once although both rewritten and whited out.
    assert files.hides == 100 + 5000


def test_type_changes_hide_what_they_replace(images: ImageStore) -> None:
    base, upper = store_layers(
        images,
        BASE,
        [("tmp/sub", b"now a file"), ("app/old", None), ("app/old/inside", b"i")],
    )
    lower = LowerIndex()
    layer_files(images, base, lower)
    files = layer_files(images, upper, lower)
    assert set(files.changed.largest) == {
        FileChange("/tmp/sub", 10, 700),  # a file replaces a directory and its contents
        FileChange("/app/old/", 0, 50),  # a directory replaces a file
    }
    assert files.hides == 750
    assert b"tmp/sub/y" not in lower.entries
    assert lower.entries[b"app/old"] == -1


def test_aufs_metadata_is_not_content_of_the_view(images: ImageStore) -> None:
    layer = raw_layer(
        images, tar_bytes([(".wh..wh.plnk", None), (".wh..wh.plnk/1.2", b"zz"), ("a", b"a")])
    )
    lower = LowerIndex()
    files = layer_files(images, layer, lower)
    assert lower.entries == {b"a": 1}
    assert files.added.count == 1
    # Docker still counts the bytes of every member in the layer's size.
    assert files.content_size == content_size(images, layer) == 3


def test_whiteout_of_nothing_and_root_opaque(images: ImageStore) -> None:
    base, upper = store_layers(
        images, BASE, [(".wh..wh..opq", b""), ("etc/.wh.missing", b""), ("fresh", b"f")]
    )
    lower = LowerIndex()
    layer_files(images, base, lower)
    files = layer_files(images, upper, lower)
    assert FileChange("/etc/missing", 0, 0, 0) in files.deleted.largest
    assert files.deleted.largest[0] == FileChange("/*", 0, BASE_BYTES, 7)
    assert files.hides == BASE_BYTES
    assert lower.entries == {b"fresh": 1}


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_layers_are_read(images: ImageStore, compress: str) -> None:
    plain = tar_bytes(APP)
    blob = gzip.compress(plain, mtime=0) if compress == "gzip" else zstandard.compress(plain)
    layer = raw_layer(images, blob, Digest.of(plain))
    assert content_size(images, layer) == APP_BYTES
    files = layer_files(images, layer, LowerIndex())
    assert files.added.count == 3  # nothing below: passwd is new too
    assert [c.path for c in files.deleted.largest] == ["/app/old", "/var/cache/apt"]


def test_hostile_and_corrupt_layers_are_one_line_errors(images: ImageStore) -> None:
    # ``..`` stops at the root, as containerd and Docker apply such a layer: it adds /outside.
    climbing = raw_layer(images, tar_bytes([("../outside", b"x")]))
    assert layer_files(images, climbing, LowerIndex()).added.largest == (FileChange("/outside", 1),)
    empty_whiteout = raw_layer(images, tar_bytes([("etc/.wh.", b"")]))
    with pytest.raises(FormatError, match="whiteout etc/.wh. names nothing"):
        layer_files(images, empty_whiteout, LowerIndex())
    truncated = raw_layer(images, tar_bytes(BASE)[:700])
    with pytest.raises(FormatError, match="truncated tar") as caught:
        content_size(images, truncated)
    assert "\n" not in str(caught.value)


def test_each_layer_is_read_once(images: ImageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = store_layers(images, BASE, APP, [("z", b"z")])
    opened: list[Digest] = []
    real_open = images.content.open

    def counting_open(digest: Digest) -> BinaryIO:
        opened.append(digest)
        return real_open(digest)

    monkeypatch.setattr(images.content, "open", counting_open)
    results = list(files_by_layer(images, layers))
    assert opened == [layer.blob for layer in layers]
    assert [r.content_size for r in results] == [BASE_BYTES, APP_BYTES, 1]
