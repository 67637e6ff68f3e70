"""The build cache without a build: `StepKey`, `BuildCache` and the miss explanations.

Records point at images (a foreign key), so each test records small random images
(`tests.randomimage`) in a store on a tmp path; nothing is unpacked and nothing runs. The clock
of the cache is a fake one, so "most recently used" is a matter of order, not of time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import strata.builder.cache as cache_module
from strata.builder.cache import RULES, BuildCache, CacheRecord, StepKey
from strata.builder.context.sums import explain_changes
from strata.builder.explain import (
    args_changes,
    explain_miss,
    short_id,
    short_text,
    stage_rebuilds,
    unplannable,
)
from strata.dockerfile.commands import Add, Copy
from strata.dockerfile.instructions import parse_instructions
from strata.dockerfile.parser import parse
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.runtime.imageusers import image_users
from tests.randomimage import random_image, record_image

PARENT = "sha256:" + "a" * 64
OTHER_PARENT = "sha256:" + "c" * 64
SOURCES = "sha256:" + "b" * 64


@pytest.fixture
def images(tmp_path: Path) -> ImageStore:
    return ImageStore(StoreRoot(tmp_path / "root"))


@pytest.fixture
def cache(images: ImageStore) -> BuildCache:
    return BuildCache(images.db)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The cache's clock ticks one second per reading; the readings so far are yielded."""
    ticks = (f"2024-01-01T00:00:{n:02d}.000000Z" for n in itertools.count())
    readings: list[str] = []

    def now() -> str:
        readings.append(next(ticks))
        return readings[-1]

    monkeypatch.setattr(cache_module, "now_rfc3339", now)
    yield readings


_seeds = itertools.count(100)


def made(images: ImageStore) -> str:
    """The manifest digest of a new intermediate image in the store (as a build step's)."""
    image = random_image(1, seed=next(_seeds), files=1, size=8)
    return str(record_image(images, image, intermediate=True).manifest_digest)


def key(instruction: str = "RUN true", **parts: Any) -> StepKey:
    fields: dict[str, Any] = {"parent": PARENT, "args": {}, "original": instruction}
    fields.update(parts)
    return StepKey(instruction=instruction, **fields)


# -- StepKey ---------------------------------------------------------------------------------


def test_step_key_digest_is_pinned() -> None:
    # Every cached image of every store is found by these digests: a change to how a key is
    # hashed must be deliberate (and bump RULES), never a side effect.
    assert RULES == 2
    assert StepKey("scratch", "RUN true", {}).digest == (
        "sha256:aa26c066663f92a4272896613fadd49cf9df0de27352868c9d0da0172f1a924d"
    )
    full = StepKey(PARENT, "RUN echo $V", {"V": "1"}, sources=SOURCES, epoch=0)
    assert full.digest == "sha256:9662cacb28c294db91fd4cda33bd85d87cc2d1ddf7190c27821043173e5c3243"
    # ... which is the sha256 of the parts as compact, sorted JSON.
    doc = {
        "args": {"V": "1"},
        "epoch": 0,
        "instruction": "RUN echo $V",
        "parent": PARENT,
        "rules": 2,
        "sources": SOURCES,
    }
    text = json.dumps(doc, separators=(",", ":"))
    assert full.digest == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_every_part_of_a_step_key_changes_it() -> None:
    base = StepKey(PARENT, "RUN make", {"V": "1"}, sources=SOURCES, epoch=10)
    variants = [
        replace(base, parent=OTHER_PARENT),
        replace(base, parent="scratch"),
        replace(base, instruction="RUN make install"),
        replace(base, args={"V": "2"}),
        replace(base, args={"V": "1", "W": "1"}),
        replace(base, args={}),
        replace(base, args={"v": "1"}),
        replace(base, sources=None),
        replace(base, sources="sha256:" + "d" * 64),
        replace(base, epoch=None),
        replace(base, epoch=0),
        replace(base, epoch=11),
    ]
    digests = {v.digest for v in variants}
    assert base.digest not in digests
    assert len(digests) == len(variants)  # and no two variants collide


