"""A container of an unpacked image, created with the least loaded (``run --rm``'s quick path).

The same `Containers` service as every other command creates the container; only the image is
found the quick way (`strata.image.quick`), so neither the OCI model nor the image store is
imported. None means "not that simple": the caller takes the full path (`Containers.create`).
Both `strata.cli.quick` and `strata.api.run` create through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.image.quick import find_unpacked
from strata.runtime.options import ConfigDefaults

if TYPE_CHECKING:
    from strata.runtime.containers import Container
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions


def create_unpacked(service: Containers, image_text: str, options: RunOptions) -> Container | None:
    """Create a container of the unpacked image tagged ``image_text``, found the quick way; None
    when it is not that simple (see the module docstring) and `Containers.create` must do it."""
    with service.root.db.read() as conn:
        image = find_unpacked(service.root.path, conn, image_text)
    if image is None:
        return None
    defaults = ConfigDefaults.from_json(image.config)
    if defaults is None:
        return None
    service.repair_dead()  # as `Containers.create` does: a killed run's leftovers go first
    return service.create_on(image.manifest_digest, image.top, defaults, image_text, options)
