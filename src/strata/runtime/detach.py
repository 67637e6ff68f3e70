"""Detach keys (``--detach-keys``, default Ctrl-P Ctrl-Q): Docker's escape sequence on an
attached terminal. The keys of the sequence are held back while they match; a key that breaks
the match sends them all on, as Docker's escape proxy does; the whole sequence detaches."""

from __future__ import annotations

from strata.errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


class Detached(Exception):
    """The user typed the detach keys: the client leaves, the container runs on."""


def parse_detach_keys(spec: str) -> bytes:
    """Docker's key spec (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as the bytes typed."""
    keys = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            keys.append(ord(key))
            continue
        name = key.lower().removeprefix("ctrl-") if key.lower().startswith("ctrl-") else None
        if name is not None and len(name) == 1 and "a" <= name <= "z":
            keys.append(ord(name) - ord("a") + 1)
        elif name is not None and name in _CTRL:
            keys.append(_CTRL[name])
        else:
            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    if not keys:
        raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(keys)


class EscapeFilter:
    """Passes typed bytes through, holding back a partial detach sequence."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> bytes:
        """What to send on; raises `Detached` once the whole sequence was typed."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    raise Detached
                continue
            out += self.keys[: self.matched]
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
                continue
            out.append(byte)
        return bytes(out)
