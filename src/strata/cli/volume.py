"""``strata volume create``, ``ls``, ``inspect``, ``rm`` and ``prune``, in Docker 20.10's shapes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import App, pass_app
from strata.cli.format import check_inspect_template, emit_formatted, emit_inspect, human_size
from strata.errors import InvalidArgument, StrataError

if TYPE_CHECKING:
    from strata.volume import Volume

_FILTERS = ("dangling", "name", "label", "driver")


@click.group("volume")
def volume_group() -> None:
    """Manage volumes."""


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {what} {value!r}: expected KEY[=VALUE]")
        pairs[key] = val
    return pairs


@volume_group.command("create")
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver name.")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options.")
@click.option("--name", "name_option", help="Specify volume name.")
@click.argument("name", required=False)
@pass_app
def create_cmd(
    app: App,
    driver: str,
    labels: tuple[str, ...],
    opts: tuple[str, ...],
    name_option: str | None,
    name: str | None,
) -> None:
    """Create a volume; print its name."""
    from strata.api.volumes import create_volume

    if name and name_option and name != name_option:
        raise InvalidArgument(
            f"conflicting options: either specify --name or provide positional arg, not both"
            f" ({name_option} and {name})"
        )
    made = create_volume(
        name or name_option,
        driver=driver,
        labels=_pairs(labels, "label"),
        options=_pairs(opts, "option"),
        root=app.store().path,
    )
    click.echo(made.name)


def _filter(filters: tuple[str, ...]) -> Callable[[Volume, int], bool]:
    """Docker's ``volume ls --filter``: each key's values OR-ed, the keys AND-ed."""
    wanted: dict[str, list[str]] = {}
    for text in filters:
        key, eq, value = text.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {text}")
        if key not in _FILTERS:
            raise InvalidArgument(f"Invalid filter '{key}'")
        wanted.setdefault(key, []).append(value)
    for value in wanted.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(
                f"Invalid filter 'dangling={value}': the value must be true or false"
            )

    def label_matches(volume: Volume, spec: str) -> bool:
        key, eq, value = spec.partition("=")
        return key in volume.labels and (not eq or volume.labels[key] == value)

    def keep(volume: Volume, users: int) -> bool:
        if "dangling" in wanted and not any(
            (users == 0) == (v.lower() in ("true", "1")) for v in wanted["dangling"]
        ):
            return False
        if "name" in wanted and not any(v in volume.name for v in wanted["name"]):
            return False
        if "driver" in wanted and volume.driver not in wanted["driver"]:
            return False
        return all(label_matches(volume, spec) for spec in wanted.get("label", []))

    return keep


def _labels(volume: Volume) -> str:
    return ",".join(f"{k}={v}" for k, v in volume.labels.items())


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (dangling, name,…).")
@click.option("--format", "fmt", help="'table', 'json', or a Go template.")
@pass_app
def ls_cmd(app: App, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    from strata.api.volumes import volumes

    keep = _filter(filters)
    rows: list[dict[str, Any]] = [
        {
            # The fields docker/cli's volume context renders (json shows every one).
            "Availability": "N/A",
            "Driver": v.driver,
            "Group": "N/A",
            "Labels": _labels(v),
            "Links": "N/A",
            "Mountpoint": str(v.mountpoint),
            "Name": v.name,
            "Scope": "local",
            "Size": "N/A",
            "Status": "N/A",
        }
        for v, users in volumes(root=app.store().path)
        if keep(v, users)
    ]
    if quiet:
        for row in rows:
            click.echo(row["Name"])
        return
    emit_formatted(
        fmt,
        ["DRIVER", "VOLUME NAME"],
        rows,
        lambda r: [r["Driver"], r["Name"]],
        click.echo,
        context="volume",
    )


@volume_group.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def inspect_cmd(app: App, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    from strata.api.volumes import volume

    if fmt:
        check_inspect_template(fmt)
    docs, failure = [], None
    for name in names:
        try:
            docs.append(volume(name, root=app.store().path).document())
        except StrataError as exc:
            failure = failure or exc
    if fmt:
        emit_inspect(fmt, docs, click.echo, kind="volume")
    else:
        click.echo(json.dumps(docs, indent=4))
    if failure is not None:
        raise failure


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def rm_cmd(app: App, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes; a volume a container uses stays."""
    from strata.api.volumes import remove_volume

    failed = False
    for name in names:  # as Docker: each in turn, each error on its own line
        try:
            remove_volume(name, force=force, root=app.store().path)
        except StrataError as exc:
            if len(names) == 1:
                raise
            click.echo(f"Error: {exc}", err=True)
            failed = True
            continue
        click.echo(name)
    if failed:
        sys.exit(1)


@volume_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="label=KEY[=VALUE] (or label!=…).")
@pass_app
def prune_cmd(app: App, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all volumes no container uses (Docker 20.10: named ones too)."""
    from strata.api.volumes import prune_unused_volumes

    keep = _prune_filter(filters)
    if not force and not click.confirm(
        "WARNING! This will remove all local volumes not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    removed, reclaimed = prune_unused_volumes(keep=keep, root=app.store().path)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


def _prune_filter(filters: tuple[str, ...]) -> Callable[[Volume], bool]:
    """``volume prune --filter``: ``label=`` keeps what lacks the label, ``label!=`` what has it."""
    specs: list[tuple[bool, str, str | None]] = []
    for text in filters:
        key, eq, value = text.partition("=")
        negate = key.endswith("!")
        key = key.removesuffix("!")
        if not eq or key != "label":
            raise InvalidArgument(f"Invalid filter '{key or text}'")
        name, has_value, label_value = value.partition("=")
        specs.append((negate, name, label_value if has_value else None))

    def keep(volume: Volume) -> bool:
        for negate, name, value in specs:
            matches = name in volume.labels and (value is None or volume.labels[name] == value)
            if matches == negate:
                return True
        return False

    return keep


volume_group.add_command(ls_cmd, "list")
volume_group.add_command(rm_cmd, "remove")
