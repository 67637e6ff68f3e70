"""Metadata-only steps (ENV, LABEL, CMD...) cost the same whatever the store holds: each stores
its image and cache record, but nothing lists every image or every blob (which made a build of
N steps O(N^2): 10,000 ENV lines ran for 15 minutes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from strata.builder.batch import StepBatch
from strata.builder.cache import BuildCache
from strata.builder.hold import BuildHold
from strata.builder.images import StepImage, store_step
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.config import History
from tests.conftest import Strata


def _counting(obj: Any, name: str, calls: list[str]) -> None:
    """Count calls of ``obj.name`` (the real method still runs)."""
    real: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)


def test_a_step_lists_neither_images_nor_blobs(st: Strata) -> None:
    root = StoreRoot(st.root)
    images = ImageStore(root)
    base = images.get("debian:bookworm")
    current = StepImage(base, images.config(base), tuple(images.layers(base)), None)
    calls: list[str] = []
    with root.lease() as lease:  # taken once per build, before its steps
        _counting(images, "all", calls)
        _counting(images.content, "walk", calls)
        _counting(images.content, "ingests", calls)
        batch = StepBatch(images, BuildHold(lease), BuildCache(root.db))
        for i in range(40):
            config = current.config
            step = store_step(
                images,
                current,
                config=config,
                history=History(created="2026-01-01T00:00:00Z", created_by=f"ENV N={i}"),
                layer=None,
                top=None,
                # Odd steps stored at once under the lease, even ones queued in a batch.
                lease=lease if i % 2 else None,
                batch=None if i % 2 else batch,
            )
            assert step.image is not None and step.image.intermediate
            batch.flush()
            stored = images.by_manifest(step.image.manifest_digest)
            assert stored is not None
            assert replace(stored, added="") == replace(step.image, added="")
            current = step
    assert calls == []
    root.close()
    history = st("history", "-q", "--no-trunc", str(current.id)).stdout.split()
    assert len(history) >= 41


def test_many_env_lines_build_and_rebuild_from_cache(st: Strata, tmp_path: Path) -> None:
    ctx = tmp_path / "env"
    ctx.mkdir()
    lines = "".join(f"ENV V{i}=value{i}\n" for i in range(300))
    (ctx / "Dockerfile").write_text("FROM debian:bookworm\n" + lines)
    before = len(st("images", "-a", "-q").stdout.split())
    first = st("build", "-q", "-t", "env:many", str(ctx)).stdout.strip()
    # Every step's image is an intermediate image (image ls -a) and a cache record.
    assert len(st("images", "-a", "-q").stdout.split()) == before + 300
    again = st("build", "-t", "env:many", str(ctx)).stdout
    assert again.count("---> Using cache") == 300
    assert first.removeprefix("sha256:")[:12] in again
    env = st("image", "inspect", "-f", "{{json .Config.Env}}", "env:many").stdout
    assert "V299=value299" in env


def _config(st: Strata, ref: str) -> dict[str, Any]:
    import json

    with StoreRoot(st.root) as root:
        images = ImageStore(root)
        data = root.content.read_bytes(images.get(ref).config_digest, limit=1 << 24)
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def test_a_step_on_cached_metadata_steps_keeps_their_stored_history(
    st: Strata, tmp_path: Path
) -> None:
    """Cache hits of metadata steps do not read their configs; a step that then runs on them
    (or a stage built on them) still carries the history they were stored with."""
    ctx = tmp_path / "hits"
    ctx.mkdir()
    head = "FROM debian:bookworm AS one\nENV A=1\nLABEL b=2\nWORKDIR /usr\nUSER root\n"
    (ctx / "Dockerfile").write_text(head)
    st("build", "-q", "-t", "hits:one", str(ctx))
    first = _config(st, "hits:one")
    (ctx / "Dockerfile").write_text(head + "ENV C=3\nFROM one\nENV D=4\n")
    out = st("build", "-t", "hits:two", str(ctx)).stdout
    assert out.count("---> Using cache") == 4
    second = _config(st, "hits:two")
    assert second["history"][: len(first["history"])] == first["history"]
    assert [h["created_by"] for h in second["history"][-2:]] == [
        "/bin/sh -c #(nop)  ENV C=3",
        "/bin/sh -c #(nop)  ENV D=4",
    ]
    assert second["config"]["Env"][-3:] == ["A=1", "C=3", "D=4"]
    assert second["config"]["WorkingDir"] == "/usr"
    assert second["config"]["Labels"] == {"b": "2"}
    # Everything again from the cache: the same image.
    again = st("build", "-q", str(ctx)).stdout.strip()
    assert again == st("image", "inspect", "-f", "{{.Id}}", "hits:two").stdout.strip()
