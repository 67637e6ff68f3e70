"""``run --rm`` of an unpacked image in the foreground, with the least loaded.

The same `Containers` service as every other command creates, runs and removes the container;
only the image is found the quick way (`strata.image.quick`), so neither the OCI model nor the
image store is imported. None means "not that simple": the caller takes the full path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from strata.image.quick import find_unpacked
from strata.runtime.backend import ProcessIO
from strata.runtime.lifecycle import Containers
from strata.runtime.options import ConfigDefaults, RunOptions

if TYPE_CHECKING:
    from strata.image.root import StoreRoot


def run_unpacked(
    root: StoreRoot,
    image_text: str,
    *,
    command: tuple[str, ...],
    env: tuple[str, ...],
    name: str | None,
    network: str,
    workdir: str | None,
    hostname: str | None,
) -> int | None:
    """Create, run and remove a container; its exit code, or None (see the module docstring)."""
    with root.db.read() as conn:
        image = find_unpacked(root.path, conn, image_text)
    if image is None:
        return None
    defaults = ConfigDefaults.from_json(image.config)
    if defaults is None:
        return None
    options = RunOptions(
        name=name,
        command=command,
        env=env,
        workdir=workdir,
        hostname=hostname,
        network=network,
        autoremove=True,
    )
    service = Containers(root)
    service.repair_dead()  # as `Containers.create` does: a killed run's leftovers go first
    container = service.create_on(image.manifest_digest, image.top, defaults, image_text, options)
    stdin = os.open(os.devnull, os.O_RDONLY)
    try:
        return service.run(container, stdio=ProcessIO(stdin, 1, 2))
    finally:
        os.close(stdin)
