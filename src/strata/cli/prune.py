"""``strata container prune`` and ``strata system prune``: Docker's prompts and summaries."""

from __future__ import annotations

import sys

import click

from strata.cli.context import App, pass_app
from strata.cli.format import human_size

SYSTEM_WARNING = "WARNING! This will remove:\n"


def confirm(text: str) -> bool:
    """Docker's ``[y/N]`` prompt (its spelling, not click's): yes only for ``y``/``yes``."""
    click.echo(f"{text}\nAre you sure you want to continue? [y/N] ", nl=False)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')."
)
@pass_app
def container_prune_cmd(app: App, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    from strata.runtime.filters import parse_filters
    from strata.runtime.lifecycle import Containers
    from strata.runtime.prune import PRUNE_FILTERS, prune_containers

    parsed = parse_filters(filters, PRUNE_FILTERS)
    if not force and not confirm("WARNING! This will remove all stopped containers."):
        return
    pruned = prune_containers(Containers(app.store()), parsed)
    if pruned.deleted:
        click.echo("Deleted Containers:")
        for cid in pruned.deleted:
            click.echo(cid)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(pruned.reclaimed)}")


def _prune_networks(app: App) -> list[str]:
    """The user networks no container is on, removed (`network prune`'s)."""
    from strata.runtime.lifecycle import Containers

    return Containers(app.store()).networks.prune()


def _prune_volumes(app: App) -> tuple[list[str], int]:
    """The volumes no container uses, removed (`volume prune`'s, Docker 20.10's rule)."""
    from strata.api.volumes import prune_unused_volumes

    return prune_unused_volumes(root=app.store().path)


@click.command("prune")
@click.option(
    "-a",
    "--all",
    "prune_all",
    is_flag=True,
    help="Remove all unused images not just dangling ones.",
)
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')."
)
@pass_app
def system_prune_cmd(
    app: App, prune_all: bool, volumes: bool, force: bool, filters: tuple[str, ...]
) -> None:
    """Remove unused data: stopped containers, unused networks, dangling images, build cache."""
    from strata.runtime.filters import parse_filters
    from strata.runtime.imageusers import image_users
    from strata.runtime.lifecycle import Containers
    from strata.runtime.prune import PRUNE_FILTERS, prune_containers

    parsed = parse_filters(filters, PRUNE_FILTERS)
    items = [
        "all stopped containers",
        "all networks not used by at least one container",
        *(["all anonymous volumes not used by at least one container"] if volumes else []),
        "all images without at least one container associated to them"
        if prune_all
        else "all dangling images",
        "all build cache" if prune_all else "unused build cache",
    ]
    text = SYSTEM_WARNING + "".join(f"  - {item}\n" for item in items)
    if not force and not confirm(text):
        return
    pruned = prune_containers(Containers(app.store()), parsed)
    reclaimed = pruned.reclaimed
    if pruned.deleted:
        click.echo("Deleted Containers:")
        for cid in pruned.deleted:
            click.echo(cid)
        click.echo("")
    if volumes:
        gone, size = _prune_volumes(app)
        reclaimed += size
        if gone:
            click.echo("Deleted Volumes:")
            for name in gone:
                click.echo(name)
            click.echo("")
    networks = _prune_networks(app)
    if networks:
        click.echo("Deleted Networks:")
        for name in networks:
            click.echo(name)
        click.echo("")
    report = app.images().prune(users=image_users, dangling_only=not prune_all)
    reclaimed += report.reclaimed
    if report.untagged or report.deleted:
        click.echo("Deleted Images:")
        for untagged in report.untagged:
            click.echo(f"untagged: {untagged}")
        for deleted in report.deleted:
            click.echo(f"deleted: {deleted}")
        click.echo("")
    from strata.builder.prune import prune_build_cache

    removed, cache_space = prune_build_cache(app.store())
    reclaimed += cache_space
    if removed:
        click.echo("Deleted build cache objects:")
        for image_id in removed:
            click.echo(image_id)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")
