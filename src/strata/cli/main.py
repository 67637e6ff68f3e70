"""Entry point: the ``strata`` group, global options, lazy commands and error handling."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import sys
from typing import Any, NoReturn

import click

from strata.errors import StrataError

# name -> (module, attribute, short help). Modules load on first use only.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "image": ("strata.cli.image", "image_group", "Manage images"),
    "system": ("strata.cli.system", "system_group", "Manage strata"),
    "container": ("strata.cli.container", "container_group", "Manage containers"),
    "volume": ("strata.cli.volume", "volume_group", "Manage volumes"),
    "run": ("strata.cli.container", "run_cmd", "Create and run a new container from an image"),
    "rm": ("strata.cli.container", "rm_cmd", "Remove one or more containers"),
    "ps": ("strata.cli.container", "ps_cmd", "List containers"),
    "create": ("strata.cli.container", "create_cmd", "Create a new container"),
    "start": ("strata.cli.container", "start_cmd", "Start one or more stopped containers"),
    "stop": ("strata.cli.running", "stop_cmd", "Stop one or more running containers"),
    "kill": ("strata.cli.running", "kill_cmd", "Kill one or more running containers"),
    "wait": ("strata.cli.running", "wait_cmd", "Block until containers stop; print exit codes"),
    "logs": ("strata.cli.running", "logs_cmd", "Fetch the logs of a container"),
    "exec": ("strata.cli.running", "exec_cmd", "Execute a command in a running container"),
    "update": (
        "strata.cli.life_args",
        "update_cmd",
        "Update configuration of one or more containers",
    ),
    "commit": ("strata.cli.commit", "commit_cmd", "Create a new image from a container's changes"),
    "diff": (
        "strata.cli.commit",
        "diff_cmd",
        "Inspect changes to files on a container's filesystem",
    ),
    "export": (
        "strata.cli.commit",
        "export_cmd",
        "Export a container's filesystem as a tar archive",
    ),
    "port": ("strata.cli.network", "port_cmd", "List port mappings or a specific mapping"),
    "network": ("strata.cli.network", "network_group", "Manage networks"),
    "cp": (
        "strata.cli.copy",
        "cp_cmd",
        "Copy files/folders between a container and the local filesystem",
    ),
    "pause": (
        "strata.cli.running",
        "pause_cmd",
        "Pause all processes within one or more containers",
    ),
    "unpause": (
        "strata.cli.running",
        "unpause_cmd",
        "Unpause all processes within one or more containers",
    ),
    "rename": ("strata.cli.running", "rename_cmd", "Rename a container"),
    "top": ("strata.cli.running", "top_cmd", "Display the running processes of a container"),
    "stats": (
        "strata.cli.stats",
        "stats_cmd",
        "Display a live stream of container(s) resource usage statistics",
    ),
    "attach": (
        "strata.cli.running",
        "attach_cmd",
        "Attach local standard input, output, and error streams to a running container",
    ),
    # Docker's top-level shortcuts.
    "images": ("strata.cli.image", "ls_cmd", "List images"),
    "rmi": ("strata.cli.image", "rm_cmd", "Remove one or more images"),
    "tag": ("strata.cli.image", "tag_cmd", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "inspect": ("strata.cli.inspect", "inspect_cmd", "Return low-level information on objects"),
    "save": ("strata.cli.image", "save_cmd", "Save one or more images to a tar archive"),
    "load": ("strata.cli.image", "load_cmd", "Load an image from a tar archive or STDIN"),
    "import": ("strata.cli.image", "import_cmd", "Import a tarball to create a filesystem image"),
    "history": ("strata.cli.history", "history_cmd", "Show the history of an image"),
    "build": ("strata.cli.build", "build_cmd", "Build an image from a Dockerfile"),
    "builder": ("strata.cli.build", "builder_group", "Manage builds"),
    "push": ("strata.cli.registry", "push_cmd", "Upload an image to a registry"),
    "pull": ("strata.cli.registry", "pull_cmd", "Download an image from a registry"),
    "login": ("strata.cli.registry", "login_cmd", "Log in to a registry"),
    "logout": ("strata.cli.registry", "logout_cmd", "Log out from a registry"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on demand from a name -> module table."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr, _ = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Caught here, inside click: click's own handler would turn it into a silent exit 1.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _die_of_sigpipe()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table, so --help imports no command module.
        rows = [(name, self.lazy[name][2]) for name in sorted(self.lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--root",
    envvar="STRATA_ROOT",
    type=click.Path(file_okay=False),
    help="Store root (default /var/lib/strata as root, $XDG_DATA_HOME/strata otherwise).",
)
@click.option(
    "--log-level",
    "-l",
    type=click.Choice(["debug", "info", "warn", "error"]),
    default="warn",
    show_default=True,
    help="Set the logging level.",
)
@click.version_option(package_name="strata", prog_name="strata")
@click.pass_context
def cli(ctx: click.Context, root: str | None, log_level: str) -> None:
    """strata: container images made of layers, with no daemon."""
    from strata.cli.context import App

    level = {"warn": logging.WARNING}.get(log_level, getattr(logging, log_level.upper()))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = App(root=root, debug=log_level == "debug")


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _usage_status(exc: click.ClickException) -> int:
    """Docker's status for a command line it cannot parse: 125 for a bad flag or flag value
    (any command), 1 for a wrong number of arguments."""
    if not isinstance(exc, click.UsageError):
        return exc.exit_code
    if isinstance(exc, click.MissingParameter) and not isinstance(exc.param, click.Option):
        return 1
    if type(exc) is click.UsageError and "argument" in exc.message:
        return 1  # "Got unexpected extra argument(s)"
    return 125


def _die_of_sigpipe() -> NoReturn:
    """The reader went away (``strata save | head``): end as Docker's Go CLI does, killed by
    SIGPIPE (status 141 in a shell), with nothing on stderr and nothing more flushed."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(141)  # not reached: the signal is fatal now


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; every failure becomes one ``Error:`` line and a non-zero exit status."""
    debug = "debug" in (argv or sys.argv) or os.environ.get("STRATA_DEBUG") == "1"
    try:
        cli.main(args=argv, prog_name="strata", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # One line, as every other failure: the usage is a `-h` away.
        _fail(exc.format_message(), _usage_status(exc))
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except StrataError as exc:
        if debug:
            logging.getLogger("strata").exception("command failed")
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _die_of_sigpipe()
    except OSError as exc:
        if debug:
            logging.getLogger("strata").exception("command failed")
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Name the write: a full disk is the user's to fix, and they need to know where.
            where = f"writing {exc.filename}: " if exc.filename else "writing: "
            _fail(f"{where}{(exc.strerror or str(exc)).lower()}")
        _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # a bug: still one line, the traceback only with --log-level debug
        if debug:
            logging.getLogger("strata").exception("internal error")
        if type(exc).__module__ == "sqlite3" and "disk is full" in str(exc):
            # Not a bug but a full disk, which a query outside `Database`'s mapping met.
            _fail(f"writing the store's database: {exc}")
        _fail(f"internal error: {type(exc).__name__}: {exc} (run with --log-level debug)")
    sys.exit(0)
