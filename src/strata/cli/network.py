"""``strata port`` and ``strata network ...``: containers' ports and the networks they join."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import App, pass_app
from strata.errors import NotFound

if TYPE_CHECKING:
    from strata.runtime.containers import Container
    from strata.runtime.networking import ContainerNetworks


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@pass_app
def port_cmd(app: App, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from strata.network.ports import port_lines
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    found = service.lookup(container)
    lines = port_lines(service.networks.ports(found), private_port)
    if private_port is not None and not lines:
        raise NotFound(f"No public port '{private_port}' published for {container}")
    for line in lines:
        click.echo(line)


def _endpoint_doc(
    network_id: str, aliases: list[str] | None, gateway: str, address: str, prefix: int, mac: str
) -> dict[str, Any]:
    """One entry of NetworkSettings.Networks, with the keys of the anchors' Docker in order."""
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": aliases,
        "MacAddress": mac,
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": gateway,
        "IPAddress": address,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def network_settings(networks: ContainerNetworks, container: Container) -> dict[str, Any]:
    """``inspect``'s NetworkSettings, keys in Docker's order: the default bridge's address at
    the top, as Docker's; each network's endpoint under Networks (empty values while the
    container is stopped, as Docker shows a created container's); the published ports."""
    from strata.runtime.networking import joined

    attached = networks.lookup(container)
    ports: dict[str, Any] = {}
    for port in networks.ports(container):
        key = f"{port.private}/{port.type}"
        if not port.ip:
            ports.setdefault(key, None)
            continue
        ports.setdefault(key, []).append({"HostIp": port.ip, "HostPort": str(port.public)})
    top = {"Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}
    entries: dict[str, Any] = {}
    if attached is not None:
        for e in attached.endpoints:
            if e.network == "bridge":
                top = {
                    "Gateway": e.gateway,
                    "IPAddress": e.address,
                    "IPPrefixLen": e.prefix,
                    "MacAddress": e.mac,
                }
            aliases = list(e.aliases) if e.network != "bridge" else None
            entries[e.network] = _endpoint_doc(
                e.network_id, aliases, e.gateway, e.address, e.prefix, e.mac
            )
    else:
        for ident in joined(container.config) or (container.config.network,):
            found = networks.records.find(ident)
            name = found.name if found is not None else ident
            entries[name] = _endpoint_doc("", None, "", "", 0, "")
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": str(attached.netns) if attached is not None else "",
        "Ports": dict(sorted(ports.items())),  # a Go map: Docker prints its keys sorted
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": top["Gateway"],
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": top["IPPrefixLen"],
        "IPv6Gateway": "",
        "MacAddress": top["MacAddress"],
        "Networks": dict(sorted(entries.items())),
    }


def port_bindings(publish: tuple[str, ...]) -> dict[str, Any]:
    """``inspect``'s HostConfig.PortBindings: the ``-p`` values as given (HostPort "" for an
    ephemeral one)."""
    from strata.network.ports import parse_publish

    bindings: dict[str, Any] = {}
    for spec in publish:
        for port in parse_publish(spec):
            bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
                {"HostIp": port.host_ip, "HostPort": str(port.host_port or "")}
            )
    return dict(sorted(bindings.items()))  # a Go map: Docker prints its keys sorted


@click.group("network")
def network_group() -> None:
    """Manage networks."""


def _networks(app: App) -> ContainerNetworks:
    from strata.runtime.lifecycle import Containers

    return Containers(app.store()).networks


def _rows(app: App) -> list[dict[str, Any]]:
    """``network ls``'s rows: the predefined three and the user networks, by name (Docker's)."""
    from strata.network.records import NetworkRecords

    rows = [
        {"ID": "bridge", "Name": "bridge", "Driver": "bridge", "Internal": False, "Labels": {}},
        {"ID": "host", "Name": "host", "Driver": "host", "Internal": False, "Labels": {}},
        {"ID": "none", "Name": "none", "Driver": "null", "Internal": False, "Labels": {}},
    ]
    for network in NetworkRecords(app.store().db).all():
        rows.append(
            {
                "ID": network.id,
                "Name": network.name,
                "Driver": "bridge",
                "Internal": network.internal,
                "Labels": dict(network.labels),
                "CreatedAt": network.created,
            }
        )
    return sorted(rows, key=lambda r: str(r["Name"]))


def _matches(row: dict[str, Any], filters: tuple[str, ...]) -> bool:
    """Docker's ``--filter``: name= and id= (substring and prefix), label=, driver=, type=;
    several values of one key are alternatives."""
    wanted: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or key not in ("name", "id", "label", "driver", "type"):
            raise click.UsageError(f"invalid filter '{text}'")
        wanted.setdefault(key, []).append(value)
    return all(any(_check(row, key, v) for v in values) for key, values in wanted.items())


