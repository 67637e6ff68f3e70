"""``docker ps``'s selection: ``--filter`` keys with Docker's matching rules, ``-a``, ``-n``.

A ``status`` filter, and ``-n``/``-l``, take in stopped containers as ``-a`` does; the other
keys filter what ``-a`` (or its absence) gives. ``name`` and ``id`` are regular expressions
searched in the name (with and without its ``/``) and the ID, as Docker's ``filters.Match``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strata.errors import InvalidArgument, NotFound, StrataError
from strata.runtime.containers import Container, State
from strata.runtime.filters import match_labels, parse_filters
from strata.runtime.mounts import mounts_volume
from strata.runtime.networking import joined
from strata.runtime.pausing import is_paused

if TYPE_CHECKING:
    from strata.runtime.lifecycle import Containers

PS_FILTERS = (
    "status", "name", "label", "ancestor", "exited", "health", "network", "volume", "id",
    "before", "since",
)  # fmt: skip
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


@dataclass(frozen=True, slots=True)
class Listed:
    """A container ``ps`` shows, with what its record alone does not say."""

    container: Container
    paused: bool


def ps_filters(given: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``--filter`` values for ``ps``; bad values fail with Docker's messages."""
    filters = parse_filters(given, PS_FILTERS)
    for value in filters.get("status", ()):
        if value not in STATES:
            raise InvalidArgument(f"Invalid filter 'status={value}'")
    for value in filters.get("exited", ()):
        try:
            int(value)
        except ValueError:
            raise InvalidArgument(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    for value in filters.get("health", ()):
        if value not in HEALTH:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    return filters


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _boundary(service: Containers, name: str) -> Container:
    container = service.records.lookup(name)
    if container is None:
        raise NotFound(f"no such container {name}")
    return container


def select(
    service: Containers,
    filters: Mapping[str, Sequence[str]],
    *,
    show_all: bool = False,
    limit: int = -1,
) -> list[Listed]:
    """The containers ``ps`` lists, newest first."""
    show_all = show_all or "status" in filters or limit > 0
    before = [_boundary(service, n).created for n in filters.get("before", ())]
    since = [_boundary(service, n).created for n in filters.get("since", ())]
    ancestors = _ancestors(service, filters.get("ancestor", ()))
    # network= names a network by name or ID; a container records the IDs it joined.
    network_names = (
        {n.id: n.name for n in service.networks.records.all()} if "network" in filters else {}
    )
    found: list[Listed] = []
    for record in service.records.all():
        current = service.refresh(record) if record.state is State.RUNNING else record
        if current is None:
            continue
        paused = is_paused(service, current)
        state = "paused" if paused else current.state.value
        if not show_all and state not in ("running", "paused"):
            continue
        if before and current.created >= min(before):
            continue
        if since and current.created <= max(since):
            continue
        if not _matches(current, state, filters, ancestors, network_names):
            continue
        found.append(Listed(current, paused))
        if 0 < limit <= len(found):
            break
    return found


def _ancestors(service: Containers, names: Sequence[str]) -> set[str] | None:
    """The manifest digests of the images ``ancestor=`` names (None: no such filter).
    TODO: Docker also matches containers of images built on these; strata matches the image."""
    if not names:
        return None
    digests = set()
    for name in names:
        try:
            image = service.images.lookup(name)
        except StrataError:
            image = None
        if image is not None:
            digests.add(str(image.manifest_digest))
    return digests


def _matches(
    container: Container,
    state: str,
    filters: Mapping[str, Sequence[str]],
    ancestors: set[str] | None,
    network_names: Mapping[str, str],
) -> bool:
    cfg = container.config
    networks = {cfg.network, cfg.network_mode}
    for joined_id in joined(cfg):
        networks.update((joined_id, network_names.get(joined_id, joined_id)))
    checks: dict[str, Callable[[str], bool]] = {
        "status": lambda v: state == v,
        "name": lambda v: _search(v, container.name) or _search(v, "/" + container.name),
        "id": lambda v: _search(v, container.id),
        "exited": lambda v: (
            container.state is State.EXITED
            and container.started is not None
            and container.exit_code == int(v)
        ),
        "health": lambda v: v == (container.health_status or "none"),
        "network": lambda v: v in networks,
        # A volume's name, or a bind's source, or any mount's destination (Docker's rule).
        "volume": lambda v: (
            mounts_volume(cfg.mounts, v)
            or any(v in volume.split(":")[:2] for volume in cfg.volumes)
        ),
    }
    for key, check in checks.items():
        values = filters.get(key)
        if values and not any(check(v) for v in values):
            return False
    if "label" in filters and not match_labels(cfg.labels, filters["label"]):
        return False
    return ancestors is None or container.image in ancestors
