"""Chain IDs: the OCI rule, and the snapshot keys they give."""

from __future__ import annotations

import hashlib

from strata.diff.chain import SNAPSHOT_PREFIX, chain_id_strings, chain_ids, layer_key
from strata.digest import Digest


def test_chain_ids_follow_the_oci_rule() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    expected = hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, Digest("sha256", expected)]
    assert chain_ids([]) == []
    assert chain_id_strings([str(a), str(b)]) == [str(a), f"sha256:{expected}"]


def test_a_layer_key_names_the_whole_stack() -> None:
    a = Digest.of(b"a")
    assert layer_key(a) == f"{SNAPSHOT_PREFIX}{a}" == layer_key(str(a))
