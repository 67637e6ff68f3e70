"""``strata run``, ``create``, ``start``, ``ps``, ``rm`` and the ``container`` group.

Imports stay light: ``run`` loads the runtime and snapshot code it needs, never the archive or
registry code. The commands on running containers (stop, kill, wait, logs, exec) are in
:mod:`strata.cli.running`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from strata.cli.container_args import (
    check_terminal,
    console_size,
    docker_status,
    environment,
    for_each,
)
from strata.cli.context import App, pass_app
from strata.cli.format import ago, emit_formatted, truncate
from strata.cli.life_args import life_fields, life_options
from strata.errors import ContainerError, InvalidArgument, NotFound
from strata.oci.config import parse_time

if TYPE_CHECKING:
    from strata import api
    from strata.runtime.containers import Container
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions

F = TypeVar("F", bound=Callable[..., Any])


@click.group("container")
def container_group() -> None:
    """Manage containers."""


def detachable(command: F) -> F:
    """The detach keys typed on an attached terminal end the command with status 0, the
    container running on (Docker's client prints nothing for ``run`` and ``start``)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from strata.runtime.detach import Detached

        try:
            return command(*args, **kwargs)
        except Detached:
            sys.exit(0)

    return wrapper  # type: ignore[return-value]


def _create_options(command: F) -> F:
    """The options ``run`` and ``create`` share, in Docker's spelling."""
    for option in reversed(
        [
            click.option("--name", help="Assign a name to the container."),
            click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
            click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
            click.option("--rm", "remove", is_flag=True, help="Remove the container on exit."),
            click.option("-e", "--env", "env", multiple=True, help="Set environment variables."),
            click.option("--env-file", multiple=True, help="Read a file of environment variables."),
            click.option("-w", "--workdir", help="Working directory inside the container."),
            click.option("-u", "--user", help="Username or UID (<name|uid>[:<group|gid>])."),
            click.option("--hostname", help="Container host name."),
            click.option(
                "-v", "--volume", "volumes", multiple=True, help="[HOST|NAME:]CONTAINER[:ro]"
            ),
            # vol: volumes and tmpfs mounts.
            click.option("--mount", "mounts", multiple=True, help="type=bind|volume|tmpfs,…"),
            click.option("--tmpfs", multiple=True, help="Mount a tmpfs: /path[:options]."),
            click.option("--volumes-from", multiple=True, help="CONTAINER[:ro|rw]"),
            click.option("--network", "--net", default="default", help="bridge|host|none|NETWORK"),
            click.option(
                "-p", "--publish", multiple=True, help="Publish a port: [IP:]HOST:CTR[/PROTO]."
            ),
            click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports."),
            click.option("--network-alias", multiple=True, help="An alias on the network."),
            click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
            click.option("--runtime", help="runc, crun or chroot (default: what works here)."),
            click.option(
                "--pull",
                type=click.Choice(["missing", "always", "never"]),
                default="missing",
                show_default=True,
                help="Pull the image before running.",
            ),
            click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output."),
            # cmds: labels, for ps/prune --filter label=.
            click.option("-l", "--label", "labels", multiple=True, help="Set meta data."),
            click.argument("image"),
            click.argument("command", nargs=-1, type=click.UNPROCESSED),
        ]
    ):
        command = option(command)
    return command


def _options(kw: dict[str, Any]) -> RunOptions:
    from strata.runtime.options import RunOptions

    _warn_discarded_ports(kw)

    return RunOptions(
        name=kw["name"],
        command=kw["command"],
        entrypoint=kw["entrypoint"],
        env=environment(kw["env_file"], kw["env"]),
        workdir=kw["workdir"],
        user=kw["user"],
        hostname=kw["hostname"],
        network=kw["network"],
        volumes=kw["volumes"],
        tty=kw["tty"],
        interactive=kw["interactive"],
        runtime=kw["runtime"],
        autoremove=kw["remove"],
        mounts=kw["mounts"],
        tmpfs=kw["tmpfs"],
        volumes_from=kw["volumes_from"],
        publish=kw["publish"],
        publish_all=kw["publish_all"],
        aliases=kw["network_alias"],
        **life_fields(kw),
        labels=container_labels(kw["labels"]),
    )


def _warn_discarded_ports(kw: dict[str, Any]) -> None:
    """Docker's client warns, and the ports are ignored, on the host's network."""
    if kw["network"] == "host" and (kw["publish"] or kw["publish_all"]):
        click.echo("WARNING: Published ports are discarded when using host network mode", err=True)


def container_labels(given: tuple[str, ...]) -> dict[str, str]:
    """``--label KEY[=VALUE]`` as Docker's client reads them (a bare key has ``""``)."""
    labels = {}
    for item in given:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(
                f'invalid argument "{item}" for "-l, --label" flag: invalid label \'{item}\':'
                " empty name"
            )
        labels[key] = value
    return labels


def _ensure_image(app: App, name: str, policy: str, quiet: bool) -> None:
    """Docker's ``--pull``: fetch the image when it is missing (or always), reporting on
    stderr (``Unable to find image 'NAME:TAG' locally``, then the pull's own lines)."""
    if policy == "never" or (policy == "missing" and app.images().lookup(name) is not None):
        return
    from strata.cli.registry import pull_image
    from strata.oci.reference import parse_reference

    ref = parse_reference(name)
    # Tagged first: Docker's run names ":latest" here and never says "Using default tag".
    wanted = ref if ref.digest is not None else ref.with_default_tag()
    if policy == "missing":
        click.echo(f"Unable to find image '{wanted.familiar}' locally", err=True)
    pull_image(app, wanted, quiet=quiet, err=True)


def _attached(
    service: Containers, container: Container, interactive: bool, detach_keys: str
) -> NoReturn:
    """Start ``container`` attached to our stdio; exit with its exit code (0 once the
    detach keys leave it running, as Docker's client)."""
    from strata.runtime.attach import run_attached
    from strata.runtime.detach import Detached, parse_detach_keys

    keys = parse_detach_keys(detach_keys)
    size = console_size() if container.config.tty else None
    try:
        code = run_attached(
            service, container, interactive=interactive, console_size=size, detach_keys=keys
        )
    except Detached:
        sys.exit(0)
    sys.exit(code)


@container_group.command(
    "create", context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False}
)
@_create_options
@life_options
@pass_app
@docker_status("create")
def create_cmd(app: App, /, **kw: Any) -> None:
    """Create a new container; print its ID."""
    from strata.runtime.lifecycle import Containers

    options = _options(kw)
    _ensure_image(app, kw["image"], kw["pull"], kw["quiet"])
    container = Containers(app.store()).create(kw["image"], options)
    click.echo(container.id)