def test_what_does_not_change_a_step_key() -> None:
    base = StepKey(PARENT, "RUN echo $A $B", {"A": "1", "B": "2"}, original="RUN echo $A $B")
    assert replace(base, original="RUN  echo ${A} ${B}").digest == base.digest
    assert replace(base, args={"B": "2", "A": "1"}).digest == base.digest
    assert StepKey(PARENT, "RUN echo $A $B", {"A": "1", "B": "2"}).digest == base.digest


def test_new_rules_change_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [StepKey("scratch", "RUN true", {}), key(), key(sources=SOURCES, epoch=1)]
    before = [k.digest for k in keys]
    monkeypatch.setattr(cache_module, "RULES", RULES + 1)
    after = [k.digest for k in keys]
    assert not set(before) & set(after)


# -- BuildCache ------------------------------------------------------------------------------


def test_lookup_misses_then_finds_what_was_recorded(
    images: ImageStore, cache: BuildCache, clock: list[str]
) -> None:
    step = key("COPY a.txt /", args={"V": "1"}, sources=SOURCES, original="COPY a.txt /")
    assert cache.lookup(step) is None
    image = made(images)
    table = {"digest": SOURCES, "files": {"a.txt": "f 0644 0:0 2 abc"}}
    cache.record(step, image, table)
    assert cache.lookup(step, touch=False) == CacheRecord(
        key=step.digest,
        parent=PARENT,
        instruction="COPY a.txt /",
        original="COPY a.txt /",
        image=image,
        args={"V": "1"},
        sources=table,
        used=clock[0],
    )
    # Another key (another arg value) is another step.
    assert cache.lookup(replace(step, args={"V": "2"})) is None


def test_lookup_touches_unless_told_not_to(
    images: ImageStore, cache: BuildCache, clock: list[str]
) -> None:
    step = key()
    cache.record(step, made(images))
    recorded = clock[-1]
    found = cache.lookup(step, touch=False)
    assert found is not None and found.used == recorded
    assert len(clock) == 1  # no reading: nothing was marked
    again = cache.lookup(step, touch=False)
    assert again is not None and again.used == recorded
    # A touching lookup marks the record used now; it returns the row as it was read.
    touched = cache.lookup(step)
    assert touched is not None and touched.used == recorded
    after = cache.lookup(step, touch=False)
    assert after is not None and after.used == clock[-1] != recorded


def test_mark_used_in_the_callers_transaction(
    images: ImageStore, cache: BuildCache, clock: list[str]
) -> None:
    first, second, third = key("RUN 1"), key("RUN 2"), key("RUN 3")
    for step in (first, second, third):
        cache.record(step, made(images))
    with images.db.transaction() as conn:
        BuildCache.mark_used(conn, [first.digest, third.digest])
    marked = clock[-1]
    used = {
        s.original: r.used for s in (first, second, third) if (r := cache.lookup(s, touch=False))
    }
    assert used["RUN 1"] == used["RUN 3"] == marked
    assert used["RUN 2"] != marked
    # Rolled back with the caller's transaction.
    with pytest.raises(RuntimeError), images.db.transaction() as conn:
        BuildCache.mark_used(conn, [second.digest])
        raise RuntimeError("the batch failed")
    found = cache.lookup(second, touch=False)
    assert found is not None and found.used == used["RUN 2"]


def test_write_records_a_batch_in_one_transaction(images: ImageStore, cache: BuildCache) -> None:
    steps = [key(f"RUN {n}") for n in range(3)]
    targets = [made(images) for _ in steps]
    with pytest.raises(RuntimeError), images.db.transaction() as conn:
        BuildCache.write(conn, [(s, t, None) for s, t in zip(steps, targets, strict=True)])
        raise RuntimeError("a later step of the batch failed")
    assert all(cache.lookup(s) is None for s in steps)
    with images.db.transaction() as conn:
        BuildCache.write(conn, [(s, t, None) for s, t in zip(steps, targets, strict=True)])
    assert [r.image for s in steps if (r := cache.lookup(s))] == targets


