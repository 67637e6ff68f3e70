"""../shared/walkthroughs/understanding-image-layers.md, step by step, with strata.

The walkthrough types into `-ti` shells; here the same commands run through `sh -c` (the `-ti`
session itself is tested under tmux in the container tests). Needs the Debian mirror: the
container installs Node.js with apt, as the walkthrough does.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers, pytest.mark.slow]

HEADER = ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]


def test_walkthrough(strata: Strata) -> None:
    strata("import", "-c", 'CMD ["/bin/bash"]', str(debian_rootfs_tar()), "debian:bookworm")
    # Create a base image: install Node.js in a container, commit it as node-base.
    install = "apt-get update -qq && apt-get install -y -qq nodejs >/dev/null"
    strata("run", "--name=base-container", "debian:bookworm", "sh", "-c", install)
    strata("container", "commit", "-m", "Add node", "base-container", "node-base")
    lines = strata("image", "history", "node-base").stdout.splitlines()
    assert lines[0].split() == HEADER
    top = lines[1]
    assert re.match(r"[0-9a-f]{12}   ", top)
    assert top.rstrip().endswith("Add node")
    size = re.search(r"\s(\d+(?:\.\d+)?)MB\s", top)
    assert size and float(size.group(1)) > 20, top  # Node.js and its libraries
    assert lines[2].startswith("<missing>")
    out = strata("run", "node-base", "node", "-e", "console.log('Hello again')").stdout
    assert out == "Hello again\n"
    strata("rm", "-f", "base-container")
    # Build an app image on top of it.
    app = "echo 'console.log(\"Hello from an app\")' > app.js"
    strata("run", "--name=app-container", "node-base", "sh", "-c", app)
    strata(
        "container",
        "commit",
        "-c",
        "CMD node app.js",
        "-m",
        "Add app",
        "app-container",
        "sample-app",
    )
    lines = strata("image", "history", "sample-app").stdout.splitlines()
    assert lines[1].rstrip().endswith("Add app")
    assert lines[2].rstrip().endswith("Add node")
    assert re.search(r"\s33B\s+Add app", lines[1]), lines[1]  # app.js: 33 bytes, as in Docker
    assert strata("run", "sample-app").stdout == "Hello from an app\n"
    strata("rm", "-f", "app-container")
