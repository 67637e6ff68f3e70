"""``python -m strata``: the same as the ``strata`` command."""

from strata.cli.main import main

main()
