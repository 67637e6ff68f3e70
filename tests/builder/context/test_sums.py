"""Content sums of COPY sources: stable, sensitive to content/mode/owner but not mtime, and
explained in one exact line; file hashes remembered across builds."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from strata.builder.context import hashcache
from strata.builder.context.hashcache import FILE_NAME, HashCache
from strata.builder.context.scan import scan_context
from strata.builder.context.sums import SourceSet, explain_changes, record
from strata.builder.copy import plan_copy
from strata.builder.owner import Owner


def tree(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "index.js").write_text("console.log(1)\n")
    (root / "app.py").write_text("print()\n")
    (root / "src" / "a.js").write_text("a\n")
    return root


def sums(root: Path, sources: list[str] | None = None, **kw: object) -> SourceSet:
    with plan_copy(sources or ["."], "/app/", root=scan_context(root), **kw) as plan:  # type: ignore[arg-type]
        return plan.sources


def test_same_tree_same_digest_and_mtime_does_not_count(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    first = sums(root)
    assert sums(root) == first
    os.utime(root / "index.js", (1, 1))
    os.utime(root / "src", (2, 2))
    assert sums(root).digest == first.digest


def test_content_mode_and_owner_change_the_digest(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    base = sums(root)
    (root / "index.js").write_text("console.log(2)\n")
    content = sums(root)
    assert content.digest != base.digest
    assert explain_changes(base.table, content.table) == "index.js changed (content)"
    os.chmod(root / "app.py", 0o755)
    mode = sums(root)
    assert explain_changes(content.table, mode.table) == "app.py changed (mode 0644 → 0755)"
    owned = sums(root, owner=Owner(1000, 1000))
    assert owned.digest != mode.digest
    assert explain_changes(mode.table, owned.table).startswith(
        "app.py changed (owner 0:0 → 1000:1000), index.js changed (owner 0:0 → 1000:1000)"
    )
    chmodded = sums(root, chmod=0o700)
    assert "src/ changed (mode 0755 → 0700)" in explain_changes(mode.table, chmodded.table, 10)


def test_added_and_removed_files(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    before = sums(root)
    (root / "src" / "new.js").write_text("n\n")
    (root / "app.py").unlink()
    after = sums(root)
    assert explain_changes(before.table, after.table) == "src/new.js added, app.py removed"


def test_description_kinds(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    assert sums(root, ["index.js"]).description.startswith("file:")
    assert sums(root, ["src"]).description.startswith("dir:")
    multi = sums(root, ["index.js", "app.py"])
    assert multi.description.startswith("multi:")
    assert len(multi.description) == len("multi:") + 64
    assert multi.files == 2
    assert multi.size == len("console.log(1)\n") + len("print()\n")
    json.dumps(multi.table)  # storable as is


def test_explain_changes_texts() -> None:
    f = record("f", 0o644, 0, 0, 3, "a" * 64)
    g = record("f", 0o644, 0, 0, 3, "b" * 64)
    old = {"index.js": f, "keep.txt": f, "gone.txt": f, "link": record("l", 0o777, 0, 0, 0, "a")}
    new = {
        "index.js": g,
        "keep.txt": f,
        "a.txt": f,
        "link": record("l", 0o777, 0, 0, 0, "b"),
    }
    assert explain_changes(old, new) == (
        "index.js changed (content), link changed (link target), a.txt added and 1 more"
    )
    assert explain_changes(old, new, limit=10) == (
        "index.js changed (content), link changed (link target), a.txt added, gone.txt removed"
    )
    assert explain_changes(old, old) == ""
    assert explain_changes({"x": "garbage"}, {"x": f}) == "x changed"
    changed_kind = {"x": record("d", 0o755, 0, 0, 0, "-")}
    assert explain_changes({"x": f}, changed_kind) == "x/ changed (file → directory)"
    both = {"x": record("f", 0o755, 1, 1, 4, "c" * 64)}
    assert explain_changes({"x": f}, both) == (
        "x changed (content, mode 0644 → 0755, owner 0:0 → 1:1)"
    )


def test_a_new_directory_is_reported_once() -> None:
    f = record("f", 0o644, 0, 0, 1, "a" * 64)
    d = record("d", 0o755, 0, 0, 0, "-")
    new = {"lib": d, "lib/a.js": f, "lib/b.js": f, "lib/sub": d, "lib/sub/c.js": f}
    assert explain_changes({}, new) == "lib/ added"
    assert explain_changes(new, {}) == "lib/ removed"


def test_many_changes_stay_short() -> None:
    f = record("f", 0o644, 0, 0, 1, "a" * 64)
    new = {f"file{i:02d}.txt": f for i in range(15)}
    assert explain_changes({}, new) == (
        "file00.txt added, file01.txt added, file02.txt added and 12 more"
    )


def test_hash_cache_persists_and_skips_reading(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    store = tmp_path / "store"
    first = HashCache(store, racy_ns=0)
    expected = sums(root, hashes=first)
    assert first.misses == 3
    first.save()
    assert (store / FILE_NAME).is_file()
    assert [p.name for p in store.iterdir()] == [FILE_NAME]  # no temporary left behind
    second = HashCache(store, racy_ns=0)
    assert sums(root, hashes=second) == expected
    assert (second.hits, second.misses) == (3, 0)
    # A changed file is read again, and only that one.
    (root / "app.py").write_text("print(2)\n")
    third = HashCache(store, racy_ns=0)
    assert sums(root, hashes=third) != expected
    assert (third.hits, third.misses) == (2, 1)


def test_hash_cache_survives_corruption(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    store = tmp_path / "store"
    store.mkdir()
    expected = sums(root)
    for junk in (b"{not json", b"[]", b'{"version": 2, "entries": {"x": 5}}', b"\xff\xfe"):
        (store / FILE_NAME).write_bytes(junk)
        cache = HashCache(store, racy_ns=0)
        assert sums(root, hashes=cache) == expected
        cache.save()
    # A lying entry (right stat, wrong hash) is what the stat key is trusted for; a stale one
    # (stat changed) is never used.
    data = json.loads((store / FILE_NAME).read_text())
    path = os.fspath(root / "index.js")
    data["entries"][path] = "1 2 3 4 5 " + "0" * 64
    (store / FILE_NAME).write_text(json.dumps(data))
    assert sums(root, hashes=HashCache(store, racy_ns=0)) == expected


def test_recent_files_are_not_remembered(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx")
    cache = HashCache(tmp_path / "store")  # default racy window: files written just now
    sums(root, hashes=cache)
    cache.save()
    assert not (tmp_path / "store" / FILE_NAME).exists()


def test_many_cold_files_hash_to_the_right_result(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    root.mkdir()
    contents = {f"f{i:03d}": os.urandom(100 + i) for i in range(70)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    cache = HashCache(None)
    table = sums(root, hashes=cache).table
    assert cache.misses == len(contents)
    for name, data in contents.items():
        assert table[name].endswith(" " + hashlib.sha256(data).hexdigest())


def test_namespaces_and_the_size_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path / "ctx")
    store = tmp_path / "store"
    mine = HashCache(store, namespace=os.fspath(root), racy_ns=0)
    sums(root, hashes=mine)
    mine.save()
    assert mine.file_name != FILE_NAME
    assert (store / mine.file_name).is_file()
    assert not (store / FILE_NAME).exists()
    # Over the bound, only what the last build used is kept.
    monkeypatch.setattr(hashcache, "MAX_ENTRIES", 2)
    other = tree(tmp_path / "other")
    cache = HashCache(store, namespace=os.fspath(root), racy_ns=0)
    sums(other, hashes=cache)
    cache.save()
    kept = json.loads((store / mine.file_name).read_text())["entries"]
    assert len(kept) == 2
    assert all(path.startswith(os.fspath(other)) for path in kept)
