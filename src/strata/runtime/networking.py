"""A container's networks: checked at ``create``, set up at each start, torn down at its exit.

The plumbing is :mod:`strata.network`'s; this module says which networks and ports a container
has (its `ContainerConfig`: ``network`` is ``host``, ``none``, ``bridge`` or a user network's
ID, ``networks`` those joined later; ``publish``/``publish_all`` its ports) and who tears down:
whoever records the exit (the owner, or the reconciliation of a dead owner) and the removal,
as each also unmounts the rootfs. Teardown is safe to repeat.

Names on user networks: every running member's ``/etc/hosts`` lists the other members (name,
short ID, aliases), rewritten in place (it is bind-mounted) whenever a member starts, stops,
connects or disconnects. Docker's embedded DNS server answers the same questions; a file
needs no process running beside the containers, which strata, having no daemon, would have to
keep alive per network. The default ``bridge`` gets no names, as in Docker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import Conflict, InvalidArgument, NetworkNotFound, StrataError

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.network.attachments import Attachment, Attachments
    from strata.network.bridge import BridgeNetwork
    from strata.network.ports import Port
    from strata.network.records import NetworkRecords
    from strata.runtime.config import ContainerConfig
    from strata.runtime.containers import Container, ContainerStore

NO_NAMESPACE_OF_OURS = ("host", "none")
MEMBERS_MARK = "# strata: network members\n"


@dataclass(frozen=True, slots=True)
class NetworkChoice:
    """What ``--network`` resolved to at create: the config's ``network`` and mode."""

    network: str  # host, none, bridge, or a user network's ID
    mode: str  # as Docker's HostConfig.NetworkMode shows it


def bridged(config: ContainerConfig) -> bool:
    """Whether the container gets a namespace from strata.network."""
    return config.network not in NO_NAMESPACE_OF_OURS


def joined(config: ContainerConfig) -> tuple[str, ...]:
    """The networks (``bridge`` or IDs) the container is on, its first one first."""
    return (config.network, *config.networks) if bridged(config) else ()


