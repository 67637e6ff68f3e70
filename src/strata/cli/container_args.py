"""Arguments and conventions the container commands share (Docker's)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import click

from strata.errors import (
    CommandNotExecutable,
    CommandNotFound,
    ContainerError,
    InvalidArgument,
    NotFound,
    StrataError,
)

# Docker's exit statuses for what goes wrong before or instead of the container's own code.
RUN_FAILED = 125  # run: strata itself failed (bad option, no such image, name in use, ...)
EXEC_CANNOT_START = 126  # exec: the command could not be started, found or not


@contextlib.contextmanager
def docker_status(command: str) -> Iterator[None]:
    """Give the command's errors Docker's exit status for it.

    ``run`` fails with 125, except that a command not found (127) or not executable (126)
    keeps its own; ``exec`` fails with 126 when its command cannot start, 1 otherwise; ``start``
    and ``create`` fail with 1 whatever the cause (the daemon's errors, in Docker's client).
    """
    try:
        yield
    except NotATerminal:
        raise
    except (CommandNotFound, CommandNotExecutable) as exc:
        if command == "exec":
            exc.exit_code = EXEC_CANNOT_START
        elif command != "run":
            exc.exit_code = 1
        raise
    except StrataError as exc:
        exc.exit_code = RUN_FAILED if command == "run" else 1
        raise


def env_files(paths: tuple[str, ...]) -> list[str]:
    """The entries of ``--env-file`` files, read as Docker reads them.

    Blank lines and ``#`` comments are skipped; leading blanks go but a value keeps its
    trailing ones; a bare ``NAME`` line stays bare, so `environment` gives it the host's value.
    """
    entries = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise NotFound(f"open {path}: {exc.strerror}") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.lstrip()
            if not line or line.startswith("#"):
                continue
            name, eq, value = line.partition("=")
            if not eq:
                name = name.rstrip()
            if not name or any(c.isspace() for c in name):
                raise InvalidArgument(
                    f"{path}:{number}: variable {name!r} contains whitespaces or is empty"
                )
            entries.append(f"{name}={value}" if eq else name)
    return entries


def environment(files: tuple[str, ...], flags: tuple[str, ...]) -> tuple[str, ...]:
    """``--env-file`` entries then ``-e`` ones, as Docker's client makes them: a bare ``NAME``
    takes the host's value; without one, a file's line is dropped while ``-e NAME`` stays bare
    (and unsets NAME in the container, the image's value too)."""
    from strata.runtime.options import pass_host_env

    from_files = [e for e in pass_host_env(env_files(files), os.environ) if "=" in e]
    return (*from_files, *pass_host_env(flags, os.environ))


class NotATerminal(InvalidArgument):
    """``-it`` without a terminal: Docker's client refuses it with status 1, even for run."""


def check_terminal(tty: bool, interactive: bool) -> None:
    """Docker's refusal of ``-it`` when our stdin is not a terminal."""
    if tty and interactive and not os.isatty(0):
        raise NotATerminal("the input device is not a TTY")


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
