"""The ``strata`` executable: the quick ``run`` path first, else the full command line.

``strata run --rm IMAGE CMD`` is what scripts call in loops; its start-up is most of its cost,
so the plainest form of it (see `strata.cli.quick`) is parsed here by hand and runs without
loading click or the OCI model. Everything else goes to `strata.cli.main`.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["run"] or args[:2] == ["container", "run"]:
        from strata.cli.quick import quick_run

        code = quick_run(args[1:] if args[0] == "run" else args[2:])
        if code is not None:
            sys.exit(code)
    from strata.cli.main import main as full_main

    full_main(argv)
