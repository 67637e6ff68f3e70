"""Containers' network namespaces and their endpoints, as host-wide state under /run/strata.

Why host-wide and not under the store root: every root on a host shares the default bridge
(one Linux bridge, one subnet), so its addresses and host ports must come from one pool, or two
roots (the test suite makes one per test) would hand out the same address. The CNI host-local
plugin keeps that pool as one file per address in its ``dataDir``, under a lock; ours is
``/run/strata/net/ipam`` (``STRATA_NET_STATE`` moves the whole tree). Where /run is a tmpfs, after a
reboot no namespace, veth or address survives, and neither does the state naming them.

Per container the tree holds ``netns/<id>`` (the namespace, a bind mount: :mod:`.netns`) and
``endpoints/<id>.json`` (the root that made it, each network's CNI configuration as used, the
result: address, gateway, MAC, published ports), written before the first ADD so that a crash
at any point leaves something a teardown can undo. A teardown (CNI DEL of each chain, which
removes the veth, address, iptables rules; then the namespace) runs when the container's exit
is recorded, and again, harmlessly, at its removal. What nobody tore down (an owner SIGKILLed
while the record keeper was gone too, a root deleted under running containers) is reclaimed by
`reclaim`, run before each setup: an endpoint whose namespace is gone, or whose store root no
longer exists, is torn down, and an address file naming no endpoint is freed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import NetworkError
from strata.network import cni, netns
from strata.network.bridge import BridgeNetwork
from strata.network.ports import PortBinding, PortSpec, bind_ports

STATE_ENV = "STRATA_NET_STATE"
DEFAULT_STATE = "/run/strata/net"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A container's place on one network: what ``inspect`` shows of it."""

    network: str  # the network's name
    network_id: str
    ifname: str
    address: str  # without the prefix
    prefix: int
    gateway: str
    mac: str
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "network_id": self.network_id,
            "ifname": self.ifname,
            "address": self.address,
            "prefix": self.prefix,
            "gateway": self.gateway,
            "mac": self.mac,
            "aliases": list(self.aliases),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Endpoint:
        return cls(
            str(raw["network"]),
            str(raw["network_id"]),
            str(raw["ifname"]),
            str(raw["address"]),
            int(raw["prefix"]),
            str(raw["gateway"]),
            str(raw["mac"]),
            tuple(str(a) for a in raw.get("aliases") or ()),
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A container's namespace and its endpoints (empty on a network without any)."""

    container_id: str
    netns: Path
    endpoints: tuple[Endpoint, ...]
    ports: tuple[PortBinding, ...]


class _State:
    """The files of the host-wide tree; ``lock`` serialises changes to it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir()
        self.netns = self.root / "netns"
        self.endpoints = self.root / "endpoints"
        self.ipam = self.root / "ipam"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.endpoints.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record_path(self, container_id: str) -> Path:
        return self.endpoints / f"{container_id}.json"

    def read(self, container_id: str) -> dict[str, Any] | None:
        try:
            raw = json.loads(self.record_path(container_id).read_text())
        except (OSError, ValueError):
            return None
        return raw if isinstance(raw, dict) else None

    def write(self, container_id: str, record: dict[str, Any]) -> None:
        path = self.record_path(container_id)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with contextlib.suppress(FileNotFoundError):
            for path in self.endpoints.glob("*.json"):
                raw = self.read(path.stem)
                if raw is not None:
                    yield path.stem, raw


def _endpoint(network: BridgeNetwork, ifname: str, result: dict[str, Any]) -> Endpoint:
    ips = result.get("ips") or []
    interfaces = result.get("interfaces") or []
    if not ips:
        raise NetworkError(f"network {network.name}: the IPAM plugin gave no address")
    address, _, prefix = str(ips[0]["address"]).partition("/")
    mac = ""
    index = ips[0].get("interface")
    if isinstance(index, int) and 0 <= index < len(interfaces):
        mac = str(interfaces[index].get("mac", ""))
    else:
        mac = next((str(i.get("mac", "")) for i in interfaces if i.get("sandbox")), "")
    return Endpoint(
        network.name,
        network.id,
        ifname,
        address,
        int(prefix or 32),
        str(ips[0].get("gateway", "")),
        mac,
    )


class Attachments:
    """Setting containers' networks up and tearing them down, host-wide (see the module)."""

    def __init__(self, state: Path | None = None) -> None:
        self._state = _State(state)

    def netns_path(self, container_id: str) -> Path:
        return self._state.netns / container_id

    def owned_by(self, owner: Path) -> list[str]:
        """The containers whose endpoints the store root ``owner`` made (``system check``)."""
        mine = str(owner.resolve())
        return sorted(cid for cid, raw in self._state.records() if raw.get("owner") == mine)

    def forget_pool(self, cni_name: str) -> None:
        """Remove a removed network's (empty) address pool directory."""
        pool = self._state.ipam / cni_name
        with contextlib.suppress(OSError):
            for entry in pool.iterdir():
                if not entry.name.startswith(("last_reserved_ip", "lock")):
                    return  # an address is still handed out: leave the pool
            shutil.rmtree(pool)

    def recorded(self, container_id: str) -> bool:
        """Whether some state of the container's is left (a record, maybe half-made)."""
        return self._state.record_path(container_id).exists()

    def lookup(self, container_id: str) -> Attachment | None:
        """The container's attachment while its namespace exists."""
        raw = self._state.read(container_id)
        path = self.netns_path(container_id)
        if raw is None or not netns.exists(path):
            return None
        return Attachment(
            container_id,
            path,
            tuple(Endpoint.from_json(e["endpoint"]) for e in raw["chains"] if e.get("endpoint")),
            tuple(PortBinding.from_json(p) for p in raw.get("ports") or ()),
        )

    def setup(
        self,
        container_id: str,
        owner: Path,
        networks: Sequence[tuple[BridgeNetwork, tuple[str, ...]]],
        publish: Sequence[PortSpec] = (),
    ) -> Attachment:
        """A new namespace for the container, on each of ``networks`` (with its aliases), the
        ports of ``publish`` on the first. ``owner``: the store root, whose removal frees it.
        Nothing is left behind on failure."""
        state = self._state
        self.reclaim()
        if state.read(container_id) is not None or netns.exists(self.netns_path(container_id)):
            self.teardown(container_id)  # a start after a crash that nobody cleaned up
        path = self.netns_path(container_id)
        # The record and the namespace are made together under the lock `reclaim` takes: it
        # never sees one without the other unless a crash left it so.
        with state.lock():
            taken = [
                PortBinding.from_json(p)
                for cid, raw in state.records()
                if cid != container_id
                for p in raw.get("ports") or ()
            ]
            ports = bind_ports(publish, taken)
            record: dict[str, Any] = {
                "owner": str(owner.resolve()),  # `reclaim` tests it from any directory
                "ports": [p.to_json() for p in ports],
                "chains": [
                    {
                        "ifname": f"eth{index}",
                        "conflist": network.conflist(
                            state.ipam, [p.mapping() for p in ports] if index == 0 else ()
                        ),
                        "network": network.name,
                    }
                    for index, (network, _aliases) in enumerate(networks)
                ],
            }
            state.write(container_id, record)
            try:
                netns.create(path)
            except BaseException:
                state.record_path(container_id).unlink()
                raise
        try:
            for chain, (network, aliases) in zip(record["chains"], networks, strict=True):
                who = cni.Invocation(container_id, path, chain["ifname"])
                result = cni.add(chain["conflist"], who)
                chain["result"] = result
                found = _endpoint(network, chain["ifname"], result)
                chain["endpoint"] = Endpoint(
                    found.network,
                    found.network_id,
                    found.ifname,
                    found.address,
                    found.prefix,
                    found.gateway,
                    found.mac,
                    aliases,
                ).to_json()
                state.write(container_id, record)
        except BaseException:
            self.teardown(container_id)
            raise
        attached = self.lookup(container_id)
        if attached is None:
            raise NetworkError(f"container {container_id}: its network namespace vanished")
        return attached

    def connect(
        self, container_id: str, network: BridgeNetwork, aliases: tuple[str, ...] = ()
    ) -> Endpoint:
        """Join the running container's namespace to one more network (next ``ethN``)."""
        state = self._state
        path = self.netns_path(container_id)
        with state.lock():
            record = state.read(container_id)
            if record is None or not netns.exists(path):
                raise NetworkError(f"container {container_id}: it has no network namespace")
            chains = record["chains"]
            if any(c["endpoint"]["network_id"] == network.id for c in chains if "endpoint" in c):
                raise NetworkError(
                    f"endpoint with name {container_id[:12]} already exists in network"
                    f" {network.name}"
                )
            used = {str(c["ifname"]) for c in chains}
            ifname = next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
            chain: dict[str, Any] = {
                "ifname": ifname,
                "conflist": network.conflist(state.ipam),
                "network": network.name,
            }
            chains.append(chain)
            state.write(container_id, record)
        who = cni.Invocation(container_id, path, ifname)
        try:
            result = cni.add(chain["conflist"], who)
        except BaseException:
            self._drop_chain(container_id, ifname)
            raise
        found = _endpoint(network, ifname, result)
        endpoint = Endpoint(
            found.network, found.network_id, found.ifname, found.address,
            found.prefix, found.gateway, found.mac, aliases,
        )  # fmt: skip
        with state.lock():
            record = state.read(container_id) or record
            for other in record["chains"]:
                if other["ifname"] == ifname:
                    other["result"], other["endpoint"] = result, endpoint.to_json()
            state.write(container_id, record)
        return endpoint

    def disconnect(self, container_id: str, network_id: str) -> bool:
        """Leave one network (CNI DEL of its chain); False if the container was not on it."""
        record = self._state.read(container_id)
        for chain in (record or {}).get("chains") or []:
            endpoint = chain.get("endpoint") or {}
            if endpoint.get("network_id") == network_id:
                who = cni.Invocation(container_id, self.netns_path(container_id), chain["ifname"])
                cni.delete(chain["conflist"], who, chain.get("result"))
                self._drop_chain(container_id, str(chain["ifname"]))
                return True
        return False

    def _drop_chain(self, container_id: str, ifname: str) -> None:
        with self._state.lock():
            record = self._state.read(container_id)
            if record is not None:
                record["chains"] = [c for c in record["chains"] if c["ifname"] != ifname]
                self._state.write(container_id, record)

    def teardown(self, container_id: str) -> list[str]:
        """Undo `setup` (safe to repeat, and on a half-made one); the plugins' failures."""
        state = self._state
        raw = state.read(container_id)
        path = self.netns_path(container_id)
        failures: list[str] = []
        had_netns = netns.exists(path)
        for chain in reversed((raw or {}).get("chains") or []):
            who = cni.Invocation(container_id, path, str(chain["ifname"]))
            result = chain.get("result") or self._result_from_pool(chain, container_id)
            failures += cni.delete(chain["conflist"], who, result)
        if raw is not None and not had_netns:
            _sweep_masquerade(container_id)
            for chain in raw.get("chains") or []:
                self._free_addresses(str(chain["conflist"]["name"]), {container_id})
        with contextlib.suppress(OSError):
            netns.remove(path)
        with contextlib.suppress(FileNotFoundError):
            state.record_path(container_id).unlink()
        return failures

    def _result_from_pool(self, chain: dict[str, Any], container_id: str) -> dict[str, Any]:
        """A stand-in ADD result for a chain a crash left without one: the addresses host-local
        gave the container (each file of its pool is named by the address it holds), which is
        all the firewall plugin's DEL needs to find its rules."""
        pool = self._state.ipam / str(chain["conflist"]["name"])
        ips = []
        with contextlib.suppress(OSError):
            for entry in pool.iterdir():
                if entry.name.startswith(("last_reserved_ip", "lock")):
                    continue
                with contextlib.suppress(OSError):
                    if entry.read_text().split()[:1] == [container_id]:
                        ips.append({"address": f"{entry.name}/32"})
        return {"cniVersion": cni.CNI_VERSION, "ips": ips} if ips else {}

    def reclaim(self) -> int:
        """Tear down what nobody will (see the module): how many endpoints went."""
        state = self._state
        stale = []
        with state.lock():
            for container_id, raw in state.records():
                owner = Path(str(raw.get("owner", "")))
                if not netns.exists(self.netns_path(container_id)) or not owner.is_dir():
                    stale.append(container_id)
        for container_id in stale:
            self.teardown(container_id)
        self._free_orphan_addresses()
        return len(stale)

    def _free_orphan_addresses(self) -> None:
        """host-local files naming a container with no endpoint record (a crash before the
        record, or a record removed by hand). The record is written before any ADD."""
        known = {cid for cid, _ in self._state.records()}
        with contextlib.suppress(FileNotFoundError):
            for pool in self._state.ipam.iterdir():
                self._free_addresses(pool.name, known, keep=True)

    def _free_addresses(self, pool: str, ids: set[str], *, keep: bool = False) -> None:
        """Remove the host-local address files of ``pool`` naming one of ``ids`` (with
        ``keep``: naming none of them). The plugin's DEL frees them only through a namespace
        that still exists."""
        with contextlib.suppress(FileNotFoundError):
            for entry in (self._state.ipam / pool).iterdir():
                if entry.name.startswith(("last_reserved_ip", "lock")):
                    continue
                with contextlib.suppress(OSError):
                    words = entry.read_text().split()
                    if words and (words[0] in ids) != keep:
                        entry.unlink()


def _sweep_masquerade(container_id: str) -> None:
    """The bridge plugin's masquerade rules for the container, which its DEL finds through the
    interface in the namespace and so leaves when the namespace is already gone."""
    mark = f'id: "{container_id}"'
    saved = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False
    ).stdout
    chains: set[str] = set()
    for line in saved.splitlines():
        if line.startswith("-A POSTROUTING ") and container_id in line:
            words = shlex.split(line)
            if not any(w.endswith(mark) for w in words):
                continue
            chains.add(words[words.index("-j") + 1])
            subprocess.run(["iptables", "-t", "nat", "-D", *words[1:]], check=False)
    for chain in chains:
        subprocess.run(["iptables", "-t", "nat", "-F", chain], check=False, capture_output=True)
        subprocess.run(["iptables", "-t", "nat", "-X", chain], check=False, capture_output=True)