@container_group.command(
    "run", context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False}
)
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the ID.")
@click.option(
    "--detach-keys",
    default="ctrl-p,ctrl-q",
    help="Override the key sequence for detaching a container.",
)
@_create_options
@life_options
@pass_app
@docker_status("run")
@detachable
def run_cmd(app: App, /, detach: bool, detach_keys: str, **kw: Any) -> None:
    """Create and run a new container from an image; exits with the container's exit code."""
    from strata import api
    from strata.runtime.detach import parse_detach_keys

    if not detach:
        check_terminal(kw["tty"], kw["interactive"])
    keys = parse_detach_keys(detach_keys)
    env = environment(kw["env_file"], kw["env"])  # a bad file fails before any pull
    life = life_fields(kw)  # so does a bad limit
    _warn_discarded_ports(kw)
    _ensure_image(app, kw["image"], kw["pull"], kw["quiet"])
    store = app.store()
    store.close()  # the API opens its own; a monitor forked by the run must not share ours
    result = api.run(
        kw["image"],
        kw["command"],
        name=kw["name"],
        entrypoint=kw["entrypoint"],
        env=env,
        workdir=kw["workdir"],
        user=kw["user"],
        hostname=kw["hostname"],
        network=kw["network"],
        publish=kw["publish"],
        publish_all=kw["publish_all"],
        network_aliases=kw["network_alias"],
        volumes=kw["volumes"],
        mounts=kw["mounts"],
        tmpfs=kw["tmpfs"],
        volumes_from=kw["volumes_from"],
        runtime=kw["runtime"],
        tty=kw["tty"],
        interactive=kw["interactive"],
        stdio=(0, 1, 2),
        remove=kw["remove"],
        detach=detach,
        pull="never",  # done above, with Docker's messages
        root=store.path,
        resources=life["resources"],
        restart=kw["restart"],
        healthcheck=life["healthcheck"],
        detach_keys=keys,
        labels=container_labels(kw["labels"]),
    )
    if detach:
        click.echo(result.container.id)
        return
    sys.exit(result.exit_code)


@container_group.command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach the container's STDIN.")
@click.option(
    "--detach-keys",
    default="ctrl-p,ctrl-q",
    help="Override the key sequence for detaching a container.",
)
@click.argument("containers", nargs=-1, required=True)
@pass_app
@docker_status("start")
def start_cmd(
    app: App, attach: bool, interactive: bool, detach_keys: str, containers: tuple[str, ...]
) -> None:
    """Start one or more stopped containers."""
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        container = service.lookup(containers[0])
        if container.state is State.RUNNING:
            raise ContainerError(
                f"container {containers[0]} is already running; attaching to a running"
                " container is not supported"
            )
        check_terminal(container.config.tty, interactive)
        _attached(service, container, interactive, detach_keys)

    def start(name: str) -> str:
        container = service.lookup(name)
        if container.state is not State.RUNNING:  # starting a running container is a no-op
            service.start(container)
        return name

    for_each(containers, start, "failed to start containers")


