"""A stand-in for the detach monitor, for the tests: create a container and wait for its exit.

    monitor.py BACKEND STATE_ROOT BUNDLE ID OUT ERR

Becomes a child subreaper, creates the container with stdin from /dev/null and stdout/stderr on
the files OUT and ERR (or, with a terminal, copies the console to OUT), prints ``created PID``,
then ``exit CODE`` once the container's init has exited. Starting, killing and deleting are left
to other processes, as `strata start/kill/rm` from another shell will do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from strata.runtime import ProcessIO, become_subreaper, wait_exit
from strata.runtime.select import backend_by_name
from strata.runtime.tty import attach


def main() -> int:
    name, state_root, bundle, container_id, out_path, err_path = sys.argv[1:7]
    backend = backend_by_name(name, Path(state_root))
    become_subreaper()
    stdin = os.open(os.devnull, os.O_RDONLY)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    created = backend.create(container_id, Path(bundle), stdio=ProcessIO(stdin, out, err))
    os.close(stdin)
    os.close(err)
    print(f"created {created.pid}", flush=True)
    if created.console is not None:
        pidfd = os.pidfd_open(created.pid)
        attach(created.console, None, out, until=pidfd)
    os.close(out)
    print(f"exit {wait_exit(created.pid)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
