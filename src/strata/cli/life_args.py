"""The resource, restart and health options of ``run``/``create`` (and ``update``), in Docker's
spelling, parsed as Docker's client parses them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from strata.cli.context import App, pass_app
from strata.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])

_LIMIT_OPTIONS = [
    click.option("-m", "--memory", help="Memory limit (e.g. 32m, 1g)."),
    click.option("--memory-swap", help="Memory plus swap limit; -1: unlimited swap."),
    click.option("--memory-reservation", help="Memory soft limit."),
    click.option("--cpus", help="Number of CPUs (e.g. 1.5)."),
    click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)."),
    click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)."),
    click.option("--pids-limit", type=int, help="Tune container pids limit (-1: unlimited)."),
]


def limit_options(command: F) -> F:
    """``--memory``, ``--cpus``, ``--pids-limit``... (``run``, ``create`` and ``update``)."""
    for option in reversed(_LIMIT_OPTIONS):
        command = option(command)
    return command


def life_options(command: F) -> F:
    """Every res option of ``run``/``create``: limits, ``--ulimit``, ``--restart``, health."""
    for option in reversed(
        [
            *_LIMIT_OPTIONS,
            click.option("--ulimit", "ulimits", multiple=True, help="Ulimit (name=soft[:hard])."),
            click.option(
                "--restart", default="no", help="no, on-failure[:N], always, unless-stopped"
            ),
            click.option("--health-cmd", help="Command to run to check health."),
            click.option("--health-interval", help="Time between running the check (e.g. 30s)."),
            click.option("--health-timeout", help="Maximum time to allow one check to run."),
            click.option("--health-retries", type=int, help="Failures needed to be unhealthy."),
            click.option("--health-start-period", help="Start period before failures count."),
            click.option("--no-healthcheck", is_flag=True, help="Disable any HEALTHCHECK."),
        ]
    ):
        command = option(command)
    return command


def limit_changes(kw: dict[str, Any]) -> dict[str, Any]:
    """The `Resources` fields the limit options give (only those given)."""
    from strata.runtime.resources import parse_bytes, parse_cpus, parse_swap

    changes: dict[str, Any] = {}
    if kw.get("memory") is not None:
        changes["memory"] = parse_bytes(kw["memory"], "-m, --memory")
    if kw.get("memory_swap") is not None:
        changes["memory_swap"] = parse_swap(kw["memory_swap"])
    if kw.get("memory_reservation") is not None:
        changes["memory_reservation"] = parse_bytes(
            kw["memory_reservation"], "--memory-reservation"
        )
    if kw.get("cpus") is not None:
        changes["nano_cpus"] = parse_cpus(kw["cpus"])
    if kw.get("cpu_shares") is not None:
        changes["cpu_shares"] = kw["cpu_shares"]
    if kw.get("cpuset_cpus") is not None:
        changes["cpuset_cpus"] = kw["cpuset_cpus"]
    if kw.get("pids_limit") is not None:
        changes["pids_limit"] = kw["pids_limit"]
    return changes


def life_fields(kw: dict[str, Any]) -> dict[str, Any]:
    """The `RunOptions` fields of the res options (``resources``, ``restart``...)."""
    from strata.runtime.health import given_healthcheck, parse_duration
    from strata.runtime.resources import Resources, parse_ulimit
    from strata.runtime.restart import parse_restart

    changes = limit_changes(kw)
    ulimits = tuple(parse_ulimit(u) for u in kw.get("ulimits") or ())
    restart, maximum = parse_restart(kw.get("restart") or "no")

    def duration(key: str, flag: str) -> int:
        value = kw.get(key)
        return parse_duration(value, flag) if value is not None else 0

    healthcheck = given_healthcheck(
        cmd=kw.get("health_cmd"),
        interval=duration("health_interval", "--health-interval"),
        timeout=duration("health_timeout", "--health-timeout"),
        start_period=duration("health_start_period", "--health-start-period"),
        retries=kw.get("health_retries") or 0,
        disable=bool(kw.get("no_healthcheck")),
    )
    return {
        "resources": Resources(**changes, ulimits=ulimits),
        "restart": restart,
        "restart_max": maximum,
        "healthcheck": healthcheck,
    }


@click.command("update")
@limit_options
@click.option("--restart", help="Restart policy: no|on-failure[:N]|always|unless-stopped")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def update_cmd(app: App, /, containers: tuple[str, ...], **kw: Any) -> None:
    """Update the limits or restart policy of one or more containers (live if running)."""
    from strata.cli.container_args import for_each
    from strata.runtime.lifecycle import Containers
    from strata.runtime.restart import parse_restart
    from strata.runtime.update import update_container

    changes = limit_changes(kw)
    restart = parse_restart(kw["restart"]) if kw.get("restart") is not None else None
    if not changes and restart is None:
        raise InvalidArgument("You must provide one or more flags when using this command.")
    service = Containers(app.store())

    def update(name: str) -> str:
        update_container(service, service.lookup(name), changes, restart)
        return name

    for_each(containers, update, "failed to update containers")
