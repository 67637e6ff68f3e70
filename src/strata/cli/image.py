"""``strata image ...``: ls, inspect, tag, rm, prune, import, bootstrap, save, load."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal, cast

import click

from strata import api
from strata.cli.build import build_cmd
from strata.cli.context import App, pass_app
from strata.cli.format import (
    ago,
    check_inspect_template,
    emit_formatted,
    emit_inspect,
    human_size,
)
from strata.cli.history import history_cmd
from strata.cli.refmatch import reference_filter
from strata.cli.registry import pull_cmd, push_cmd
from strata.errors import InvalidArgument, NotFound, StrataError
from strata.oci.reference import parse_reference


@click.group("image")
def image_group() -> None:
    """Manage images."""


image_group.add_command(history_cmd)
image_group.add_command(build_cmd)
image_group.add_command(push_cmd)
image_group.add_command(pull_cmd)


# -- ls -------------------------------------------------------------------------------------


def _ls_rows(images: list[api.Image]) -> list[dict[str, Any]]:
    """One row per (image, tag) as ``docker image ls``; untagged images as ``<none>``."""
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for image in images:
        created = image.created
        base = {
            "ID": image.short_id,
            "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC") if created else "",
            "CreatedSince": ago(created, now),
            "Size": human_size(image.size),
            "VirtualSize": human_size(image.size, 4),  # Docker: 4 significant digits here
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
            "Containers": "N/A",
        }
        digests = {d.split("@", 1)[0]: d.split("@", 1)[1] for d in image.repo_digests}
        if image.tags:
            for name in image.tags:
                tag = parse_reference(name)
                rows.append(
                    {
                        **base,
                        "Repository": tag.familiar_name,
                        "Tag": tag.tag or "<none>",
                        "Digest": digests.get(tag.name, "<none>"),
                    }
                )
        elif image.repo_digests:
            for name, digest in digests.items():
                repo = parse_reference(name).familiar_name
                rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": digest})
        else:
            rows.append({**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"})
    return rows


@image_group.command("ls")
@click.option(
    "-a",
    "--all",
    "show_all",
    is_flag=True,
    help="Show all images (default hides intermediate images).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    help="Filter output (dangling=true|false, reference=PATTERN).",
)
@click.option(
    "--format", "fmt", help="'table', 'json', or a Go template such as '{{.Repository}}:{{.Tag}}'."
)
@click.argument("repository", required=False)
@pass_app
def ls_cmd(
    app: App,
    show_all: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    fmt: str | None,
    repository: str | None,
) -> None:
    """List images."""
    images = api.images(all=show_all, root=app.store().path)
    rows = _ls_rows(images)
    if no_trunc:
        full = {i.short_id: i.id for i in images}
        for row in rows:
            row["ID"] = full[row["ID"]]
    rows = _filter_rows(rows, filters, repository)
    if quiet:
        # One ID per row, repeated for each name, exactly as `docker images -q`.
        for row in rows:
            click.echo(row["ID"])
        return
    headers = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "CREATED", "SIZE"]

    def cells(row: Mapping[str, Any]) -> list[str]:
        extra = [row["Digest"]] if digests else []
        return [row["Repository"], row["Tag"], *extra, row["ID"], row["CreatedSince"], row["Size"]]

    emit_formatted(fmt, headers, rows, cells, click.echo, context="image")


def _filter_rows(
    rows: list[dict[str, Any]], filters: tuple[str, ...], repository: str | None
) -> list[dict[str, Any]]:
    for spec in filters:
        key, sep, value = spec.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter {spec!r} (expected name=value)")
        if key == "dangling":
            if value not in ("true", "false"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            want = value == "true"
            rows = [r for r in rows if (r["Repository"] == "<none>") == want]
        elif key == "reference":
            rows = reference_filter(rows, value)
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
    if repository:  # Docker: `images NAME` is `--filter reference=NAME`
        rows = reference_filter(rows, repository)
    return rows


# -- inspect --------------------------------------------------------------------------------


@image_group.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def inspect_cmd(app: App, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more images."""
    from strata.cli.imagedoc import image_document

    if fmt:
        check_inspect_template(fmt)  # Docker refuses a bad template before looking anything up
    store = app.images()
    docs = []
    missing = []
    for name in names:
        image = store.lookup(name)
        if image is None:
            missing.append(name)
            continue
        docs.append(image_document(store, image))
    if fmt:
        emit_inspect(fmt, docs, click.echo, "image")
    elif docs or not missing:
        click.echo(json.dumps(docs, indent=4))
    if missing:
        if len(missing) == 1:
            raise NotFound(f"No such image: {missing[0]}")
        raise NotFound("No such images: " + ", ".join(missing))


# -- tag, rm, prune -------------------------------------------------------------------------


