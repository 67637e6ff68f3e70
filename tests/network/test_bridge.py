"""Bridge networks end to end: real CNI plugins, real runc, real iptables.

Each test checks what a container leaves on the host when it goes (its namespace, address
file, veth, iptables rules), as these are host-wide and outlive a store root.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.network.attachments import state_dir
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]

HTTPD = """\
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 64, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
  while (my $l = <$c>) { last if $l =~ /^\\r?\\n$/; }
  print $c "HTTP/1.0 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nhello\\n";
  close $c;
}
"""


@pytest.fixture
def debian(strata: Strata, tmp_path: Path) -> Iterator[Strata]:
    if not Path("/usr/lib/cni/bridge").exists():
        pytest.skip("needs containernetworking-plugins")
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    (tmp_path / "httpd.pl").write_text(HTTPD)
    yield strata
    ids = strata("ps", "-aq", check=False).stdout.split()
    if ids:
        strata("rm", "-f", *ids, check=False)
    for name in strata("network", "ls", "-q", "--filter", "type=custom").stdout.split():
        strata("network", "rm", name, check=False)


def _left_by(cid: str) -> list[str]:
    """What of the container is still on the host: state files, addresses, iptables rules."""
    state = state_dir()
    found = [str(p) for p in (state / "netns" / cid, state / "endpoints" / f"{cid}.json")]
    found = [p for p in found if os.path.exists(p)]
    for pool in (state / "ipam").glob("*"):
        for entry in pool.iterdir():
            if entry.is_file() and cid in entry.read_text(errors="replace"):
                found.append(str(entry))
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [line for line in rules.splitlines() if cid in line]
    return found


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _inspect(strata: Strata, cid: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(strata("inspect", cid).stdout)[0]
    return doc


def _get(url: str) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: bytes = response.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_container_gets_an_address_on_the_bridge_and_gives_it_back(debian: Strata) -> None:
    cid = debian("run", "-d", "debian:bookworm", "sleep", "300").stdout.strip()
    settings = _inspect(debian, cid)["NetworkSettings"]
    assert isinstance(settings, dict)
    address = settings["IPAddress"]
    assert address.startswith("10.66.") and settings["Gateway"] == "10.66.0.1"
    assert settings["Networks"]["bridge"]["IPAddress"] == address
    hosts = debian("exec", cid, "cat", "/etc/hosts").stdout
    assert f"{address}\t{cid[:12]}" in hosts
    assert _left_by(cid)  # while it runs: its namespace, address, rules
    debian("rm", "-f", cid)
    assert _left_by(cid) == []
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert [line for line in rules.splitlines() if f"{address}/32 " in line] == []


def test_the_bridge_reaches_out_through_nat(debian: Strata) -> None:
    out = debian("run", "--rm", "debian:bookworm", "getent", "hosts", "deb.debian.org")
    assert "deb.debian.org" in out.stdout


def test_a_published_port_answers_from_the_host(debian: Strata, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cid = debian(
        "run", "-d", "-p", f"{port}:80", "-p", "127.0.0.1::81/udp",
        "-v", f"{tmp_path}/httpd.pl:/httpd.pl:ro", "debian:bookworm", "perl", "/httpd.pl",
    ).stdout.strip()  # fmt: skip
    assert _get(f"http://127.0.0.1:{port}/") == b"hello\n"
    lines = debian("port", cid).stdout.splitlines()
    assert lines[0] == f"80/tcp -> 0.0.0.0:{port}"
    assert lines[1].startswith("81/udp -> 127.0.0.1:")
    assert debian("port", cid, "80").stdout == f"0.0.0.0:{port}\n"
    error = debian.fail("port", cid, "82")
    assert error == f"Error: No public port '82' published for {cid}"
    ps = debian("ps", "--format", "{{.Ports}}").stdout.strip()
    assert ps.startswith(f"0.0.0.0:{port}->80/tcp, 127.0.0.1:")
    doc = _inspect(debian, cid)
    assert doc["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": str(port)}]
    debian("rm", "-f", cid)
    assert _left_by(cid) == []


def test_a_port_in_use_fails_cleanly(debian: Strata) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        links = _links()
        proc = debian("run", "--rm", "-p", f"{port}:80", "debian:bookworm", "true", check=False)
        assert proc.returncode == 125
        assert proc.stderr == f"Error: Bind for 0.0.0.0:{port} failed: port is already allocated\n"
        assert _links() - links == set()  # no veth left (others' may go meanwhile)
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
        assert [line for line in rules.stdout.splitlines() if f"dport {port}" in line] == []
    assert debian("ps", "-aq").stdout == ""


def test_containers_on_a_user_network_find_each_other_by_name(
    debian: Strata, tmp_path: Path
) -> None:
    nid = debian("network", "create", "--label", "app=1", "appnet").stdout.strip()
    assert len(nid) == 64
    assert debian("network", "ls", "-q", "--filter", "name=appnet").stdout == f"{nid[:12]}\n"
    debian(
        "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www",
        "-v", f"{tmp_path}/httpd.pl:/httpd.pl:ro", "debian:bookworm", "perl", "/httpd.pl",
    )  # fmt: skip
    fetch = (
        'use IO::Socket::INET; my $s; for (1..50) { $s = IO::Socket::INET->new("$ARGV[0]:80")'
        ' and last; select(undef, undef, undef, 0.1) } die "connect: $!" unless $s;'
        ' print $s "GET / HTTP/1.0\\r\\n\\r\\n"; print <$s>'
    )
    for name in ("web", "www"):
        out = debian(
            "run", "--rm", "--network", "appnet", "debian:bookworm", "perl", "-e", fetch, name
        )
        assert out.stdout.endswith("hello\n")
    error = debian.fail("network", "rm", "appnet")
    assert error == (
        f"Error: error while removing network: network appnet id {nid} has active endpoints"
    )
    debian("rm", "-f", "web")
    assert debian("network", "rm", "appnet").stdout == "appnet\n"
    assert debian.fail("network", "inspect", "appnet") == "Error: network appnet not found"


def test_connect_joins_a_running_container_to_another_network(debian: Strata) -> None:
    debian("network", "create", "n1")
    cid = debian("run", "-d", "--name", "c1", "debian:bookworm", "sleep", "300").stdout.strip()
    debian("run", "-d", "--name", "c2", "--network", "n1", "debian:bookworm", "sleep", "300")
    debian("network", "connect", "--alias", "one", "n1", "c1")
    networks = _inspect(debian, cid)["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert sorted(networks) == ["bridge", "n1"]
    assert "c2" in debian("exec", "c1", "getent", "hosts", "c2").stdout
    assert "one" in debian("exec", "c2", "getent", "hosts", "one").stdout
    debian("network", "disconnect", "n1", "c1")
    assert debian("exec", "c1", "getent", "hosts", "c2", check=False).returncode == 2


def test_a_sigkilled_owner_leaves_nothing_the_next_look_cannot_clean(debian: Strata) -> None:
    cid = debian("run", "-d", "debian:bookworm", "sleep", "300").stdout.strip()
    pid = int(_inspect(debian, cid)["State"]["Pid"])  # type: ignore[index]
    monitor = int(Path(f"/proc/{pid}/status").read_text().split("PPid:")[1].split()[0])
    os.kill(monitor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while debian("ps", "-q").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert debian("ps", "-a", "--format", "{{.Status}}").stdout.startswith("Exited (255)")
    assert _left_by(cid) == []


def test_host_and_none_are_unchanged(debian: Strata) -> None:
    none = debian("run", "--rm", "--network", "none", "debian:bookworm", "cat", "/proc/net/dev")
    assert [line.split(":")[0].strip() for line in none.stdout.splitlines()[2:]] == ["lo"]
    host = debian("run", "--rm", "--network", "host", "debian:bookworm", "cat", "/proc/net/dev")
    assert "eth0" in host.stdout and "strata0" in host.stdout


def test_bad_network_input_is_one_line(debian: Strata) -> None:
    assert debian.fail("run", "--rm", "--network", "nosuch", "debian:bookworm", "true") == (
        "Error: network nosuch not found"
    )
    assert debian.fail("network", "rm", "nosuch") == "Error: network nosuch not found"
    assert debian.fail("run", "--rm", "-p", "99999:80", "debian:bookworm", "true").startswith(
        "Error: invalid port '99999'"
    )
    debian("network", "create", "dup")
    assert debian.fail("network", "create", "dup") == (
        "Error: network with name dup already exists"
    )


def test_publish_all_maps_every_exposed_port_to_an_ephemeral_one(debian: Strata) -> None:
    debian("import", "-c", "EXPOSE 80", "-c", "EXPOSE 53/udp", str(debian_rootfs_tar()), "exp:1")
    cid = debian("run", "-d", "-P", "exp:1", "sleep", "300").stdout.strip()
    ports = _inspect(debian, cid)["NetworkSettings"]["Ports"]  # type: ignore[index]
    assert sorted(ports) == ["53/udp", "80/tcp"]
    for key in ports:
        (binding,) = ports[key]
        assert binding["HostIp"] == "0.0.0.0" and int(binding["HostPort"]) >= 32768
    assert _inspect(debian, cid)["HostConfig"]["PublishAllPorts"] is True  # type: ignore[index]
    debian("rm", "-f", cid)
    assert _left_by(cid) == []


def test_system_check_finds_and_tears_down_an_endpoint_nobody_will(debian: Strata) -> None:
    from strata.network.attachments import Attachments
    from strata.network.bridge import default_network

    cid = "f" * 64  # a container this root never recorded: a crash between the two
    Attachments().setup(cid, debian.root, [(default_network(), ())])
    try:
        check = debian("system", "check", check=False)
        assert f"network endpoint {cid[:12]}: its container is gone" in check.stdout
        repair = debian("system", "check", "--repair", check=False)
        assert f"tore down the network of container {cid[:12]}" in repair.stdout
        assert _left_by(cid) == []
    finally:
        Attachments().teardown(cid)


def test_a_setup_killed_before_it_recorded_the_result_is_undone(debian: Strata) -> None:
    from strata.network.attachments import Attachments, _State
    from strata.network.bridge import default_network

    cid = "e" * 64
    attachments = Attachments()
    address = attachments.setup(cid, debian.root, [(default_network(), ())]).endpoints[0].address
    state = _State()
    record = state.read(cid)
    assert record is not None
    for chain in record["chains"]:
        del chain["result"]  # as if the command died between the ADD and its record
    state.write(cid, record)
    assert attachments.teardown(cid) == []
    assert _left_by(cid) == []
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert [line for line in rules.splitlines() if f"{address}/32 " in line] == []
