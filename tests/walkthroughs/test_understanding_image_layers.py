"""../shared/walkthroughs/understanding-image-layers.md, step by step, with strata.

As a user would: the `-ti` shells run in a real terminal (tmux), commands are typed at the
prompt, and `commit` is run from another terminal (this test) while the container runs.
Needs the Debian mirror: the container installs Node.js with apt, as the walkthrough does.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator

import pytest

from tests.cli.test_run import Tmux
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers, pytest.mark.slow]

HEADER = ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]


@pytest.fixture
def terminal() -> Iterator[Tmux]:
    tmux = Tmux("walkthrough")
    try:
        yield tmux
    finally:
        tmux.close()


def test_walkthrough(strata: Strata, terminal: Tmux) -> None:
    strata("import", "-c", 'CMD ["/bin/bash"]', str(debian_rootfs_tar()), "debian:bookworm")
    cli = f"env STRATA_ROOT={shlex.quote(str(strata.root))} {sys.executable} -m strata"

    # 2. docker run --name=base-container -ti ubuntu  -> a shell prompt in the container
    terminal.start(f"{cli} run --name=base-container -ti debian:bookworm")
    terminal.expect(r"root@[0-9a-f]{12}:/#")
    # 3.-4. install Node.js inside, and check it
    terminal.type("apt update && apt install -y nodejs && echo INSTALLED")
    terminal.expect(r"\nINSTALLED", timeout=300)
    terminal.type("node -e 'console.log(\"Hello world!\")'")
    terminal.expect(r"\nHello world!")
    # 5. commit from another terminal while the container runs
    strata("container", "commit", "-m", "Add node", "base-container", "node-base")
    # 6. its history: the new layer on top, made by the container's /bin/bash
    lines = strata("image", "history", "node-base").stdout.splitlines()
    assert lines[0].split() == HEADER
    top = lines[1]
    assert re.match(r"[0-9a-f]{12}   .* ago +/bin/bash +\d+(\.\d+)?MB +Add node$", top), top
    # The parent image is local: its ID shows on its top row, as in the walkthrough; the rows
    # below it are <missing>.
    debian_id = strata("images", "-q", "debian:bookworm").stdout.strip()
    assert lines[2].startswith(debian_id)
    assert all(line.startswith("<missing>") for line in lines[3:])
    # 7. node is in the new image
    out = strata("run", "node-base", "node", "-e", "console.log('Hello again')").stdout
    assert out == "Hello again\n"
    # 8. remove the (still running) base container
    strata("rm", "-f", "base-container")

    # Build an app image: 1.-2. a shell in node-base, write app.js, run it
    terminal.close()
    terminal.start(f"{cli} run --name=app-container -ti node-base")
    terminal.expect(r"root@[0-9a-f]{12}:/#")
    terminal.type("echo 'console.log(\"Hello from an app\")' > app.js")
    terminal.type("node app.js")
    terminal.expect(r"\nHello from an app")
    # 3. commit with a CMD, from another terminal
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
    # 4. history: "Add app" (33 bytes: app.js) over "Add node"
    lines = strata("image", "history", "sample-app").stdout.splitlines()
    assert re.search(r"/bin/bash +33B +Add app$", lines[1]), lines[1]
    assert lines[2].rstrip().endswith("Add node")
    node_base = strata("images", "-q", "node-base").stdout.strip()
    assert lines[2].startswith(node_base) and lines[3].startswith(debian_id)
    # 5. the image runs its CMD
    assert strata("run", "sample-app").stdout == "Hello from an app\n"
    # 6. clean up
    strata("rm", "-f", "app-container")
