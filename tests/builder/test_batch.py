"""Metadata steps written in batches: what a batch leaves on disk, and Docker's rules kept (the
steps before a failing RUN are built and cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import DigestMismatch
from tests.conftest import Strata


def test_put_many_stores_each_blob_and_leaves_no_ingest(tmp_path: Path) -> None:
    content = LocalContentStore(tmp_path / "store")
    blobs = [f"blob {i}".encode() for i in range(20)]
    content.put_bytes(blobs[0])  # one already there
    content.put_many([(data, Digest.of(data)) for data in (*blobs, blobs[3])])
    for data in blobs:
        assert content.read_bytes(Digest.of(data), limit=100) == data
    assert content.ingests() == []
    assert list((tmp_path / "store" / "ingest").iterdir()) == []


def test_put_many_of_blobs_said_missing_replaces_one_that_appeared_with_the_same_bytes(
    tmp_path: Path,
) -> None:
    content = LocalContentStore(tmp_path / "store")
    raced = b"written by another writer meanwhile"
    content.put_bytes(raced)
    content.put_many([(raced, Digest.of(raced)), (b"new", Digest.of(b"new"))], missing=True)
    assert content.read_bytes(Digest.of(raced), limit=100) == raced
    assert content.read_bytes(Digest.of(b"new"), limit=100) == b"new"
    assert content.ingests() == []
    content.verify(Digest.of(raced))  # the replaced blob still hashes to its name


def test_put_many_refuses_a_wrong_digest_and_writes_nothing(tmp_path: Path) -> None:
    content = LocalContentStore(tmp_path / "store")
    good, bad = b"good", b"bad"
    with pytest.raises(DigestMismatch, match="content hashes to"):
        content.put_many([(good, Digest.of(good)), (bad, Digest.of(b"other"))])
    assert not content.exists(Digest.of(good))
    assert content.ingests() == []


@pytest.mark.parametrize(
    ("failing", "error"),
    [
        ("RUN false", "returned a non-zero code: 1"),  # the batch is written before a RUN
        ("WORKDIR /etc/passwd/x", "/etc/passwd: not a directory"),  # and on a failure
    ],
)
def test_steps_before_a_failing_step_are_cached(
    st: Strata, tmp_path: Path, failing: str, error: str
) -> None:
    ctx = tmp_path / "fails"
    ctx.mkdir()
    head = f"FROM debian:bookworm\nENV A=1\nLABEL b=2\nEXPOSE {len(failing)}\n"
    (ctx / "Dockerfile").write_text(head + failing + "\n")
    proc = st("build", str(ctx), check=False)
    assert proc.returncode != 0
    assert error in proc.stderr
    (ctx / "Dockerfile").write_text(head + "RUN true\n")
    out = st("build", str(ctx)).stdout
    assert out.count("---> Using cache") == 3


class _Quiet:
    """Build events nobody reads."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_a_rebuild_leases_its_cache_hits_ahead(
    st: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hit is held before its blobs are read, but the hits to come are leased together
    (`BuildHold.cache_chain`): a rebuild of N metadata steps does not pay N lease commits."""
    from strata.builder.events import BuildOptions
    from strata.builder.executor import Builder
    from strata.image.root import StoreRoot
    from strata.store.leases import Lease

    ctx = tmp_path / "ahead"
    ctx.mkdir()
    lines = "".join(f"ENV V{i}=value{i}\nLABEL l{i}={i}\n" for i in range(150))
    (ctx / "Dockerfile").write_text("FROM debian:bookworm\n" + lines)
    first = st("build", "-q", str(ctx)).stdout.strip()
    commits: list[int] = []
    real = Lease.add_all

    def counted(self: Lease, kind: str, keys: list[str]) -> None:
        commits.append(len(keys))
        real(self, kind, keys)

    monkeypatch.setattr(Lease, "add_all", counted)
    with StoreRoot(st.root) as root:
        result = Builder(root, _Quiet()).build(BuildOptions(context=ctx))
    assert result is not None and result.image_id == first and result.cached == 300
    assert len(commits) <= 6, commits  # the base (3), the hits (300 / 256 + 1)


def test_the_named_image_is_written_again_if_a_prune_took_its_row(
    st: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune between the last batch and the naming removes the final image's row, not its
    blobs (the build holds them): `store_named` writes it again through `ImageStore.write_many`,
    copying nothing and reading no config (a long build's last one is large)."""
    from strata.builder.batch import StepBatch
    from strata.builder.events import BuildOptions
    from strata.builder.executor import Builder
    from strata.image import model, record
    from strata.image.root import StoreRoot

    ctx = tmp_path / "pruned"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM debian:bookworm\nENV P=1\nLABEL pruned=yes\n")
    first = st("build", "-q", str(ctx)).stdout.strip()
    real_flush = StepBatch.flush

    def flush_then_prune(self: StepBatch) -> None:
        real_flush(self)
        with self.images.db.transaction() as conn:  # what a prune of the image's row does
            row = conn.execute("SELECT manifest_digest FROM images WHERE config_digest = ?",
                               (first,)).fetchone()  # fmt: skip
            for table in ("tags", "repo_digests", "images"):
                conn.execute(f"DELETE FROM {table} WHERE manifest_digest = ?", (row[0],))

    def never(*_: object, **__: object) -> None:
        raise AssertionError("nothing should be copied or parsed")

    monkeypatch.setattr(StepBatch, "flush", flush_then_prune)
    monkeypatch.setattr(record, "_copy_layer", never)
    monkeypatch.setattr(model, "parse_config", never)
    with StoreRoot(st.root) as root:
        result = Builder(root, _Quiet()).build(BuildOptions(context=ctx, tags=("pruned:again",)))
    assert result is not None and result.image_id == first
    monkeypatch.undo()
    assert st("image", "inspect", "-f", "{{.Id}} {{.RepoTags}}", "pruned:again").stdout == (
        f"{first} [pruned:again]\n"
    )
    st("rmi", "pruned:again")