def test_a_record_must_point_at_a_recorded_image(cache: BuildCache) -> None:
    # The foreign key refuses it (today as SQLite's own error: callers record an image they
    # have just written, in the same transaction).
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        cache.record(key(), "sha256:" + "e" * 64)
    assert cache.lookup(key()) is None


def test_recording_a_key_again_replaces_its_image(images: ImageStore, cache: BuildCache) -> None:
    step = key()
    old, new = made(images), made(images)
    cache.record(step, old)
    cache.record(step, new)
    found = cache.lookup(step)
    assert found is not None and found.image == new
    assert cache.images() == {new}


def test_children_and_by_instruction_most_recently_used_first(
    images: ImageStore, cache: BuildCache, clock: list[str]
) -> None:
    one, two = key("RUN one"), key("RUN two")
    elsewhere = key("RUN one", parent=OTHER_PARENT)
    for step in (one, two, elsewhere):
        cache.record(step, made(images))
    assert [r.original for r in cache.children(PARENT)] == ["RUN two", "RUN one"]
    assert cache.lookup(one) is not None  # used now: first again
    assert [r.original for r in cache.children(PARENT)] == ["RUN one", "RUN two"]
    assert [r.parent for r in cache.children(OTHER_PARENT)] == [OTHER_PARENT]
    assert cache.children("sha256:" + "f" * 64) == []
    # By instruction (as expanded), across parents.
    assert [r.parent for r in cache.by_instruction("RUN one")] == [PARENT, OTHER_PARENT]
    assert cache.lookup(elsewhere) is not None
    assert [r.parent for r in cache.by_instruction("RUN one")] == [OTHER_PARENT, PARENT]
    assert cache.by_instruction("RUN three") == []


def test_by_instruction_keeps_the_twenty_most_recent(
    images: ImageStore, cache: BuildCache, clock: list[str]
) -> None:
    image = made(images)
    steps = [key("RUN x", parent=f"sha256:{n:064x}") for n in range(25)]
    for step in steps:
        cache.record(step, image)
    found = cache.by_instruction("RUN x")
    assert [r.parent for r in found] == [s.parent for s in reversed(steps)][:20]


def test_images_prune_and_removal_of_an_image(images: ImageStore, cache: BuildCache) -> None:
    first, second = made(images), made(images)
    cache.record(key("RUN 1"), first)
    cache.record(key("RUN 2"), first)
    cache.record(key("RUN 3"), second)
    assert cache.images() == {first, second}
    # Removing an image removes its records with it.
    images.remove(second, users=image_users)
    assert cache.lookup(key("RUN 3")) is None
    assert cache.images() == {first}
    cache.set_lineage("ctx", [{"original": "RUN 1"}])
    assert cache.prune() == [first]
    assert cache.images() == set() and cache.children(PARENT) == []
    assert cache.lineage("ctx") == []
    # The images stay: prune leaves them for the caller to remove if unused.
    assert str(images.get(first).manifest_digest) == first
    assert cache.prune() == []


def test_lineage_round_trip(cache: BuildCache) -> None:
    assert cache.lineage("unknown") == []
    steps: list[dict[str, Any]] = [
        {"original": "FROM debian", "parent": "scratch"},
        {"original": "RUN make", "parent": PARENT},
    ]
    cache.set_lineage("dockerfile@ctx", steps)
    assert cache.lineage("dockerfile@ctx") == steps
    cache.set_lineage("dockerfile@ctx", steps[:1])
    assert cache.lineage("dockerfile@ctx") == steps[:1]
    assert cache.lineage("other") == []


@pytest.mark.parametrize("stored", ["{not json", '{"steps": []}', '"text"'])
def test_a_lineage_that_is_not_a_list_reads_as_none(cache: BuildCache, stored: str) -> None:
    cache.set_lineage("id", [])
    with cache.db.transaction() as conn:  # as an older or damaged store may hold it
        conn.execute("UPDATE build_lineage SET steps = ? WHERE identity = 'id'", (stored,))
    assert cache.lineage("id") == []


# -- explanations ----------------------------------------------------------------------------