def _check(row: dict[str, Any], key: str, value: str) -> bool:
    if key == "name":
        return value in str(row["Name"])
    if key == "id":
        return str(row["ID"]).startswith(value)
    if key == "driver":
        return value == str(row["Driver"])
    if key == "type":
        predefined = row["Name"] in ("bridge", "host", "none")
        return value == ("builtin" if predefined else "custom")
    label, sep, wanted = value.partition("=")
    labels: dict[str, str] = row["Labels"]
    return label in labels and (not sep or labels[label] == wanted)


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (name=, id=, label=...).")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("--format", "fmt", help="'table', 'json', or a Go template.")
@pass_app
def ls_cmd(
    app: App, quiet: bool, filters: tuple[str, ...], no_trunc: bool, fmt: str | None
) -> None:
    """List networks."""
    from strata.cli.format import emit_formatted

    rows = [r for r in _rows(app) if _matches(r, filters)]
    for row in rows:
        row["ID"] = _short(str(row["ID"]), no_trunc)
        row["Scope"] = "local"
        row["IPv6"] = "false"
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    emit_formatted(
        fmt,
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        rows,
        lambda r: [r["ID"], r["Name"], r["Driver"], r["Scope"]],
        click.echo,
        context="network",
    )


def _short(ident: str, no_trunc: bool) -> str:
    if no_trunc or len(ident) < 64:
        return ident
    return ident[:12]


@network_group.command("create")
@click.option("-d", "--driver", default="bridge", help="Driver (bridge only).")
@click.option("--subnet", help="Subnet in CIDR format.")
@click.option("--gateway", help="IPv4 gateway for the subnet.")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.argument("name")
@pass_app
def create_cmd(
    app: App,
    driver: str,
    subnet: str | None,
    gateway: str | None,
    labels: tuple[str, ...],
    internal: bool,
    name: str,
) -> None:
    """Create a network; print its ID."""
    from strata.errors import InvalidArgument
    from strata.network.records import NetworkRecords

    if driver != "bridge":
        raise InvalidArgument(f"plugin {driver!r} not found: strata has the bridge driver only")
    found = NetworkRecords(app.store().db).create(
        name,
        subnet=subnet,
        gateway=gateway,
        internal=internal,
        labels=dict(label.partition("=")[::2] for label in labels),
    )
    click.echo(found.id)


def network_document(app: App, networks: ContainerNetworks, text: str) -> dict[str, Any]:
    """``docker network inspect``'s document."""
    found = networks.records.get(text)
    containers: dict[str, Any] = {}
    for container in networks.users(found, running_only=True):
        attached = networks.lookup(container)
        for endpoint in attached.endpoints if attached is not None else ():
            if endpoint.network_id == found.id:
                containers[container.id] = {
                    "Name": container.name,
                    "EndpointID": "",
                    "MacAddress": endpoint.mac,
                    "IPv4Address": f"{endpoint.address}/{endpoint.prefix}",
                    "IPv6Address": "",
                }
    return {
        "Name": found.name,
        "Id": found.id,
        "Created": found.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": found.subnet, "Gateway": found.gateway}],
        },
        "Internal": found.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": found.bridge},
        "Labels": dict(found.labels),
    }


@network_group.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def inspect_cmd(app: App, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    import json

    from strata.cli.format import check_inspect_template, emit_inspect
    from strata.errors import NetworkNotFound

    if fmt:
        check_inspect_template(fmt)
    networks = _networks(app)
    docs, missing = [], []
    for name in names:
        try:
            docs.append(network_document(app, networks, name))
        except NetworkNotFound:
            missing.append(name)
    if fmt:
        emit_inspect(fmt, docs, click.echo)
    else:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        raise NetworkNotFound(f"network {missing[0]} not found")


@network_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_app
def rm_cmd(app: App, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    from strata.errors import StrataError

    networks = _networks(app)
    failed: StrataError | None = None
    for name in names:
        try:
            networks.remove(name)
        except StrataError as exc:
            if failed is not None:
                click.echo(f"Error: {failed}", err=True)
            failed = exc
            continue
        click.echo(name)
    if failed is not None:
        raise failed


network_group.add_command(rm_cmd, "remove")
network_group.add_command(ls_cmd, "list")


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_app
def prune_cmd(app: App, force: bool) -> None:
    """Remove all unused networks."""
    if not force and not click.confirm(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    removed = _networks(app).prune()
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)
        click.echo("")  # Docker's blank line after the list


@network_group.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Add a network-scoped alias.")
@click.argument("network")
@click.argument("container")
@pass_app
def connect_cmd(app: App, aliases: tuple[str, ...], network: str, container: str) -> None:
    """Connect a container to a network."""
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    service.networks.connect(network, service.lookup(container), aliases)


@network_group.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect.")
@click.argument("network")
@click.argument("container")
@pass_app
def disconnect_cmd(app: App, force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    from strata.runtime.lifecycle import Containers

    del force
    service = Containers(app.store())
    service.networks.disconnect(network, service.lookup(container))
