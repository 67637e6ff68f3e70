"""The build cache: which image a step made, keyed by everything the step's result depends on.

A key is the sha256 of the parent image ID, the step's instruction after expansion, the build
args the step uses and, for COPY/ADD, the digest of its sources (content, mode, owner: never
mtime). A record keeps those parts apart as well, so that a miss can say which part differs
from the nearest earlier build (see `strata.builder.explain`). Records point at intermediate
images; removing such an image removes its records (ON DELETE CASCADE), and `prune` removes
records so that gc may collect their images.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strata.image.store import now_rfc3339
from strata.store.db import Database

RULES = 2
"""The builder's rules in keys: bumped when the same step starts making a different image (2:
Docker's default PATH at FROM, its history texts), so no image made by older rules is reused."""


@dataclass(frozen=True, slots=True)
class StepKey:
    """What a step's result depends on."""

    parent: str  # the parent image ID (config digest), or "scratch"
    instruction: str  # canonical text after expansion, e.g. "RUN apt-get update"
    args: Mapping[str, str]  # the build args the step uses, with their values
    sources: str | None = None  # digest of COPY/ADD sources
    epoch: int | None = None  # SOURCE_DATE_EPOCH: changes every timestamp of the result
    original: str = ""  # the instruction as written (not part of the key: for explanations)

    @property
    def digest(self) -> str:
        doc = {
            "parent": self.parent,
            "instruction": self.instruction,
            "args": dict(sorted(self.args.items())),
            "sources": self.sources,
            "epoch": self.epoch,
            "rules": RULES,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """A step built earlier: its key parts, the image it made, its source table if any."""

    key: str
    parent: str
    instruction: str
    original: str
    image: str  # manifest digest of the intermediate image
    args: Mapping[str, str]
    sources: Mapping[str, Any] | None  # {"digest": ..., "files": {...}} for COPY/ADD
    used: str


class BuildCache:
    """Cache records in the store's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, key: StepKey, *, touch: bool = True) -> CacheRecord | None:
        """The record for ``key`` whose image still exists, marked used now (or, without
        ``touch``, by the caller later: see `mark_used`)."""
        digest = key.digest
        if not touch:
            with self.db.read() as conn:
                row = conn.execute("SELECT * FROM build_cache WHERE key = ?", (digest,)).fetchone()
            return None if row is None else _record(row)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM build_cache WHERE key = ?", (digest,)).fetchone()
            if row is None:
                return None
            self.mark_used(conn, [digest])
        return _record(row)

    @staticmethod
    def mark_used(conn: sqlite3.Connection, keys: Sequence[str]) -> None:
        """Mark the records of ``keys`` (key digests) used now, in the caller's transaction."""
        now = now_rfc3339()
        conn.executemany("UPDATE build_cache SET used = ? WHERE key = ?", [(now, k) for k in keys])

    def record(
        self, key: StepKey, image: str, sources_table: Mapping[str, Any] | None = None
    ) -> None:
        with self.db.transaction() as conn:
            self.write(conn, [(key, image, sources_table)])

    @staticmethod
    def write(
        conn: sqlite3.Connection,
        records: Sequence[tuple[StepKey, str, Mapping[str, Any] | None]],
    ) -> None:
        """Write ``(key, image manifest digest, sources table)`` records in the caller's
        transaction (a batch of steps records its images and their records in one)."""
        now = now_rfc3339()
        conn.executemany(
            "INSERT OR REPLACE INTO build_cache"
            " (key, parent, instruction, original, image, args, sources, created, used)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    key.digest,
                    key.parent,
                    key.instruction,
                    key.original,
                    image,
                    json.dumps(dict(key.args), sort_keys=True),
                    json.dumps(sources) if sources is not None else None,
                    now,
                    now,
                )
                for key, image, sources in records
            ],
        )

    def children(self, parent: str) -> list[CacheRecord]:
        """Records built on ``parent``, most recently used first."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM build_cache WHERE parent = ? ORDER BY used DESC, created DESC",
                (parent,),
            ).fetchall()
        return [_record(r) for r in rows]

    def by_instruction(self, instruction: str) -> list[CacheRecord]:
        """Records of this instruction on any parent, most recently used first."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM build_cache WHERE instruction = ? ORDER BY used DESC LIMIT 20",
                (instruction,),
            ).fetchall()
        return [_record(r) for r in rows]

    def images(self) -> set[str]:
        """Manifest digests of every image a record points at (intermediate images)."""
        with self.db.read() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT image FROM build_cache")}

    def prune(self) -> list[str]:
        """Drop every record; the images they pointed at (for the caller to remove if unused)."""
        with self.db.transaction() as conn:
            images = [r[0] for r in conn.execute("SELECT DISTINCT image FROM build_cache")]
            conn.execute("DELETE FROM build_cache")
            conn.execute("DELETE FROM build_lineage")
        return images

    # -- lineage: the steps of the last build of one Dockerfile -------------------------------

    def lineage(self, identity: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT steps FROM build_lineage WHERE identity = ?", (identity,)
            ).fetchone()
        if row is None:
            return []
        try:
            steps = json.loads(row[0])
        except ValueError:
            return []
        return steps if isinstance(steps, list) else []

    def set_lineage(self, identity: str, steps: list[dict[str, Any]]) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_lineage (identity, steps, updated) VALUES (?, ?, ?)",
                (identity, json.dumps(steps), now_rfc3339()),
            )


def _record(row: Any) -> CacheRecord:
    sources = json.loads(row["sources"]) if row["sources"] else None
    return CacheRecord(
        key=row["key"],
        parent=row["parent"],
        instruction=row["instruction"],
        original=row["original"],
        image=row["image"],
        args=json.loads(row["args"]),
        sources=sources,
        used=row["used"],
    )
