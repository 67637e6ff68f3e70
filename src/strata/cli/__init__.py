"""The Docker-shaped command line: the only place that prints, exits, or turns errors into messages.

Commands are imported only when invoked (see `strata.cli.main.COMMANDS`), so ``strata --help`` or
``strata run`` never pay for modules they do not use.
"""
