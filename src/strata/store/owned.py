"""Names that carry their owner: what one command makes for itself alone is named
``<kind>-<pid>.<start>.<pidns>-<random>``, the owner written as a lease names it
(`strata.store.leases`: the start time tells a recycled PID apart), so that once that process
has ended anyone can tell the thing is debris, at once and for certain.

The names are made here, below every package that makes such things (a snapshot `strata.diff`
extracts into, a scratch directory of `strata.image`, `strata.runtime` or `strata.builder`);
finding and removing the dead ones is `strata.image.scratch`'s.
"""

from __future__ import annotations

import os
import re

__all__ = ["owned_name", "owned_prefix", "owner_gone", "owner_of"]

_OWNER = re.compile(r"-(\d+)\.(\d+)\.(\d+)-")


def _owner_tag() -> str:
    # Imported here: the quick `run` path only asks `owner_gone` of names with no owner.
    from strata.store.leases import pid_namespace, process_start

    pid = os.getpid()
    start = process_start(pid)
    # Without /proc the name carries no owner, and is never judged dead.
    return f"{pid}.{start}.{pid_namespace()}" if start is not None and start >= 0 else "x"


def owned_prefix(kind: str) -> str:
    """``<kind>-<owner>-``: the start of a scratch name (for `tempfile`'s ``prefix``)."""
    return f"{kind}-{_owner_tag()}-"


def owned_name(kind: str) -> str:
    """A fresh scratch name of this process: ``<kind>-<owner>-<random hex>``."""
    return f"{owned_prefix(kind)}{os.urandom(16).hex()}"


def owner_of(name: str) -> int | None:
    """The PID a scratch name names as its owner, if it names one."""
    found = _OWNER.search(name)
    return int(found.group(1)) if found else None


def owner_gone(name: str) -> bool:
    """Whether ``name`` names an owner process (in our PID namespace) that has ended."""
    found = _OWNER.search(name)
    if found is None:
        return False
    from strata.store.leases import owner_alive

    return not owner_alive(f"{found.group(1)}.{found.group(2)}.{found.group(3)}.scratch")
