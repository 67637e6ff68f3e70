"""Chain IDs and the snapshot keys they give, with nothing heavier than hashlib.

A layer's snapshot is keyed by its OCI chain ID (``sha256(parent_chain + " " + diff_id)``),
which names the whole stack up to and including that layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from strata.digest import Digest

SNAPSHOT_PREFIX = "layer-"
# Containers stack on an init snapshot per image top (strata.runtime.initlayer): init-<top key>.
INIT_PREFIX = "init-"


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """The OCI chain IDs of a stack of diff IDs, bottom first."""
    return [Digest.parse(text) for text in chain_id_strings([str(d) for d in diff_ids])]


def chain_id_strings(diff_ids: Sequence[str]) -> list[str]:
    """`chain_ids` on ``sha256:<hex>`` strings (the caller has validated them)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def layer_key(chain_id: Digest | str) -> str:
    """The snapshot key of the stack ending at ``chain_id``."""
    return f"{SNAPSHOT_PREFIX}{chain_id}"