@image_group.command("tag")
@click.argument("source")
@click.argument("target")
@pass_app
def tag_cmd(app: App, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    store = app.images()
    ref = parse_reference(target)
    store.tag(store.get(source), ref)


@image_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete unused layers.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def rm_cmd(app: App, force: bool, no_prune: bool, names: tuple[str, ...]) -> None:
    """Remove one or more images."""
    from strata.runtime.imageusers import image_users

    store = app.images()
    failed = fatal = False
    for name in names:  # as Docker: each name in turn, whatever happened to the one before
        try:
            report = store.remove(name, users=image_users, force=force, prune=not no_prune)
        except StrataError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
            fatal = fatal or not isinstance(exc, NotFound)
            continue
        for untagged in report.untagged:
            click.echo(f"Untagged: {untagged}")
        for deleted in report.deleted:
            click.echo(f"Deleted: {deleted}")
    # Docker's -f: an image that is not there is said, but is no failure; a conflict is.
    if failed and (fatal or not force):
        sys.exit(1)


@image_group.command("prune")
@click.option(
    "-a",
    "--all",
    "prune_all",
    is_flag=True,
    help="Remove all unused images, not just dangling ones.",
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_app
def prune_cmd(app: App, prune_all: bool, force: bool) -> None:
    """Remove unused images."""
    what = (
        "all images without at least one container associated to them"
        if prune_all
        else "all dangling images"
    )
    if not force and not click.confirm(
        f"WARNING! This will remove {what}.\nAre you sure you want to continue?", default=False
    ):
        return
    from strata.runtime.imageusers import image_users

    report = app.images().prune(users=image_users, dangling_only=not prune_all)
    if report.untagged or report.deleted:
        click.echo("Deleted Images:")
        for untagged in report.untagged:
            click.echo(f"untagged: {untagged}")
        for deleted in report.deleted:
            click.echo(f"deleted: {deleted}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")


# -- import, bootstrap ----------------------------------------------------------------------


@contextlib.contextmanager
def _open_source(source: str) -> Iterator[BinaryIO]:
    if source == "-":
        yield sys.stdin.buffer
    elif source.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            response = urllib.request.urlopen(source, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotFound(f"{source}: cannot download: {reason}") from exc
        with response:
            yield response
    else:
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise NotFound(f"{source}: {exc.strerror}") from exc
        with handle:
            yield handle


@image_group.command("import")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Apply Dockerfile instruction to the created image.",
)
@click.argument("source")
@click.argument("reference", required=False)
@pass_app
def import_cmd(
    app: App, message: str, changes: tuple[str, ...], source: str, reference: str | None
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from strata.image.imports import import_rootfs

    names = [parse_reference(reference)] if reference else []
    store = app.images()
    with _open_source(source) as stream:
        image = import_rootfs(
            store, stream, name=source, names=names, message=message, changes=changes
        )
    click.echo(str(image.id))


@image_group.command("bootstrap")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite.")
@click.option("--mirror", help="Debian mirror URL (default: this host's apt sources).")
@click.option("--variant", default="minbase", show_default=True, help="debootstrap variant.")
@click.option(
    "--include", "include", multiple=True, help="Extra packages (repeatable or comma-separated)."
)
@click.option(
    "--tool",
    default="auto",
    show_default=True,
    help="mmdebstrap, debootstrap, or auto (mmdebstrap if installed).",
)
@click.option(
    "--timestamp",
    type=int,
    help="SOURCE_DATE_EPOCH for reproducible output (default: the suite's Release date).",
)
@click.argument("reference")
@pass_app
def bootstrap_cmd(
    app: App,
    suite: str,
    mirror: str | None,
    variant: str,
    include: tuple[str, ...],
    tool: str,
    timestamp: int | None,
    reference: str,
) -> None:
    """Create a Debian base image from a Debian mirror with mmdebstrap or debootstrap."""
    from strata.image.bootstrap import BootstrapOptions, bootstrap

    ref = parse_reference(reference)
    packages = tuple(p for item in include for p in item.split(",") if p)
    options = BootstrapOptions(
        suite=suite,
        mirror=mirror,
        variant=variant,
        timestamp=timestamp,
        tool=tool,
        include=packages,
    )
    name = ref.with_default_tag().familiar
    progress = None
    if sys.stderr.isatty():
        # A live line only on a terminal: elsewhere a failing run prints just its error line.
        import time

        started = time.monotonic()

        def progress(stage: str) -> None:
            line = f"[+] {name}: {stage}"[:70]
            elapsed = time.monotonic() - started
            sys.stderr.write(f"\r\x1b[2K{line}  {elapsed:.1f}s")
            sys.stderr.flush()

    try:
        done = bootstrap(app.images(), ref, options, progress)
    finally:
        if progress is not None:
            sys.stderr.write("\r\x1b[2K")
    # Which tool made it, on any output: the image ID alone goes to stdout, for scripts.
    click.echo(
        f"Bootstrapped {name} with {done.tool} ({suite}, {variant}) from {done.mirror}", err=True
    )
    click.echo(str(done.image.id))


# -- save, load -----------------------------------------------------------------------------


@image_group.command("save")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["docker-archive", "oci-archive"]),
    default="docker-archive",
    show_default=True,
    help="Archive format.",
)
@click.argument("names", nargs=-1, required=True)
@pass_app
def save_cmd(app: App, output: str | None, fmt: str, names: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from strata.api import save
    from strata.cli.output import archive_output

    kind = cast('Literal["docker-archive", "oci-archive"]', fmt)
    save(list(names), lambda: archive_output(output), format=kind, root=app.store().path)


@image_group.command("load")
@click.option(
    "-i",
    "--input",
    "source",
    default="-",
    help="Read from tar archive file (or an OCI layout directory), instead of STDIN.",
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_app
def load_cmd(app: App, source: str, quiet: bool) -> None:
    """Load images from a tar archive (docker-archive or oci-archive) or STDIN."""
    from strata.api import Progress, load

    if source == "-" and sys.stdin.isatty():
        raise InvalidArgument(
            "requested load from stdin, but stdin is empty (use -i FILE or redirect)"
        )
    said: list[Progress] = []
    load(
        sys.stdin.buffer if source == "-" else source,
        name=source,
        root=app.store().path,
        progress=said.append,
    )
    if quiet:
        return
    for event in said:  # said once the whole archive is in: a failed load names nothing
        click.echo(f"Loaded image: {event.text}" if event.text else f"Loaded image ID: {event.id}")
