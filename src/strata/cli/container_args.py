"""Arguments and conventions the container commands share (Docker's)."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from strata.errors import ContainerError, InvalidArgument, NotFound, StrataError


def env_files(paths: tuple[str, ...]) -> list[str]:
    """The ``KEY=VALUE`` lines of ``--env-file`` files (blank lines and comments skipped)."""
    entries = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise NotFound(f"open {path}: {exc.strerror}") from None
        for raw in text.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                entries.append(line)
    return entries


def check_terminal(tty: bool, interactive: bool) -> None:
    """Docker's refusal of ``-it`` when our stdin is not a terminal."""
    if tty and interactive and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")


def console_size() -> tuple[int, int] | None:
    """(rows, columns) of our terminal, if we are on one."""
    from strata.runtime.tty import terminal_size

    return terminal_size(0) or terminal_size(1)


def for_each(names: tuple[str, ...], action: Callable[[str], str | None], summary: str) -> None:
    """Docker's multi-container commands: each name in turn, its output line or its error.

    One name: its error is the command's error. Several: each error on its own line, then
    ``summary`` and exit status 1 if any failed.
    """
    if len(names) == 1:
        line = action(names[0])
        if line is not None:
            click.echo(line)
        return
    failed = []
    for name in names:
        try:
            line = action(name)
        except StrataError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed.append(name)
            continue
        if line is not None:
            click.echo(line)
    if failed:
        raise ContainerError(f"{summary}: {', '.join(failed)}")
