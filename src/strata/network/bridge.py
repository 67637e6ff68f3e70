"""Bridge networks as CNI configuration: Docker's default ``bridge`` and user networks.

Every bridge network is a Linux bridge with a private IPv4 subnet, set up by the CNI chain
bridge (gateway on the bridge, masquerade out unless ``internal``, hairpin so a container
reaches itself through a published port) + host-local IPAM + portmap + firewall.

The default network is one per host, not per store root: its bridge ``strata0`` and subnet
10.66.0.0/16 (clear of Docker's 172.17/16, Podman's 10.88/16 and this host's 192.0.2/24) are
shared by every root, and so is its address pool (see :mod:`.attachments`). A user network's
bridge is named from its ID (``strata-`` + 8 hex, within the kernel's 15 characters) and its
subnet, unless given, is the first free /24 of 10.67.0.0/16 on the host.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.errors import InvalidArgument
from strata.network.cni import CNI_VERSION

DEFAULT_NAME = "bridge"
DEFAULT_BRIDGE = "strata0"
DEFAULT_SUBNET = "10.66.0.0/16"
USER_POOL = "10.67.0.0/16"
USER_PREFIX = 24


@dataclass(frozen=True, slots=True)
class BridgeNetwork:
    """A bridge network's definition: what its CNI configuration is made from."""

    name: str
    id: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""

    @property
    def cni_name(self) -> str:
        """The name the plugins key their state by (IPAM pool, iptables chains): host-wide
        unique, as user networks of two roots may share a name."""
        return self.id

    def conflist(self, ipam_dir: Path, ports: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """The CNI network configuration list, with ``ports`` as portmap's runtimeConfig."""
        bridge: dict[str, Any] = {
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": not self.internal,
            "ipMasq": not self.internal,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(ipam_dir),
                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                "routes": [] if self.internal else [{"dst": "0.0.0.0/0"}],
            },
        }
        plugins: list[dict[str, Any]] = [bridge]
        # portmap only with ports to map: each plugin is an exec at every start and stop.
        if not self.internal and ports:
            plugins.append(
                {
                    "type": "portmap",
                    "capabilities": {"portMappings": True},
                    "snat": True,
                    "runtimeConfig": {"portMappings": [dict(p) for p in ports]},
                }
            )
        if not self.internal:
            plugins.append({"type": "firewall", "backend": "iptables"})
        return {"cniVersion": CNI_VERSION, "name": self.cni_name, "plugins": plugins}


def default_network() -> BridgeNetwork:
    """Docker's ``bridge``: present on every host, never created or removed by a user."""
    subnet = ipaddress.ip_network(DEFAULT_SUBNET)
    return BridgeNetwork(
        name=DEFAULT_NAME,
        id=DEFAULT_NAME,
        bridge=DEFAULT_BRIDGE,
        subnet=DEFAULT_SUBNET,
        gateway=str(subnet.network_address + 1),
    )


def check_subnet(subnet: str, gateway: str | None) -> tuple[str, str]:
    """A user's ``--subnet``/``--gateway`` as (subnet, gateway); the gateway defaults to the
    subnet's first address."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {subnet}: not an IPv4 CIDR") from None
    if network.version != 4 or network.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {subnet}: an IPv4 subnet of /30 or wider")
    if str(network) != subnet:
        raise InvalidArgument(f"invalid subnet {subnet}: it should be {network}")
    if gateway is None:
        return str(network), str(network.network_address + 1)
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError:
        raise InvalidArgument(f"invalid gateway {gateway}: not an IPv4 address") from None
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    return str(network), str(address)


def host_subnets() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets routed on the host now (``ip -4 route``)."""
    done = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=False
    )
    found = []
    for line in done.stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast"):
            word = line.split()[1]
        if word == "default":
            continue
        try:
            found.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    return found


def free_subnet(taken: Iterable[str]) -> str:
    """The first /24 of the user pool overlapping neither ``taken`` nor a host route."""
    used = [ipaddress.IPv4Network(t) for t in taken]
    used += [n for n in host_subnets() if n.prefixlen > 0 and not n.is_loopback]
    for candidate in ipaddress.IPv4Network(USER_POOL).subnets(new_prefix=USER_PREFIX):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise InvalidArgument("could not find an available, non-overlapping IPv4 address pool")


def remove_bridge(name: str) -> None:
    """Delete a user network's Linux bridge (the plugins make bridges, never remove them)."""
    subprocess.run(
        ["ip", "link", "delete", name, "type", "bridge"], capture_output=True, check=False
    )
