"""Content digests: ``algorithm:encoded``, validated before they are ever used as a path."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from strata.errors import InvalidDigest

SHA256: Final = "sha256"
SHA512: Final = "sha512"

# OCI image-spec descriptor grammar; known algorithms have a fixed, lowercase-hex encoding.
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
_HEX_LENGTH: Final = {SHA256: 64, SHA512: 128}
_HEX = re.compile(r"[0-9a-f]+")

SHORT_ID_LENGTH: Final = 12


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated content digest. ``str(d)`` is ``sha256:<hex>``."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate ``text``; raise `InvalidDigest` naming it and the reason."""
        if not isinstance(text, str):
            raise InvalidDigest(f"invalid digest {text!r}: not a string")
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidDigest(f"invalid digest {text!r}: missing algorithm prefix")
        if not _ALGORITHM.fullmatch(algorithm):
            raise InvalidDigest(f"invalid digest {text!r}: bad algorithm {algorithm!r}")
        if not _ENCODED.fullmatch(encoded):
            raise InvalidDigest(f"invalid digest {text!r}: bad encoding")
        want = _HEX_LENGTH.get(algorithm)
        if want is not None and (len(encoded) != want or not _HEX.fullmatch(encoded)):
            raise InvalidDigest(
                f"invalid digest {text!r}: {algorithm} needs {want} lowercase hex characters"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = SHA256) -> Digest:
        """The digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def from_hex(cls, hexdigest: str, algorithm: str = SHA256) -> Digest:
        """Validate a bare hex string (a blob file name, an image ID) as a digest."""
        return cls.parse(f"{algorithm}:{hexdigest}")

    @property
    def hex(self) -> str:
        """The encoded part (hex for sha256/sha512)."""
        return self.encoded

    @property
    def short(self) -> str:
        """The 12-character short form Docker shows for IDs."""
        return self.encoded[:SHORT_ID_LENGTH]

    @property
    def storable(self) -> bool:
        """True when strata can compute and store this algorithm (sha256, sha512)."""
        return self.algorithm in _HEX_LENGTH

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object for this digest's algorithm."""
        if not self.storable:
            raise InvalidDigest(f"unsupported digest algorithm {self.algorithm!r} in {self}")
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def is_digest(text: str) -> bool:
    """True if ``text`` parses as a digest."""
    try:
        Digest.parse(text)
    except InvalidDigest:
        return False
    return True
