"""``strata system ...``: disk usage and store-wide maintenance."""

from __future__ import annotations

import click

from strata.cli.context import App, pass_app
from strata.cli.format import human_size, table


@click.group("system")
def system_group() -> None:
    """Manage strata."""


@system_group.command("df")
@pass_app
def df_cmd(app: App) -> None:
    """Show disk usage: images, containers, local volumes, build cache."""
    store = app.images()
    images = store.all()
    # Layers shared by several images count once, as in Docker's SIZE column.
    unique: dict[str, int] = {}
    for image in images:
        for layer in store.layers(image):
            unique[str(layer.diff_id)] = layer.size
    size = sum(unique.values())
    rows = [
        ["Images", str(len(images)), "0", human_size(size), _reclaimable(size, size)],
        ["Containers", "0", "0", "0B", "0B"],
        ["Local Volumes", "0", "0", "0B", "0B"],
        ["Build Cache", "0", "0", "0B", "0B"],
    ]
    click.echo(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))


def _reclaimable(reclaimable: int, total: int) -> str:
    if not total:
        return "0B"
    return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