def explain(
    cache: BuildCache,
    step: StepKey,
    *,
    parent_step: int | None = None,
    previous: dict[str, Any] | None = None,
    sources: dict[str, Any] | None = None,
) -> str:
    return explain_miss(
        step,
        cache=cache,
        parent_step=parent_step,
        previous=previous,
        sources=sources,
        explain_sources=explain_changes,
    )


def test_no_earlier_build(cache: BuildCache) -> None:
    assert explain(cache, key()) == "no earlier build of this step"


def test_a_parent_built_now_comes_first(images: ImageStore, cache: BuildCache) -> None:
    step = key("RUN make", args={"V": "1"})
    cache.record(replace(step, args={"V": "0"}), made(images))
    previous = {"original": "RUN other", "parent": OTHER_PARENT}
    said = explain(cache, step, parent_step=4, previous=previous)
    assert said == "parent layer changed (step 4)"


def test_args_changed(images: ImageStore, cache: BuildCache, clock: list[str]) -> None:
    step = key("RUN echo $A $B $C", args={"A": "1", "B": "2", "C": "3"})
    cache.record(replace(step, args={"A": "1", "B": "1", "D": "4"}), made(images))
    assert explain(cache, replace(step, args={"A": "1", "B": "1", "D": "5"})) == (
        "build arg D changed 4 → 5"
    )
    assert explain(cache, step) == (
        "build arg B changed 1 → 2; build arg C set to 3; build arg D no longer set (was 4)"
    )
    # The most recently used earlier build is the one compared.
    cache.record(replace(step, args={"A": "0", "B": "2", "C": "3"}), made(images))
    assert explain(cache, step) == "build arg A changed 0 → 1"


def test_instruction_expands_differently(images: ImageStore, cache: BuildCache) -> None:
    original = "RUN echo $V"
    cache.record(key("RUN echo 1", original=original), made(images))
    assert explain(cache, key("RUN echo 2", original=original)) == (
        "instruction expands differently (was: RUN echo 1)"
    )
    # Cut to 60 characters, the last an ellipsis; runs of white space as one.
    long = "RUN  install " + " ".join(f"package{n}" for n in range(10))
    cache.record(key(long, original="RUN $PACKAGES"), made(images))
    said = explain(cache, key("RUN install", original="RUN $PACKAGES"))
    assert said == (
        "instruction expands differently (was: RUN install package0 package1 package2 package3"
        " package4 pa…)"
    )


def test_sources_changed_with_their_file_table(images: ImageStore, cache: BuildCache) -> None:
    old = {"a.txt": "f 0644 0:0 3 aaa", "b.txt": "f 0644 0:0 3 bbb", "gone": "f 0644 0:0 1 g"}
    new = {"a.txt": "f 0644 0:0 3 AAA", "b.txt": "f 0755 0:0 3 bbb", "c.txt": "f 0644 0:0 1 c"}
    step = key("COPY . /app", sources=SOURCES)
    cache.record(replace(step, sources="sha256:" + "0" * 64), made(images), {"files": old})
    assert explain(cache, step, sources={"digest": SOURCES, "files": new}) == (
        "a.txt changed (content), b.txt changed (mode 0644 → 0755), c.txt added and 1 more"
    )
    # The same files, yet another digest (as a source list reordered): said plainly.
    assert explain(cache, step, sources={"digest": SOURCES, "files": old}) == "sources changed"
    # No table from the earlier build (an older store): nothing more to compare.
    other = key("COPY b /b", sources=SOURCES)
    cache.record(replace(other, sources="sha256:" + "1" * 64), made(images), None)
    assert explain(cache, other, sources={"files": new}) == "no earlier build of this step"


def test_epoch_alone_is_not_named(images: ImageStore, cache: BuildCache) -> None:
    # Records do not keep SOURCE_DATE_EPOCH: a miss made by it alone finds an earlier build
    # that matches in every part it can compare, and says there is none.
    step = key("RUN make", epoch=1)
    cache.record(replace(step, epoch=2), made(images))
    assert cache.lookup(step) is None
    previous = {"original": "RUN make", "parent": PARENT}
    assert explain(cache, step, previous=previous) == "no earlier build of this step"