@container_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@click.option("-v", "--volumes", is_flag=True, help="Remove the container's anonymous volumes.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def rm_cmd(app: App, force: bool, volumes: bool, names: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())

    def remove(name: str) -> str | None:
        try:
            container = service.lookup(name)
        except NotFound as exc:
            if not force:
                raise
            click.echo(f"Error: {exc}", err=True)  # as Docker: said, but not a failure
            return None
        service.remove(container, force=force, volumes=volumes)
        return name

    for_each(names, remove, "failed to remove containers")


def _status(container: api.Container, now: datetime) -> str:
    # Docker's State.String(): paused first, then restarting, then health.
    if container.state == "running" and container.paused:
        since = ago(parse_time(container.started or container.created), now)
        return f"Up {since.removesuffix(' ago')} (Paused)"
    if container.restarting:  # Docker's: the last exit's code and time
        when = ago(parse_time(container.finished or container.created), now)
        return f"Restarting ({container.exit_code}) {when}"
    if container.state == "running":
        since = ago(parse_time(container.started or container.created), now)
        up = f"Up {since.removesuffix(' ago')}"
        if container.health == "starting":
            return f"{up} (health: starting)"
        return f"{up} ({container.health})" if container.health else up
    if container.state == "exited":
        when = ago(parse_time(container.finished or container.created), now)
        return f"Exited ({container.exit_code}) {when}"
    return "Created"


@container_group.command("ls")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", help="'table', 'json', or a Go template.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output by conditions.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@pass_app
def ps_cmd(
    app: App,
    show_all: bool,
    quiet: bool,
    no_trunc: bool,
    fmt: str | None,
    filters: tuple[str, ...],
    last: int,
    latest: bool,
    size: bool,
) -> None:
    """List containers (running ones; all with -a)."""
    from strata import api
    from strata.network.ports import display_ports

    now = datetime.now(UTC)
    rows = []
    limit = 1 if latest else last
    size = size or (fmt is not None and ".Size" in fmt)  # as Docker's client decides it
    listed = api.containers(
        all=show_all, filters=filters, limit=limit, size=size, root=app.store().path
    )
    for c in listed:
        # Docker's rendering: arguments with a space in single quotes.
        command = " ".join(f"'{a}'" if " " in a else a for a in c.command)
        row = {
            "ID": c.id if no_trunc else c.short_id,
            "Image": c.image_ref,
            "Command": f'"{command if no_trunc else truncate(command, 20)}"',
            "CreatedAt": c.created,
            "RunningFor": ago(parse_time(c.created), now),
            "Status": _status(c, now),
            "Ports": display_ports(c.ports),
            "Names": c.name,
            "State": "paused" if c.paused else c.state,
        }
        if size:
            row["Size"] = _size(c)
        rows.append(row)
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    columns = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if size:
        headers.append("SIZE")
        columns.append("Size")
    emit_formatted(fmt, headers, rows, lambda r: [r[k] for k in columns], click.echo)


def _size(container: api.Container) -> str:
    """Docker's SIZE: the container's own layer, and with its image (``2B (virtual 199MB)``)."""
    from strata.cli.format import human_size

    own = container.size_rw or 0
    return f"{human_size(own)} (virtual {human_size(container.size_root_fs or 0)})"


container_group.add_command(ps_cmd, "ps")
container_group.add_command(ps_cmd, "list")
container_group.add_command(rm_cmd, "remove")


def _register_running_commands() -> None:
    # stop/kill/wait/logs/exec act on running containers; they live in strata.cli.running.
    from strata.cli.running import exec_cmd, kill_cmd, logs_cmd, stop_cmd, wait_cmd

    for command in (stop_cmd, kill_cmd, wait_cmd, logs_cmd, exec_cmd):
        container_group.add_command(command)


_register_running_commands()


def _register_commit_commands() -> None:
    # commit/diff/export live in strata.cli.commit (they write images, not processes).
    from strata.cli.commit import commit_cmd, diff_cmd, export_cmd

    container_group.add_command(commit_cmd, "commit")
    container_group.add_command(diff_cmd, "diff")
    container_group.add_command(export_cmd, "export")
    from strata.cli.inspect import container_inspect_cmd

    container_group.add_command(container_inspect_cmd, "inspect")


_register_commit_commands()


def _register_network_commands() -> None:
    from strata.cli.network import port_cmd

    container_group.add_command(port_cmd, "port")


_register_network_commands()


def _register_life_commands() -> None:
    # res: `update` (limits, restart policy) lives in strata.cli.life_args with its options.
    from strata.cli.life_args import update_cmd

    container_group.add_command(update_cmd, "update")


_register_life_commands()


def _register_cmds_commands() -> None:
    # cp, rename, top, pause, unpause, stats, prune, attach (issue 12's "commands" part).
    from strata.cli.copy import cp_cmd
    from strata.cli.prune import container_prune_cmd
    from strata.cli.running import attach_cmd, pause_cmd, rename_cmd, top_cmd, unpause_cmd

    container_group.add_command(cp_cmd, "cp")
    container_group.add_command(container_prune_cmd, "prune")
    from strata.cli.stats import stats_cmd

    container_group.add_command(stats_cmd, "stats")
    for command in (pause_cmd, unpause_cmd, rename_cmd, top_cmd, attach_cmd):
        container_group.add_command(command)


_register_cmds_commands()
