"""``strata container commit``, ``diff`` and ``export``: a container's filesystem as images."""

from __future__ import annotations

import click


@click.command("commit")
def commit_cmd() -> None:
    """Create a new image from a container's changes."""


@click.command("diff")
def diff_cmd() -> None:
    """Inspect changes to files or directories on a container's filesystem."""


@click.command("export")
def export_cmd() -> None:
    """Export a container's filesystem as a tar archive."""
