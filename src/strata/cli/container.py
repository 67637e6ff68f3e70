"""``strata run``, ``ps``, ``rm`` and the ``container`` group.

Imports stay light: ``run`` loads the runtime and snapshot code it needs, never the archive or
registry code.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from strata.cli.context import App, pass_app
from strata.cli.format import ago, emit_formatted, truncate
from strata.errors import InvalidArgument, NotFound
from strata.oci.config import parse_time


@click.group("container")
def container_group() -> None:
    """Manage containers."""


def _env_files(paths: tuple[str, ...]) -> list[str]:
    entries = []
    for path in paths:
        try:
            text = open(path, encoding="utf-8").read()  # noqa: SIM115 - small file
        except OSError as exc:
            raise NotFound(f"open {path}: {exc.strerror}") from None
        for raw in text.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                entries.append(line)
    return entries


@container_group.command(
    "run", context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False}
)
@click.option("--name", help="Assign a name to the container.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-d", "--detach", is_flag=True, help="Run in the background (not yet supported).")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--hostname", help="Container host name.")
@click.option("--network", default="host", show_default=True, help="host or none.")
@click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount HOST:CONTAINER[:ro].")
@click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image.")
@click.option("--runtime", help="runc, crun or chroot (default: what works here).")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_app
def run_cmd(
    app: App,
    name: str | None,
    interactive: bool,
    tty: bool,
    detach: bool,
    remove: bool,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    workdir: str | None,
    user: str | None,
    hostname: str | None,
    network: str,
    volumes: tuple[str, ...],
    entrypoint: str | None,
    runtime: str | None,
    image: str,
    command: tuple[str, ...],
) -> None:
    """Create and run a new container from an image; exits with the container's exit code."""
    from strata.runtime.lifecycle import Containers, RunOptions

    if detach:
        raise InvalidArgument("run -d: detached containers are not supported yet")
    if tty and not sys.stdin.isatty():
        raise InvalidArgument("the input device is not a TTY")
    options = RunOptions(
        name=name,
        command=command,
        entrypoint=entrypoint,
        env=(*_env_files(env_file), *env),
        workdir=workdir,
        user=user,
        hostname=hostname,
        network=network,
        volumes=volumes,
        tty=tty,
        interactive=interactive,
        runtime=runtime,
    )
    service = Containers(app.store())
    container = service.create(image, options)
    try:
        code = service.run(container)
    finally:
        if remove:
            service.remove(service.records.get(container.id), force=True)
    sys.exit(code)


@container_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def rm_cmd(app: App, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    failed = False
    for name in names:
        try:
            service.remove(service.records.get(name), force=force)
        except NotFound as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
            continue
        click.echo(name)
    if failed:
        sys.exit(1)


@container_group.command("ls")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", help="'table', 'json', or a Go template.")
@pass_app
def ps_cmd(app: App, show_all: bool, quiet: bool, no_trunc: bool, fmt: str | None) -> None:
    """List containers (running ones; all with -a)."""
    from strata.runtime.containers import ContainerStore, State

    now = datetime.now(UTC)
    rows = []
    for c in ContainerStore(app.store().db).all():
        if not show_all and c.state is not State.RUNNING:
            continue
        created = parse_time(c.created)
        if c.state is State.RUNNING:
            status = f"Up {ago(parse_time(c.started or c.created), now).removesuffix(' ago')}"
        elif c.state is State.EXITED:
            status = f"Exited ({c.exit_code}) {ago(parse_time(c.finished or c.created), now)}"
        else:
            status = "Created"
        command = " ".join(c.config.get("args", []))
        rows.append(
            {
                "ID": c.id if no_trunc else c.short_id,
                "Image": c.image_ref,
                "Command": f'"{command if no_trunc else truncate(command, 20)}"',
                "CreatedAt": c.created,
                "RunningFor": ago(created, now),
                "Status": status,
                "Ports": "",
                "Names": c.name,
                "State": c.state.value,
            }
        )
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    emit_formatted(
        fmt,
        headers,
        rows,
        lambda r: [
            r["ID"],
            r["Image"],
            r["Command"],
            r["RunningFor"],
            r["Status"],
            r["Ports"],
            r["Names"],
        ],  # fmt: skip
        click.echo,
    )


container_group.add_command(ps_cmd, "ps")


def _register_commit_commands() -> None:
    # commit/diff/export live in strata.cli.commit (they write images, not processes).
    from strata.cli.commit import commit_cmd, diff_cmd, export_cmd

    container_group.add_command(commit_cmd, "commit")
    container_group.add_command(diff_cmd, "diff")
    container_group.add_command(export_cmd, "export")


_register_commit_commands()
