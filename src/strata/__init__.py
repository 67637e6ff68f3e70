"""strata: daemonless container images made of layers.

Builds, stores, runs and ships OCI and Docker images. The library never prints or exits; the
command line (`strata.cli`) is the only place that does. See DESIGN.md for which package owns what
and which way imports go.
"""

__version__ = "0.1.0"
