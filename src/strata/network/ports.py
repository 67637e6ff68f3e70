"""Published ports: ``-p``/``-P`` parsed, host ports chosen, and shown as Docker shows them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strata.errors import InvalidArgument, NetworkError

EPHEMERAL = (32768, 60999)  # Docker's default range (the kernel's ip_local_port_range)


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One ``-p`` request: ``host_port`` 0 for an ephemeral one, ``host_ip`` "" for all."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0


@dataclass(frozen=True, slots=True)
class PortBinding:
    """A published port as set up: the host port is known."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int

    def to_json(self) -> dict[str, object]:
        return {
            "container_port": self.container_port,
            "protocol": self.protocol,
            "host_ip": self.host_ip,
            "host_port": self.host_port,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> PortBinding:
        return cls(
            int(str(raw["container_port"])),
            str(raw["protocol"]),
            str(raw["host_ip"]),
            int(str(raw["host_port"])),
        )

    def mapping(self) -> dict[str, object]:
        """portmap's runtimeConfig entry."""
        entry: dict[str, object] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid port {text!r} in {spec!r}: a number from 1 to 65535")
    return int(text)


def _range(text: str, spec: str) -> list[int]:
    first, sep, last = text.partition("-")
    if not sep:
        return [_port(text, spec)]
    low, high = _port(first, spec), _port(last, spec)
    if high < low:
        raise InvalidArgument(f"invalid port range {text!r} in {spec!r}")
    return list(range(low, high + 1))


def parse_publish(spec: str) -> list[PortSpec]:
    """``-p [IP:][HOST[-HOST]:]CTR[-CTR][/tcp|udp]`` as one PortSpec per container port."""
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto {protocol!r} in {spec!r}")
    host_ip = ""
    if body.startswith("["):  # [IPv6]:HOST:CTR
        end = body.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid port specification {spec!r}")
        host_ip, body = body[1:end], body[end + 2 :]
    parts = body.split(":")
    if len(parts) == 3:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise InvalidArgument(f"invalid port specification {spec!r}")
    if host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address {host_ip!r} in {spec!r}") from None
    containers = _range(container, spec)
    hosts = _range(host, spec) if host else [0] * len(containers)
    if len(hosts) == 1 and len(containers) == 1:
        pass
    elif len(hosts) != len(containers):
        if len(containers) == 1:  # HOST-RANGE:CTR: Docker takes the first free port
            raise InvalidArgument(
                f"a host port range for one container port is not supported: {spec!r}"
            )
        raise InvalidArgument(f"invalid ranges specified for container and host ports: {spec!r}")
    return [
        PortSpec(c, protocol, "" if host_ip in ("", "0.0.0.0") else host_ip, h)
        for c, h in zip(containers, hosts, strict=True)
    ]


def parse_expose(text: str) -> tuple[int, str]:
    """An image's ``ExposedPorts`` key (``80/tcp``) as (port, protocol)."""
    port, _, protocol = text.partition("/")
    return _port(port, text), protocol or "tcp"


def _taken_by_host(host_ip: str, port: int, protocol: str) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, kind) as probe:
        try:
            probe.bind((host_ip or "0.0.0.0", port))
        except OSError:
            return True
    return False


def bind_ports(
    wanted: Sequence[PortSpec], taken: Iterable[PortBinding], *, start: int = EPHEMERAL[0]
) -> list[PortBinding]:
    """Host ports for ``wanted``: a given port must be free (else Docker's error), an
    ephemeral one is the first free one of Docker's range. ``taken``: other containers'."""
    used = {(b.protocol, b.host_port) for b in taken}
    bound: list[PortBinding] = []
    following = {"tcp": start, "udp": start, "sctp": start}  # Docker's pools: one per protocol
    for want in wanted:
        if want.host_port:
            key = (want.protocol, want.host_port)
            if key in used or _taken_by_host(want.host_ip, want.host_port, want.protocol):
                address = want.host_ip or "0.0.0.0"
                raise NetworkError(
                    f"Bind for {address}:{want.host_port} failed: port is already allocated"
                )
            port = want.host_port
        else:
            port = following[want.protocol]
            while (want.protocol, port) in used or _taken_by_host(
                want.host_ip, port, want.protocol
            ):
                port += 1
                if port > EPHEMERAL[1]:
                    raise NetworkError("no free host port in the ephemeral range")
            following[want.protocol] = port + 1
        used.add((want.protocol, port))
        bound.append(PortBinding(want.container_port, want.protocol, want.host_ip, port))
    return bound


@dataclass(frozen=True, slots=True)
class Port:
    """A container's port as Docker's API lists it: ``ip`` empty and ``public`` 0 when it is
    exposed only."""

    private: int
    type: str
    ip: str = ""
    public: int = 0


def container_ports(bindings: Iterable[PortBinding], exposed: Iterable[str]) -> list[Port]:
    """The ports ``ps`` and ``inspect`` show: each binding, and each exposed port not bound."""
    ports = [
        Port(b.container_port, b.protocol, b.host_ip or "0.0.0.0", b.host_port) for b in bindings
    ]
    bound = {(p.private, p.type) for p in ports}
    for text in exposed:
        port, protocol = parse_expose(text)
        if (port, protocol) not in bound:
            bound.add((port, protocol))
            ports.append(Port(port, protocol))
    return ports


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def display_ports(ports: Iterable[Port]) -> str:
    """``ps``'s PORTS, as docker/cli renders it: exposed ports (and ports published on the same
    host port) grouped into ranges first, then the other mappings, each set by private port."""
    ordered = sorted(ports, key=lambda p: (p.private, p.ip, p.public, p.type))
    groups: dict[str, list[int]] = {}  # key -> [first, last], in first-seen order
    result: list[str] = []
    mappings: list[str] = []
    for port in ordered:
        key = port.type
        if port.ip:
            if port.public != port.private:
                target = _host_port(port.ip, port.public)
                mappings.append(f"{target}->{port.private}/{port.type}")
                continue
            key = f"{port.ip}/{port.type}"
        group = groups.get(key)
        if group is None:
            groups[key] = [port.private, port.private]
        elif port.private == group[1] + 1:
            group[1] = port.private
        else:
            result.append(_group(key, *group))
            del groups[key]
            groups[key] = [port.private, port.private]
    result += [_group(key, first, last) for key, (first, last) in groups.items()]
    return ", ".join(result + mappings)


def _group(key: str, first: int, last: int) -> str:
    ip, _, kind = key.rpartition("/")
    span = str(first) if first == last else f"{first}-{last}"
    return f"{ip}:{span}->{span}/{kind}" if ip else f"{span}/{kind}"


def port_lines(ports: Iterable[Port], private: str | None = None) -> list[str]:
    """``docker port``: ``80/tcp -> 0.0.0.0:8080`` lines, or for ``private`` (``80``,
    ``80/udp``) the host addresses alone; exposed-only ports are not listed."""
    bound = sorted((p for p in ports if p.ip), key=lambda p: (p.private, p.type, p.ip))
    if private is None:
        return [f"{p.private}/{p.type} -> {_host_port(p.ip, p.public)}" for p in bound]
    number, _, kind = private.partition("/")
    return [
        _host_port(p.ip, p.public)
        for p in bound
        if str(p.private) == number and p.type == (kind or "tcp")
    ]
