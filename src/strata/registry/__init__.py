"""Registry: the OCI distribution client, and pull and push between registries and the store.

`client.RegistryClient` speaks the distribution API to one registry (on httpx, through
`transport.Transport`, which owns authentication from `auth` and retries); `credentials`
reads and writes Docker's ``config.json``. Names are exported lazily so that importing a
light module of this package (platforms, progress) does not import httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.registry.blobs import BlobStream
    from strata.registry.client import ManifestResponse, RegistryClient
    from strata.registry.credentials import CredentialStore

__all__ = ["BlobStream", "CredentialStore", "ManifestResponse", "RegistryClient"]

_HOMES = {
    "BlobStream": "strata.registry.blobs",
    "CredentialStore": "strata.registry.credentials",
    "ManifestResponse": "strata.registry.client",
    "RegistryClient": "strata.registry.client",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'strata.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
