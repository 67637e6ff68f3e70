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
    from strata.runtime.containers import ContainerStore, State

    store = app.images()
    everything = store.all()
    # Build steps' images are the build cache (Docker lists them apart); tagged ones are images.
    images = [i for i in everything if i.tags or i.repo_digests or not i.intermediate]
    cache_images = [i for i in everything if i not in images]
    containers = ContainerStore(store.db).all()
    used = {c.image for c in containers}
    # Layers shared by several images count once, as in Docker's SIZE column.
    unique: dict[str, int] = {}
    unused: dict[str, int] = {}
    for image in images:
        for layer in store.layers(image):
            unique[str(layer.diff_id)] = layer.shown_size
            if str(image.manifest_digest) not in used:
                unused[str(layer.diff_id)] = layer.shown_size
    in_use: set[str] = set()
    for image in images:
        if str(image.manifest_digest) in used:
            in_use.update(str(layer.diff_id) for layer in store.layers(image))
    size = sum(unique.values())
    cache_layers = {
        str(layer.diff_id): layer.shown_size
        for image in cache_images
        for layer in store.layers(image)
        if str(layer.diff_id) not in unique
    }
    cache_size = sum(cache_layers.values())
    reclaimable = sum(v for k, v in unused.items() if k not in in_use)
    active_images = sum(1 for i in images if str(i.manifest_digest) in used)
    running = [c for c in containers if c.state is State.RUNNING]
    container_sizes = {c.id: _container_size(app, c.snapshot) for c in containers}
    stopped_size = sum(v for k, v in container_sizes.items() if k not in {c.id for c in running})
    total_containers = sum(container_sizes.values())
    rows = [
        [
            "Images",
            str(len(images)),
            str(active_images),
            human_size(size),
            _reclaimable(reclaimable, size),
        ],
        [
            "Containers",
            str(len(containers)),
            str(len(running)),
            human_size(total_containers),
            _reclaimable(stopped_size, total_containers),
        ],
        _volumes_row(app),
        [
            "Build Cache",
            str(len(cache_images)),
            "0",
            human_size(cache_size),
            human_size(cache_size),
        ],
    ]
    # Beyond Docker's rows: what the root holds that none of those account for (README). Shown
    # only when there is some, so a store without debris prints Docker's table byte for byte.
    from strata.system.context import CheckContext
    from strata.system.usage import ingest_usage, unused_snapshots

    ctx = CheckContext(app.store())
    for name, usage in (
        ("Unused Snapshots", unused_snapshots(ctx)),
        ("Ingests", ingest_usage(ctx)),
    ):
        if not usage.total:
            continue
        rows.append(
            [
                name,
                str(usage.total),
                str(usage.active),
                human_size(usage.size),
                _reclaimable(usage.reclaimable, usage.size),
            ]
        )
    click.echo(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))


@system_group.command("check")
@click.option("--repair", is_flag=True, help="Fix what can be fixed; say what cannot")
@click.option("--quick", is_flag=True, help="Do not re-hash blobs (existence only)")
@pass_app
def check_cmd(app: App, repair: bool, quick: bool) -> None:
    """Check the store against what strata promises: blobs, images, snapshots, containers,
    mounts, ingests, leases and the database. Exit status 1 if a problem is (still) there."""
    from strata.system import Problem, check

    def found(problem: Problem) -> None:
        click.echo(problem.line())
        if not repair and problem.advice:
            click.echo(f"  to fix: {problem.advice}")

    def repaired(problem: Problem, text: str, done: bool) -> None:
        click.echo(f"  {'repaired' if done else 'not repaired'}: {problem.where}: {text}")

    report = check(app.store(), quick=quick, repair=repair, on_problem=found, on_repair=repaired)
    count = len(report.problems)
    if not count:
        click.echo("no problems found")
        return
    plural = "s" if count != 1 else ""
    if repair:
        left = len(report.unrepaired)
        click.echo(f"{count} problem{plural} found, {len(report.repaired)} repaired, {left} left")
        if left:
            raise SystemExit(1)
        return
    click.echo(f"{count} problem{plural} found (strata system check --repair fixes what it can)")
    raise SystemExit(1)


def _container_size(app: App, key: str) -> int:
    """Bytes in a container's own writable layer (0 if its snapshot is gone)."""
    from strata.errors import StrataError
    from strata.snapshot.select import default_snapshotter

    root = app.store()
    try:
        return default_snapshotter(root.path, root.db).usage(key).size
    except StrataError:
        return 0


def _volumes_row(app: App) -> list[str]:
    """Docker's Local Volumes row: every volume, those in use, their bytes, the unused ones'."""
    from strata.volume.store import VolumeStore, volume_size

    store = VolumeStore(app.store().path, app.store().db)
    used = store.used()
    sizes = {v.name: volume_size(v.mountpoint) for v in store.all()}
    total = sum(sizes.values())
    unused = sum(size for name, size in sizes.items() if name not in used)
    active = sum(1 for name in sizes if name in used)
    return [
        "Local Volumes",
        str(len(sizes)),
        str(active),
        human_size(total),
        _reclaimable(unused, total),
    ]


def _reclaimable(reclaimable: int, total: int) -> str:
    if not total:
        return "0B"
    return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"


def _register_prune() -> None:
    # `system prune` lives with `container prune` in strata.cli.prune (issue 12, cmds).
    from strata.cli.prune import system_prune_cmd

    system_group.add_command(system_prune_cmd, "prune")


_register_prune()