def test_the_last_build_of_this_dockerfile(images: ImageStore, cache: BuildCache) -> None:
    step = key("RUN make", original="RUN make")
    # Earlier builds on this parent of other instructions are not this step.
    cache.record(key("RUN other"), made(images))
    said = explain(cache, step, previous={"original": "RUN make -j2", "parent": PARENT})
    assert said == "instruction changed (was: RUN make -j2)"
    said = explain(cache, step, previous={"original": "RUN make", "parent": OTHER_PARENT})
    assert said == "parent image changed (was cccccccccccc)"
    said = explain(cache, step, previous={"original": "RUN make", "parent": PARENT})
    assert said == "no earlier build of this step"
    # The instruction first, and shortened on the one line.
    long = "RUN " + "x" * 80
    said = explain(cache, step, previous={"original": long, "parent": OTHER_PARENT})
    assert said == f"instruction changed (was: RUN {'x' * 55}…)"


def test_a_sibling_that_matches_outranks_the_lineage(images: ImageStore, cache: BuildCache) -> None:
    step = key("RUN make", args={"V": "2"})
    cache.record(replace(step, args={"V": "1"}), made(images))
    previous = {"original": "RUN make", "parent": OTHER_PARENT}
    assert explain(cache, step, previous=previous) == "build arg V changed 1 → 2"


def test_short_texts() -> None:
    assert short_text("RUN  apt-get update \\\n   && apt-get install -y x") == (
        "RUN apt-get update \\ && apt-get install -y x"
    )
    exact = "RUN " + "y" * 56
    assert short_text(exact) == exact
    assert short_text(exact + "z") == "RUN " + "y" * 55 + "…"
    assert len(short_text("RUN " + "z" * 500)) == 60
    assert short_id("sha256:0123456789abcdef") == "0123456789ab"
    assert short_id("0123456789abcdef") == "0123456789ab"
    assert stage_rebuilds("builder", 3) == "depends on stage 'builder', which rebuilds (step 3)"
    assert args_changes({"A": "1"}, {"A": "1"}) == []
    assert args_changes({"B": "x", "A": "1"}, {"A": "2", "C": ""}) == [
        "build arg A changed 1 → 2",
        "build arg B no longer set (was x)",
        "build arg C set to ",
    ]


def copying(line: str) -> Copy | Add:
    """The COPY or ADD instruction of one Dockerfile line."""
    (step,) = parse_instructions(parse(line + "\n"))
    assert isinstance(step, Copy | Add)
    return step


def test_unplannable_in_a_dry_run() -> None:
    def expand(text: str) -> str:
        return text.replace("$STAGE", "builder").replace("$USER", "app")

    dirty = {"builder": 3, "1": 5, "clean": None}
    # A --from stage that rebuilds (named, by index, through an arg; matched case-blind and
    # named as written).
    for line, name in (
        ("COPY --from=builder /a /a", "builder"),
        ("COPY --from=$STAGE /a /a", "builder"),
        ("COPY --from=Builder a b", "Builder"),
    ):
        said = unplannable(copying(line), expand, dirty, None)
        assert said == f"depends on stage '{name}', which rebuilds (step 3)", line
    said = unplannable(copying("COPY --from=1 /a /a"), expand, dirty, None)
    assert said == "depends on stage '1', which rebuilds (step 5)"
    assert unplannable(copying("COPY --from=clean /a /a"), expand, dirty, None) is None
    assert unplannable(copying("COPY --from=debian /a /a"), expand, dirty, 2) is None
    # A --chown by name needs the parent's /etc/passwd, which a step that would run changes.
    for line in ("COPY --chown=app a /a", "ADD --chown=$USER:staff a /a", "COPY --chown=0:app a b"):
        assert unplannable(copying(line), expand, dirty, 2) == "parent layer changed (step 2)"
        assert unplannable(copying(line), expand, dirty, None) is None
    assert unplannable(copying("COPY --chown=1000:1000 a /a"), expand, dirty, 2) is None
    assert unplannable(copying("ADD a /a"), expand, dirty, 2) is None
