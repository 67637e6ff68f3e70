"""Run one container in the foreground in this process, as `strata run` will: for the tests.

    driver.py BACKEND STATE_ROOT BUNDLE ID

Exits with the container's exit status; a strata error is one line on stderr and its exit code.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import termios
from pathlib import Path

from strata.errors import StrataError
from strata.runtime.select import backend_by_name


def main() -> int:
    name, state_root, bundle, container_id = sys.argv[1:5]
    if os.isatty(0) and os.getsid(0) == os.getpid():
        # A session leader on a terminal with none of its own: take it, as a login shell does,
        # so that window-size changes signal us.
        with contextlib.suppress(OSError):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    backend = backend_by_name(name, Path(state_root))
    try:
        return backend.run(container_id, Path(bundle))
    except StrataError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
