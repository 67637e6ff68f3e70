"""``strata stats``: Docker's table of containers' resource use, once or every second."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import App, pass_app
from strata.cli.format import emit_formatted, human_size

if TYPE_CHECKING:
    from strata.runtime.containers import Container
    from strata.runtime.stats import Sample

HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
           "BLOCK I/O", "PIDS"]  # fmt: skip
COLUMNS = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
INTERVAL = 1.0  # seconds between the two readings a CPU % is made of (Docker's daemon: 1 s)


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units, 4 significant digits (``304KiB``, ``23.54GiB``)."""
    unit = 0
    while size >= 1024 and unit < len(_BINARY) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g}{_BINARY[unit]}"


def _row(given: str, container: Container, before: Sample | None, after: Sample | None,
         no_trunc: bool) -> dict[str, Any]:  # fmt: skip
    from strata.runtime.stats import cpu_percent

    if after is None:
        cpu = memory = limit = 0.0
        net = block = (0, 0)
        pids = 0
    else:
        cpu = cpu_percent(before, after) if before is not None else 0.0
        memory, limit = after.memory, after.limit
        net, block, pids = (after.received, after.sent), (after.read, after.written), after.pids
    return {
        "BlockIO": f"{human_size(block[0])} / {human_size(block[1])}",
        "CPUPerc": f"{cpu:.2f}%",
        "Container": given,
        "ID": container.id if no_trunc else container.id[:12],
        "MemPerc": f"{memory / limit * 100 if limit else 0.0:.2f}%",
        "MemUsage": f"{bytes_size(memory)} / {bytes_size(limit)}",
        "Name": container.name,
        "NetIO": f"{human_size(net[0])} / {human_size(net[1])}",
        "PIDs": str(pids),
    }


@click.command("stats")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option(
    "--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result."
)
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "fmt", help="'table', 'json', or a Go template.")
@click.argument("containers", nargs=-1)
@pass_app
def stats_cmd(
    app: App,
    show_all: bool,
    no_stream: bool,
    no_trunc: bool,
    fmt: str | None,
    containers: tuple[str, ...],
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers
    from strata.runtime.stats import sample

    service = Containers(app.store())

    def chosen() -> list[tuple[str, Container]]:
        if containers:
            return [(name, service.lookup(name)) for name in containers]
        listed = []
        for record in service.records.all():
            current = service.refresh(record) if record.state is State.RUNNING else record
            if current is not None and (show_all or current.state is State.RUNNING):
                listed.append((current.name, current))
        return listed

    def read(targets: list[tuple[str, Container]]) -> dict[str, Sample]:
        return {c.id: sample(c.pid) for _, c in targets if c.state is State.RUNNING and c.pid}

    targets = chosen()
    before = read(targets)
    while True:
        time.sleep(INTERVAL)
        after = read(targets)
        rows = [_row(given, c, before.get(c.id), after.get(c.id), no_trunc) for given, c in targets]
        if not no_stream:
            click.echo("\033[2J\033[H", nl=False)  # Docker's redraw: clear, cursor home
        emit_formatted(fmt, HEADERS, rows, lambda r: [r[k] for k in COLUMNS], click.echo,
                       context="stats")  # fmt: skip
        sys.stdout.flush()
        if no_stream:
            return
        targets = chosen() if not containers else targets
        before = after
