"""``strata run --rm IMAGE [CMD...]`` without click: the hand-parsed quick path.

Only the plainest form is taken: ``--rm`` in the foreground, no terminal, no stdin, an image
already unpacked, and the options ``-e/--env``, ``--name``, ``--network``, ``-w/--workdir``
and ``--hostname``. Anything else (another flag, ``--``, a global option, an image that is
not unpacked yet) returns None before anything is created, and the full command line handles
it. Both paths create the container the same way (`strata.runtime.quick.create_unpacked`, which
`strata.api.run` uses for ``remove``) and run it through the same `Containers` service; this one
just skips click and `strata.api`, whose imports would cost this path more than its work.
"""

from __future__ import annotations

import os
import sys

from strata.errors import CommandNotExecutable, CommandNotFound, StrataError

# flag -> RunOptions field; every one takes a value.
_VALUED = {
    "-e": "env",
    "--env": "env",
    "--name": "name",
    "--network": "network",
    "--net": "network",
    "-w": "workdir",
    "--workdir": "workdir",
    "--hostname": "hostname",
}


def parse(args: list[str]) -> tuple[dict[str, str | list[str] | bool], str, list[str]] | None:
    """(options, image, command) when ``args`` is in the quick form, else None."""
    options: dict[str, str | list[str] | bool] = {"env": []}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        if arg == "--rm":
            options["rm"] = True
            i += 1
            continue
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        field = _VALUED.get(flag)
        if field is None:
            return None
        if eq or value:
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            return None
        if field == "env":
            env = options["env"]
            assert isinstance(env, list)
            env.append(value)
        elif field in options:
            return None  # given twice: let click say what it says
        else:
            options[field] = value
    if i >= len(args) or not options.get("rm"):
        return None
    return options, args[i], args[i + 1 :]


def quick_run(args: list[str]) -> int | None:
    """Run the container and return its exit code; None if the full path must do it."""
    parsed = parse(args)
    if parsed is None:
        return None
    options, image_text, command = parsed
    try:
        from strata.image.root import StoreRoot, default_root
        from strata.runtime.backend import ProcessIO
        from strata.runtime.lifecycle import Containers
        from strata.runtime.options import RunOptions, pass_host_env
        from strata.runtime.quick import create_unpacked

        def text(key: str) -> str | None:
            value = options.get(key)
            return value if isinstance(value, str) else None

        env = options["env"]
        assert isinstance(env, list)
        run = RunOptions(
            name=text("name"),
            command=tuple(command),
            env=pass_host_env(env, os.environ),
            workdir=text("workdir"),
            hostname=text("hostname"),
            network=text("network") or "default",
            autoremove=True,
        )
        with StoreRoot(default_root()) as root:
            service = Containers(root)
            container = create_unpacked(service, image_text, run)
            if container is None:
                return None
            stdin = os.open(os.devnull, os.O_RDONLY)
            try:
                return service.run(container, stdio=ProcessIO(stdin, 1, 2))
            finally:
                os.close(stdin)
    except StrataError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        # Docker's run: 125 for its own failures; 127/126 for a command that cannot start.
        return exc.exit_code if isinstance(exc, CommandNotFound | CommandNotExecutable) else 125
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"Error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
