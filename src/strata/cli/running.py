"""``strata stop``, ``kill``, ``wait``, ``logs`` and ``exec``: commands on running containers.

Each works from any shell on a container started from any other: the state they act on is the
runtime's and the owner lock's (see :mod:`strata.runtime.lifecycle`), not this process's.
"""

from __future__ import annotations

import os
import sys
from typing import IO

import click

from strata.cli.container_args import (
    check_terminal,
    console_size,
    docker_status,
    environment,
    for_each,
)
from strata.cli.context import App, pass_app
from strata.errors import Conflict, InvalidArgument


@click.command("stop")
@click.option(
    "-t", "--time", "--timeout", "timeout", type=int, help="Seconds to wait before killing it."
)
@click.option("-s", "--signal", "signal_name", help="Signal to send (default: the image's).")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def stop_cmd(
    app: App, timeout: int | None, signal_name: str | None, containers: tuple[str, ...]
) -> None:
    """Stop one or more running containers (SIGTERM, then SIGKILL after 10 seconds)."""
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import parse_signal

    service = Containers(app.store())
    sig = parse_signal(signal_name) if signal_name else None

    def stop(name: str) -> str:
        service.stop(service.lookup(name), timeout=timeout, sig=sig)
        return name

    for_each(containers, stop, "failed to stop containers")


@click.command("kill")
@click.option("-s", "--signal", "signal_name", default="KILL", help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def kill_cmd(app: App, signal_name: str, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import parse_signal

    service = Containers(app.store())
    sig = parse_signal(signal_name)

    def kill(name: str) -> str:
        try:
            service.kill(service.lookup(name), sig)
        except Conflict as exc:
            raise Conflict(f"Cannot kill container: {name}: {exc}") from None
        return name

    for_each(containers, kill, "failed to kill containers")


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def wait_cmd(app: App, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    for_each(containers, lambda name: str(service.wait(service.lookup(name))), "failed to wait")


def _tail(text: str) -> int | None:
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise InvalidArgument(f'invalid value for "tail": {text!r}') from None
    return None if count < 0 else count


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help='Lines from the end to show (default "all").')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
@pass_app
def logs_cmd(app: App, follow: bool, tail: str, timestamps: bool, container: str) -> None:
    """Fetch the logs of a container: its stdout to stdout, its stderr to stderr."""
    from strata.runtime.lifecycle import Containers, owned
    from strata.runtime.logs import LogEntry, read_entries
    from strata.runtime.logs import follow as follow_log

    service = Containers(app.store())
    record = service.lookup(container)
    path = service.log_path(record)
    out: dict[str, IO[bytes]] = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}

    def show(entries: list[LogEntry]) -> None:
        for entry in entries:
            prefix = f"{entry.time} " if timestamps else ""
            out.get(entry.stream, sys.stdout.buffer).write((prefix + entry.text).encode())
        for stream in out.values():
            stream.flush()

    entries, offset = read_entries(path, tail=_tail(tail))
    show(entries)
    if follow:
        for entry in follow_log(path, offset, running=lambda: owned(service, record)):
            show([entry])


@click.command(
    "exec", context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False}
)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read a file of environment variables.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID (<name|uid>[:<group|gid>]).")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_app
@docker_status("exec")
def exec_cmd(
    app: App,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    workdir: str | None,
    user: str | None,
    container: str,
    command: tuple[str, ...],
) -> None:
    """Execute a command in a running container; exits with the command's exit status."""
    from strata.runtime.backend import ProcessIO
    from strata.runtime.execution import ExecOptions
    from strata.runtime.lifecycle import Containers

    check_terminal(tty, interactive)
    service = Containers(app.store())
    record = service.lookup(container)
    options = ExecOptions(
        command=command,
        env=environment(env_file, env),
        workdir=workdir,
        user=user,
        tty=tty,
        console_size=console_size() if tty else None,
    )
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
    sys.exit(service.exec(record, options, stdio=ProcessIO(stdin, 1, 2)))


@click.command("pause")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def pause_cmd(app: App, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    from strata.runtime.lifecycle import Containers
    from strata.runtime.pausing import pause

    service = Containers(app.store())

    def act(name: str) -> str:
        pause(service, service.lookup(name))
        return name

    for_each(containers, act, "failed to pause containers")


@click.command("unpause")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def unpause_cmd(app: App, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    from strata.runtime.lifecycle import Containers
    from strata.runtime.pausing import unpause

    service = Containers(app.store())

    def act(name: str) -> str:
        unpause(service, service.lookup(name))
        return name

    for_each(containers, act, "failed to unpause containers")


@click.command("rename")
@click.argument("container")
@click.argument("new_name")
@pass_app
def rename_cmd(app: App, container: str, new_name: str) -> None:
    """Rename a container."""
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    record = service.lookup(container)
    service.records.rename(record.id, new_name)


@click.command(
    "top", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def top_cmd(app: App, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container (host ``ps`` options, default -ef)."""
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers
    from strata.runtime.top import namespace_pids, ps_table, render, require_pids

    service = Containers(app.store())
    record = service.lookup(container)
    if record.state is not State.RUNNING or not record.pid:
        raise Conflict(f"Container {record.id} is not running")
    pids = require_pids(namespace_pids(record.pid), record.id)
    click.echo(render(ps_table(ps_args, pids)), nl=False)


@click.command("attach")
@click.option(
    "--detach-keys",
    default="ctrl-p,ctrl-q",
    help="Override the key sequence for detaching a container.",
)
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option(
    "--sig-proxy", type=click.BOOL, default=True, help="Proxy all received signals to the process."
)
@click.argument("container")
@pass_app
def attach_cmd(app: App, detach_keys: str, no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from strata.runtime.attaching import attach_running
    from strata.runtime.detach import Detached, parse_detach_keys
    from strata.runtime.lifecycle import Containers

    keys = parse_detach_keys(detach_keys)
    service = Containers(app.store())
    record = service.lookup(container)
    try:
        code = attach_running(
            service,
            record,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
            stdin=None if no_stdin else 0,
            detach_keys=keys,
            sig_proxy=sig_proxy,
        )
    except Detached:
        # Docker's client: the escape ends `attach` as an error.
        click.echo("read escape sequence", err=True)
        sys.exit(1)
    sys.exit(code)
