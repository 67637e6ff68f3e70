"""``docker container prune``: every container that is not running goes (created ones too),
those the filters keep aside (``until``, ``label``, ``label!``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strata.errors import StrataError
from strata.runtime.containers import State
from strata.runtime.filters import created_seconds, match_labels, match_not_labels, parse_until

if TYPE_CHECKING:
    from strata.runtime.lifecycle import Containers

PRUNE_FILTERS = ("until", "label", "label!")


@dataclass(slots=True)
class Pruned:
    """What a prune removed: the containers' IDs and the bytes their own layers held."""

    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0


def prune_containers(service: Containers, filters: Mapping[str, Sequence[str]]) -> Pruned:
    """Remove the stopped containers ``filters`` (parsed, `PRUNE_FILTERS` keys) select."""
    untils = [parse_until(v) for v in filters.get("until", ())]
    until = min(untils) if untils else None
    pruned = Pruned()
    for record in service.records.all():
        current = service.refresh(record)
        if current is None or current.state is State.RUNNING or current.config.tied:
            continue  # running, gone meanwhile, or a build's step (its build removes it)
        labels = current.config.labels
        if not match_labels(labels, filters.get("label", ())):
            continue
        if not match_not_labels(labels, filters.get("label!", ())):
            continue
        if until is not None and created_seconds(current.created) >= until:
            continue
        try:
            size = service.snapshotter.usage(current.snapshot).size
        except StrataError:
            size = 0
        try:
            service.remove(current)
        except StrataError:
            continue  # started meanwhile: not stopped any more, so not this prune's
        pruned.deleted.append(current.id)
        pruned.reclaimed += size
    return pruned
