"""Published ports parsed and shown as Docker parses and shows them (pure: no network made)."""

from __future__ import annotations

import pytest

from strata.errors import InvalidArgument
from strata.network.ports import (
    PortBinding,
    PortSpec,
    container_ports,
    display_ports,
    parse_publish,
    port_lines,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", [PortSpec(80)]),
        ("8080:80", [PortSpec(80, "tcp", "", 8080)]),
        ("127.0.0.1:8080:80/udp", [PortSpec(80, "udp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortSpec(80, "tcp", "127.0.0.1", 0)]),
        ("0.0.0.0:8080:80", [PortSpec(80, "tcp", "", 8080)]),
        ("8000-8001:80-81", [PortSpec(80, "tcp", "", 8000), PortSpec(81, "tcp", "", 8001)]),
    ],
)
def test_publish_specs_parse_as_dockers(text: str, expected: list[PortSpec]) -> None:
    assert parse_publish(text) == expected


@pytest.mark.parametrize(
    "text", ["", "x", "0", "70000", "1:2:3:4", "80/icmp", "300.1.1.1:80:80", "81-80:80-81"]
)
def test_bad_publish_specs_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_publish(text)


def test_ps_ports_and_port_lines_read_as_dockers() -> None:
    # Docker 20.10 for `-p 8181:80 -p 127.0.0.1:8182:81/udp -p 90 --expose 7000` (its IPv6
    # `[::]` twins left out: strata publishes on IPv4 only, README's known differences).
    bindings = [
        PortBinding(80, "tcp", "", 8181),
        PortBinding(81, "udp", "127.0.0.1", 8182),
        PortBinding(90, "tcp", "", 32768),
    ]
    ports = container_ports(bindings, ["7000/tcp", "80/tcp", "81/udp", "90/tcp"])
    assert display_ports(ports) == (
        "7000/tcp, 0.0.0.0:8181->80/tcp, 127.0.0.1:8182->81/udp, 0.0.0.0:32768->90/tcp"
    )
    assert port_lines(ports) == [
        "80/tcp -> 0.0.0.0:8181",
        "81/udp -> 127.0.0.1:8182",
        "90/tcp -> 0.0.0.0:32768",
    ]
    assert port_lines(ports, "80") == ["0.0.0.0:8181"]
    assert port_lines(ports, "81/udp") == ["127.0.0.1:8182"]
    assert port_lines(ports, "82") == []


def test_same_host_and_container_ports_group_into_ranges() -> None:
    ports = container_ports(
        [PortBinding(80, "tcp", "", 80), PortBinding(81, "tcp", "", 81)], ["7000/tcp", "7001/tcp"]
    )
    assert display_ports(ports) == "0.0.0.0:80-81->80-81/tcp, 7000-7001/tcp"