class ContainerNetworks:
    """The networks of one store root's containers."""

    def __init__(
        self,
        root: StoreRoot,
        containers: Callable[[], ContainerStore] | None = None,
        directory: Callable[[Container], Path] | None = None,
    ) -> None:
        self.root = root
        self._containers = containers
        self._directory = directory
        self._attachments: Attachments | None = None

    @property
    def attachments(self) -> Attachments:
        if self._attachments is None:
            from strata.network.attachments import Attachments

            self._attachments = Attachments()
        return self._attachments

    @property
    def records(self) -> NetworkRecords:
        from strata.network.records import NetworkRecords

        return NetworkRecords(self.root.db)

    def _store(self) -> ContainerStore:
        if self._containers is None:
            from strata.runtime.containers import ContainerStore

            return ContainerStore(self.root.db)
        return self._containers()

    def choose(
        self, network: str, publish: tuple[str, ...], default: str = "bridge"
    ) -> NetworkChoice:
        """Check ``--network`` and ``-p`` at create (bad values fail before anything is made);
        ``default`` is what ``default`` means."""
        from strata.network.ports import parse_publish

        for spec in publish:
            parse_publish(spec)
        if network == "default" and default in NO_NAMESPACE_OF_OURS:
            return NetworkChoice(default, network)
        if network in NO_NAMESPACE_OF_OURS:
            return NetworkChoice(network, network)
        if network in ("default", "bridge"):
            return NetworkChoice("bridge", network)
        if network.startswith("container:"):
            raise InvalidArgument(f"invalid --network {network!r}: container: is not supported")
        found = self.records.find(network)
        if found is None:
            raise NetworkNotFound(f"network {network} not found")
        return NetworkChoice(found.id, found.name)

    def _networks(self, config: ContainerConfig) -> list[tuple[BridgeNetwork, tuple[str, ...]]]:
        records = self.records
        chosen = []
        for index, ident in enumerate(joined(config)):
            network = records.find(ident)
            if network is None:
                if index == 0:
                    raise NetworkNotFound(f"network {ident} not found")
                continue  # removed since it was joined: Docker drops the endpoint too
            chosen.append((network, config.aliases if index == 0 else ()))
        return chosen

    # -- a container's start and stop -----------------------------------------------------------

    def attach(self, container: Container) -> Attachment | None:
        """Set the container's networks up for a start (None on host or none)."""
        config = container.config
        if not bridged(config):
            return None
        from strata.network.ports import PortSpec, parse_expose, parse_publish

        wanted: list[PortSpec] = []
        for spec in config.publish:
            wanted += parse_publish(spec)
        if config.publish_all:
            given = {(w.container_port, w.protocol) for w in wanted}
            for text in config.exposed:
                port, protocol = parse_expose(text)
                if (port, protocol) not in given:
                    wanted.append(PortSpec(port, protocol))
        return self.attachments.setup(container.id, self.root.path, self._networks(config), wanted)

    def started(self, container: Container) -> None:
        """After `attach` and the hosts file: names on the container's user networks."""
        if any(n != "bridge" for n in joined(container.config)):
            self.refresh_hosts(joined(container.config))

    def release(self, container: Container) -> None:
        """Tear the container's networks down (nothing if it has none; safe to repeat)."""
        if not bridged(container.config):
            return
        with contextlib.suppress(StrataError, OSError):
            if self.attachments.lookup(container.id) is None and not self._known(container):
                return
            self.attachments.teardown(container.id)
            if any(n != "bridge" for n in joined(container.config)):
                self.refresh_hosts(joined(container.config))

    def _known(self, container: Container) -> bool:
        return self.attachments.netns_path(container.id).exists() or (
            self.attachments.recorded(container.id)
        )

    def lookup(self, container: Container) -> Attachment | None:
        """The container's namespace and endpoints while it has them."""
        if not bridged(container.config):
            return None
        return self.attachments.lookup(container.id)

    def ports(self, container: Container) -> list[Port]:
        """The container's ports as ``ps``/``port``/``inspect`` show them: while it has a
        namespace, its published ports and the exposed ones (published ports count as
        exposed, as in Docker); none otherwise."""
        found = self.lookup(container)
        if found is None:
            return []
        from strata.network.ports import container_ports

        return container_ports(found.ports, exposed(container.config))

    # -- names ----------------------------------------------------------------------------------

    def refresh_hosts(self, networks: tuple[str, ...], left: str | None = None) -> None:
        """Rewrite the member lists in the hosts files of the running members of ``networks``
        (user networks; ``bridge`` has no names), and of container ``left`` that just left."""
        wanted = {n for n in networks if n != "bridge"}
        if not wanted or self._directory is None:
            return
        members = []  # (container, attachment) of every running member of a wanted network
        for container in self._store().all():
            if wanted.isdisjoint(joined(container.config)) and container.id != left:
                continue
            attached = self.lookup(container)
            if attached is not None:
                members.append((container, attached))
        for container, attached in members:
            mine = {e.network_id for e in attached.endpoints}
            lines = []
            for other, theirs in members:
                if other.id == container.id:
                    continue
                for endpoint in theirs.endpoints:
                    if endpoint.network_id in mine and endpoint.network_id != "bridge":
                        names = dict.fromkeys((other.name, other.short_id, *endpoint.aliases))
                        lines.append(f"{endpoint.address}\t{' '.join(names)}\n")
            _rewrite_members(self._directory(container) / "hosts", "".join(lines))

    # -- network commands -----------------------------------------------------------------------

    def users(self, network: BridgeNetwork, *, running_only: bool) -> list[Container]:
        """The containers on ``network`` (running ones: those with an endpoint)."""
        found = []
        for container in self._store().all():
            if network.id not in joined(container.config):
                continue
            if running_only and self.lookup(container) is None:
                continue
            found.append(container)
        return found

    def remove(self, text: str) -> BridgeNetwork:
        """``network rm``: refused while a container has an endpoint on it (Docker's words)."""
        if text in ("bridge", "host", "none"):
            raise Conflict(f"{text} is a pre-defined network and cannot be removed")
        network = self.records.get(text)
        if self.users(network, running_only=True):
            raise Conflict(
                f"error while removing network: network {network.name} id {network.id}"
                " has active endpoints"
            )
        self.records.delete(network)
        from strata.network.bridge import remove_bridge

        remove_bridge(network.bridge)
        self.attachments.forget_pool(network.cni_name)
        return network

    def prune(self) -> list[str]:
        """``network prune`` (and ``system prune``'s networks): every user network without an
        endpoint removed (Docker's "unused": a network of stopped containers goes too); their
        names."""
        removed = []
        for network in self.records.all():
            if self.users(network, running_only=True):
                continue
            self.remove(network.id)
            removed.append(network.name)
        return removed

    def connect(self, text: str, container: Container, aliases: tuple[str, ...]) -> None:
        """``network connect``: recorded, and joined now if the container runs."""
        network = self.records.get(text)
        config = container.config
        if not bridged(config):
            raise Conflict(
                f"container cannot be disconnected from host network or connected to host"
                f" network: {container.name} is on {config.network}"
            )
        if network.id in joined(config):
            raise Conflict(
                f"endpoint with name {container.name} already exists in network {network.name}"
            )
        if self.lookup(container) is not None:
            self.attachments.connect(container.id, network, aliases)
        updated = replace(config, networks=(*config.networks, network.id))
        if aliases and not config.networks and config.network == network.id:
            updated = replace(updated, aliases=aliases)
        self._store().set_config(container.id, updated)
        self.refresh_hosts((network.id,))

    def disconnect(self, text: str, container: Container) -> None:
        """``network disconnect``: recorded, and left now if the container runs."""
        network = self.records.get(text)
        config = container.config
        if network.id not in joined(config):
            raise Conflict(f"container {container.id} is not connected to network {network.name}")
        if config.network == network.id:
            raise Conflict(
                f"container {container.name} cannot leave its first network {network.name}"
                " (strata keeps it)"
            )
        self.attachments.disconnect(container.id, network.id)
        networks = tuple(n for n in config.networks if n != network.id)
        self._store().set_config(container.id, replace(config, networks=networks))
        self.refresh_hosts((network.id, *joined(config)), left=container.id)


def exposed(config: ContainerConfig) -> list[str]:
    """The image's exposed ports and those ``-p`` names (``80/tcp``)."""
    from strata.network.ports import parse_publish

    found = list(config.exposed)
    for spec in config.publish:
        found += [f"{p.container_port}/{p.protocol}" for p in parse_publish(spec)]
    return found


def _rewrite_members(hosts: Path, members: str) -> None:
    """Replace the member block of a hosts file in place: it is bind-mounted into the
    container, so a new inode (a rename) would not be seen there."""
    try:
        text = hosts.read_text()
    except OSError:
        return
    head = text.split(MEMBERS_MARK, 1)[0]
    new = f"{head}{MEMBERS_MARK}{members}" if members else head
    if new == text:
        return
    fd = os.open(hosts, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, new.encode())
        os.ftruncate(fd, len(new.encode()))
    finally:
        os.close(fd)
