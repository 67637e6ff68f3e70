"""Content sums of ``COPY``/``ADD`` sources: the cache key, and what changed since last time.

Every file a step would write is one *record*, a short string of what ends up in the image:
``"<kind> <mode> <uid>:<gid> <size> <content>"`` (kind ``f`` file, ``d`` directory, ``l``
symlink, ``p`` fifo, ``c``/``b`` devices; mode in octal as in the image, after ``--chmod``;
owner after ``--chown``; content the file's sha256, a symlink's target, a device's numbers).
Modification times are left out on purpose: touching a file must not miss the cache.

Records come in *groups*, one per source after globbing (Docker's "copy infos"): a file, the
contents of a directory, a URL, a heredoc. A group hashes to ``file:<hex>`` or ``dir:<hex>``
and several groups to ``multi:<hex>``, the names Docker's legacy builder writes into history
(``COPY file:4f5c… in /app/``). The per-file table (key → record) is kept small and JSON-ready
so the cache can store it and `explain_changes` can later say what differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from strata.digest import Digest

_KIND_NAMES: Final = {
    "f": "file",
    "d": "directory",
    "l": "symlink",
    "p": "fifo",
    "c": "device",
    "b": "device",
}

GroupKind = Literal["file", "dir"]


def record(kind: str, mode: int, uid: int, gid: int, size: int, content: str) -> str:
    """One entry's record (see the module docstring)."""
    return f"{kind} {mode:04o} {uid}:{gid} {size} {content}"


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """One source after globbing: ``entries`` are ``(key, dest, record)``.

    ``key`` names the entry for people (its path in the context or stage, a URL, a heredoc
    name); ``dest`` is its path relative to where the group lands.
    """

    kind: GroupKind
    entries: tuple[tuple[str, str, str], ...]
    size: int = 0  # bytes of the regular files

    @property
    def hash(self) -> str:
        """``file:<hex>`` or ``dir:<hex>`` over every entry, in order."""
        text = "".join([f"{key}\0{dest}\0{rec}\0" for key, dest, rec in self.entries])
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{self.kind}:{digest}"


@dataclass(frozen=True, slots=True)
class SourceSet:
    """The sources of one ``COPY``/``ADD`` as the cache sees them.

    ``digest`` is the cache key part; ``description`` Docker's ``file:``/``dir:``/``multi:``
    name; ``table`` maps each key to its record (a plain dict: store it as JSON, do not
    mutate it); ``files`` counts entries and ``size`` their bytes.
    """

    digest: Digest
    description: str
    table: dict[str, str]
    files: int
    size: int


def source_set(groups: Sequence[SourceGroup]) -> SourceSet:
    """Combine groups as Docker's ``getSourceHashFromInfos``: one keeps its own hash."""
    hashes = [group.hash for group in groups]
    if len(hashes) == 1:
        description = hashes[0]
    else:
        joined = ",".join(hashes).encode()
        description = "multi:" + hashlib.sha256(joined).hexdigest()
    table = {key: rec for group in groups for key, _, rec in group.entries}
    count = sum(len(group.entries) for group in groups)
    size = sum(group.size for group in groups)
    return SourceSet(Digest.of(description.encode()), description, table, count, size)


def _display(key: str, rec: str) -> str:
    return key + "/" if str(rec).startswith("d ") and not key.endswith("/") else key


def _change(key: str, old: str, new: str) -> str:
    before_fields = str(old).split(" ", 4)
    after_fields = str(new).split(" ", 4)
    if len(before_fields) != 5 or len(after_fields) != 5:  # a table from an older strata
        return f"{key} changed"
    o_kind, o_mode, o_owner, o_size, o_content = before_fields
    n_kind, n_mode, n_owner, n_size, n_content = after_fields
    name = _display(key, new)
    if o_kind != n_kind:
        before = _KIND_NAMES.get(o_kind, o_kind)
        after = _KIND_NAMES.get(n_kind, n_kind)
        if before != after:
            return f"{name} changed ({before} → {after})"
    what: list[str] = []
    if o_size != n_size or o_content != n_content or o_kind != n_kind:
        what.append("link target" if n_kind == "l" else "content")
    if o_mode != n_mode:
        what.append(f"mode {o_mode} → {n_mode}")
    if o_owner != n_owner:
        what.append(f"owner {o_owner} → {n_owner}")
    return f"{name} changed ({', '.join(what)})"


def _outermost(keys: list[str], table: Mapping[str, str]) -> list[str]:
    """Drop keys below a directory that is itself in ``keys`` (its addition says it all)."""
    dirs = {k for k in keys if str(table[k]).startswith("d ")}
    if not dirs:
        return keys
    kept = []
    for key in keys:
        parts = key.split("/")
        if any("/".join(parts[:i]) in dirs for i in range(1, len(parts))):
            continue
        kept.append(key)
    return kept


def explain_changes(old: Mapping[str, str], new: Mapping[str, str], limit: int = 3) -> str:
    """What differs between two tables, in one short line; "" if nothing does.

    Changed entries first, then added, then removed, each in path order:
    ``index.js changed (content)``, ``app.py changed (mode 0644 → 0755)``,
    ``x changed (owner 0:0 → 1000:1000)``, ``src/new.js added``, ``old.txt removed``; past
    ``limit`` items: ``…, a.txt added and 12 more``.
    """
    changed: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for key in sorted(old.keys() | new.keys()):
        before = old.get(key)
        after = new.get(key)
        if before is None:
            added.append(key)
        elif after is None:
            removed.append(key)
        elif before != after:
            changed.append(_change(key, before, after))
    items = changed
    items += [f"{_display(k, new[k])} added" for k in _outermost(added, new)]
    items += [f"{_display(k, old[k])} removed" for k in _outermost(removed, old)]
    if not items:
        return ""
    limit = max(1, limit)
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text
