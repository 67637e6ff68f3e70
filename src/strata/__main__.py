"""``python -m strata``: the same as the ``strata`` command."""

from strata.cli.entry import main

main()
