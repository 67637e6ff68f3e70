"""strata.jsonload: the size and depth bound every reader of outside JSON goes through."""

from __future__ import annotations

import json
import time

import pytest

from strata.errors import FormatError, TooLarge
from strata.jsonload import MAX_DEPTH, depth, loads


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_depth_bound_is_exact() -> None:
    assert loads(nested(MAX_DEPTH), source="x", limit=1 << 20) is not None
    with pytest.raises(FormatError) as err:
        loads(nested(MAX_DEPTH + 1), source="token response", limit=1 << 20)
    assert str(err.value) == (
        f"token response: not valid JSON: nested too deeply (over {MAX_DEPTH} levels)"
    )


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 5000, "b": ['\\"[[[[', "{{{{"]})
    assert depth(text) == 2
    assert loads(text, source="x", limit=1 << 20)["a"] == "[" * 5000


def test_objects_and_arrays_both_nest() -> None:
    text = '{"a":' * 150 + "1" + "}" * 150
    with pytest.raises(FormatError, match="nested too deeply"):
        loads(text.encode(), source="x", limit=1 << 20)


def test_size_bound_and_bad_input_are_one_line() -> None:
    with pytest.raises(TooLarge) as big:
        loads(b"[" + b"1," * 100 + b"1]", source="manifest.json", limit=100, what="archives")
    assert str(big.value) == "manifest.json: 203 bytes is over the 100-byte limit for archives"
    with pytest.raises(FormatError, match=r"^x: not valid JSON: not UTF-8 at byte 0$"):
        loads(b"\xff[]", source="x", limit=100)
    with pytest.raises(FormatError, match=r"^x: not valid JSON: NaN is not valid JSON$"):
        loads(b"[NaN]", source="x", limit=100)


def test_the_depth_scan_is_linear() -> None:
    # Many quotes and escapes: a backtracking string pattern would take very long here.
    text = '["' + '\\"' * 400_000 + '"' + ',"["' * 100_000 + "]"
    started = time.monotonic()
    assert depth(text) == 1
    assert time.monotonic() - started < 2
