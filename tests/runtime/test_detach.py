"""Detach keys: Docker's key spec, and its escape proxy's holding back of a partial sequence."""

from __future__ import annotations

import pytest

from strata.errors import InvalidArgument
from strata.runtime.detach import DEFAULT_DETACH_KEYS, Detached, EscapeFilter, parse_detach_keys


def test_parse_detach_keys() -> None:
    assert parse_detach_keys(DEFAULT_DETACH_KEYS) == b"\x10\x11"
    assert parse_detach_keys("ctrl-x") == b"\x18"
    assert parse_detach_keys("a,ctrl-@,ctrl-[,ctrl-_") == b"a\x00\x1b\x1f"
    with pytest.raises(InvalidArgument, match=r"Invalid detach keys \(bogus\) provided"):
        parse_detach_keys("bogus")


def test_escape_filter_holds_a_partial_sequence() -> None:
    escape = EscapeFilter(b"\x10\x11")
    assert escape.feed(b"ab") == b"ab"
    assert escape.feed(b"\x10") == b""  # held: it may start the sequence
    assert escape.feed(b"x") == b"\x10x"  # broken: sent on, with the key that broke it
    assert escape.feed(b"\x10\x10") == b"\x10"  # the second one may start it again
    with pytest.raises(Detached):
        escape.feed(b"\x11")
    with pytest.raises(Detached):
        EscapeFilter(b"\x18").feed(b"abc\x18def")
