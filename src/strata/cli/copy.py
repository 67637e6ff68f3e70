"""``strata cp``: files between a container and the host, as ``docker cp``."""

from __future__ import annotations

import os
import sys

import click

from strata.cli.context import App, pass_app
from strata.errors import InvalidArgument


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path) as Docker's client splits ``CONTAINER:PATH``: an absolute path, or
    one whose part before ``:`` starts with ``.``, is local (container ``""``)."""
    if arg.startswith("/"):
        return "", arg
    container, colon, path = arg.partition(":")
    if not colon or container.startswith("."):
        return "", arg
    return container, path


@click.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy.")
@click.argument("src")
@click.argument("dest")
@pass_app
def cp_cmd(app: App, archive: bool, follow_link: bool, quiet: bool, src: str, dest: str) -> None:
    """Copy files/folders between a container and the local filesystem.

    \b
    strata cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    strata cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH
    """
    from strata.runtime.cp import CopyOptions, copy_from, copy_to
    from strata.runtime.lifecycle import Containers

    del quiet  # strata shows no progress
    src_container, src_path = split_cp_arg(src)
    dest_container, dest_path = split_cp_arg(dest)
    if src_container and dest_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dest_container:
        raise InvalidArgument("must specify at least one container source")
    options = CopyOptions(follow_link=follow_link, archive=archive)
    service = Containers(app.store())
    if src_container:
        container = service.lookup(src_container)
        copy_from(
            service,
            container,
            src_path or ".",
            dest_path,
            options,
            stdout=sys.stdout.buffer,
            given=src_container,
        )
        sys.stdout.flush()
        return
    container = service.lookup(dest_container)
    copy_to(
        service,
        container,
        src_path,
        dest_path or ".",
        options,
        stdin=os.fdopen(os.dup(0), "rb") if src_path == "-" else None,
        given=dest_container,
    )
