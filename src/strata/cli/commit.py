"""``strata container commit``, ``diff`` and ``export``: a container's filesystem as images."""

from __future__ import annotations

import click

from strata.cli.context import App, pass_app
from strata.errors import StrataError


@click.command("commit")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <h@a.com>").')
@click.option(
    "-c",
    "--change",
    "changes",
    multiple=True,
    help="Apply Dockerfile instruction to the created image.",
)
@click.option(
    "-p",
    "--pause/--no-pause",
    default=True,
    help="Pause the container during commit (default; runc's freezer).",
)
@click.argument("container")
@click.argument("reference", required=False)
@pass_app
def commit_cmd(
    app: App,
    message: str,
    author: str,
    changes: tuple[str, ...],
    pause: bool,
    container: str,
    reference: str | None,
) -> None:
    """Create a new image from a container's changes."""
    from strata.api import commit

    image = commit(
        container,
        reference,
        message=message,
        author=author,
        changes=changes,
        pause=pause,
        root=app.store().path,
    )
    click.echo(image.id)


@click.command("diff")
@click.argument("container")
@pass_app
def diff_cmd(app: App, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    from strata.runtime.commit import changes
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    for kind, path in changes(service, service.records.get(container)):
        click.echo(f"{kind} {path}")


@click.command("export")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.argument("container")
@pass_app
def export_cmd(app: App, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from strata.runtime.commit import export
    from strata.runtime.lifecycle import Containers

    service = Containers(app.store())
    record = service.records.get(container)
    from strata.cli.output import archive_output

    try:
        with archive_output(output) as out:
            export(service, record, out)
    except BrokenPipeError:
        raise  # main dies of SIGPIPE, as Docker does
    except OSError as e:
        raise StrataError(f"cannot write the export: {e.strerror or e}") from None
